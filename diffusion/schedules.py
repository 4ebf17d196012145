"""Noise schedules in continuous time t in [0, 1].

The forward process is x_t = alpha(t) x0 + sigma(t) eps, eps ~ N(0, I); t = 0 is data and t = 1
is noise. Every schedule gives alpha, sigma, their time derivatives, the log-SNR
lambda(t) = log(alpha^2 / sigma^2) and its inverse t(lambda). That is all the rest of the code
needs to know about a schedule.

Where the math is infinite (sigma = 0 at t = 0 for the variance-preserving schedules, alpha = 0 at
t = 1 for cosine, sigmoid and rectified flow) every public method clamps t to the schedule's
`t_range`, the interval on which lambda stays inside [LOGSNR_MIN, LOGSNR_MAX]. So t = 0 and t = 1
are always valid inputs and every returned number is finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import cached_property

import torch
from torch import Tensor

LOGSNR_MAX = 10.0  # sigma/alpha >= exp(-5) ~ 0.0067: below a pixel's quantisation step and 1/10 of the narrowest 2-D component
LOGSNR_MIN = -10.0  # alpha/sigma <= 0.0067: the start of sampling is noise but for a 0.7% trace of the data
REACH = 4.0  # a schedule must span at least lambda in [-4, 4]: from sigma/alpha = 0.14 to alpha/sigma = 0.14


def as_time(t, dtype=torch.float64) -> Tensor:
    """t as a tensor (a Python float becomes float64), checked to lie in [0, 1]."""
    t = torch.as_tensor(t, dtype=dtype if not torch.is_tensor(t) else None)
    if not torch.is_floating_point(t):
        t = t.to(dtype)
    if torch.isnan(t).any() or (t < 0).any() or (t > 1).any():
        bad = t[torch.isnan(t) | (t < 0) | (t > 1)].flatten()[0].item()
        raise ValueError(f"t must lie in [0, 1]; got {bad}")
    return t


def _check(name: str, value: float, ok: bool, allowed: str) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and ok):
        raise ValueError(f"schedule parameter {name}={value!r} is invalid; allowed: {allowed}")


@dataclass(frozen=True)
class Schedule:
    """Base class: subclasses define the raw alpha, sigma, derivatives and inverse log-SNR."""

    name = "base"

    # --- what a subclass defines (t already clamped; no validation) ---
    def _alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _derivatives(self, t: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _t_of_logsnr(self, lam: Tensor) -> Tensor:
        raise NotImplementedError

    def _logsnr(self, t: Tensor) -> Tensor:
        """lambda(t) in the schedule's own closed form, accurate where alpha or sigma is tiny: the one log-SNR
        that all other code uses (through `logsnr`, and `diffusion.parameterizations.noise_level`)."""
        raise NotImplementedError

    def __post_init__(self):
        """Every schedule must run from data to noise: lambda(0) >= REACH and lambda(1) <= -REACH."""
        ends = self._logsnr(torch.tensor([0.0, 1.0], dtype=torch.float64)).tolist()
        if not (ends[0] >= REACH and ends[1] <= -REACH):
            raise ValueError(f"schedule {self.name} with {', '.join(f'{k}={v:g}' for k, v in self.params.items())} "
                             f"does not run from data to noise: log-SNR goes from {ends[0]:.2f} at t=0 to "
                             f"{ends[1]:.2f} at t=1; it must start >= {REACH:g} and end <= {-REACH:g}")

    # --- the public interface ---
    @property
    def params(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @cached_property
    def t_range(self) -> tuple[float, float]:
        """(t_min, t_max): the clamp that keeps lambda inside [LOGSNR_MIN, LOGSNR_MAX]."""
        lam = torch.tensor([LOGSNR_MAX, LOGSNR_MIN], dtype=torch.float64)
        t_lo, t_hi = self._t_of_logsnr(lam).clamp(0.0, 1.0).tolist()
        return t_lo, t_hi

    def clamp(self, t) -> Tensor:
        t_lo, t_hi = self.t_range
        return as_time(t).clamp(t_lo, t_hi)

    def alpha_sigma(self, t) -> tuple[Tensor, Tensor]:
        """(alpha(t), sigma(t))."""
        return self._alpha_sigma(self.clamp(t))

    def derivatives(self, t) -> tuple[Tensor, Tensor]:
        """(d alpha / dt, d sigma / dt)."""
        return self._derivatives(self.clamp(t))

    def logsnr(self, t) -> Tensor:
        """lambda(t) = log(alpha^2 / sigma^2), strictly decreasing in t."""
        return self._logsnr(self.clamp(t))

    def values_on_device(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(alpha, sigma, d alpha/dt, d sigma/dt, lambda) at t, computed where t lives and clamped to t_range
        without as_time's check, which reads t on the host (a synchronisation a recorded CUDA graph forbids)."""
        t = t.clamp(*self.t_range)
        return (*self._alpha_sigma(t), *self._derivatives(t), self._logsnr(t))

    def t_of_logsnr(self, lam) -> Tensor:
        """The inverse of logsnr on t_range: t(lambda), lambda clamped to the schedule's range."""
        lam = torch.as_tensor(lam, dtype=torch.float64 if not torch.is_tensor(lam) else None)
        t_lo, t_hi = self.t_range
        return self._t_of_logsnr(lam).clamp(t_lo, t_hi)

    def spec(self) -> str:
        """A one-line description that `make_schedule` parses back: 'cosine:s=0.008'."""
        return self.name + ":" + ",".join(f"{k}={v!r}" for k, v in self.params.items())


def _vp_sigma(log_alpha: Tensor) -> Tensor:
    """sigma = sqrt(1 - alpha^2), accurate when alpha is close to 1."""
    return torch.sqrt(-torch.expm1(2 * log_alpha))


def _vp_logsnr(log_alpha: Tensor) -> Tensor:
    return 2 * log_alpha - torch.log(-torch.expm1(2 * log_alpha))


@dataclass(frozen=True)
class LinearSchedule(Schedule):
    """DDPM's linear beta range in continuous time (Song et al. 2021, VP-SDE).

    beta(t) = beta_min + t (beta_max - beta_min); log alpha = -t^2 (beta_max - beta_min)/4 - t beta_min/2.
    The DDPM betas 1e-4 .. 0.02 over 1000 steps are beta_min = 0.1, beta_max = 20.
    """

    beta_min: float = 0.1
    beta_max: float = 20.0
    name = "linear"

    def __post_init__(self):
        _check("beta_min", self.beta_min, 0 < self.beta_min <= 100, "0 < beta_min <= 100")
        _check("beta_max", self.beta_max, self.beta_min <= self.beta_max <= 100,
               f"beta_min ({self.beta_min:g}) <= beta_max <= 100")
        super().__post_init__()

    def _log_alpha(self, t):
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def _alpha_sigma(self, t):
        la = self._log_alpha(t)
        return torch.exp(la), _vp_sigma(la)

    def _logsnr(self, t):
        return _vp_logsnr(self._log_alpha(t))

    def _derivatives(self, t):
        alpha, sigma = self._alpha_sigma(t)
        beta = self.beta_min + t * (self.beta_max - self.beta_min)
        d_alpha = -0.5 * beta * alpha
        return d_alpha, -alpha * d_alpha / sigma

    def _t_of_logsnr(self, lam):
        c = torch.nn.functional.softplus(-lam)  # -log alpha^2
        db = self.beta_max - self.beta_min
        if db == 0:
            return c / self.beta_min
        return (-self.beta_min + torch.sqrt(self.beta_min**2 + 2 * db * c)) / db


@dataclass(frozen=True)
class CosineSchedule(Schedule):
    """Cosine schedule (Nichol & Dhariwal 2021): alpha(t) = cos(f(t)) / cos(f(0)), f(t) = (t+s)/(1+s) pi/2."""

    s: float = 0.008
    name = "cosine"

    def __post_init__(self):
        _check("s", self.s, 0 <= self.s <= 1, "0 <= s <= 1")
        super().__post_init__()

    def _f(self, t):
        return (t + self.s) / (1 + self.s) * (math.pi / 2)

    def _alpha_sigma(self, t):
        alpha = torch.cos(self._f(t)) / math.cos(self._f(0.0))
        return alpha, _vp_sigma(torch.log(alpha))

    def _logsnr(self, t):
        return _vp_logsnr(torch.log(torch.cos(self._f(t)) / math.cos(self._f(0.0))))

    def _derivatives(self, t):
        alpha, sigma = self._alpha_sigma(t)
        d_alpha = -torch.sin(self._f(t)) * (math.pi / 2) / (1 + self.s) / math.cos(self._f(0.0))
        return d_alpha, -alpha * d_alpha / sigma

    def _t_of_logsnr(self, lam):
        alpha = torch.sqrt(torch.sigmoid(lam))
        return torch.arccos(alpha * math.cos(self._f(0.0))) * (2 * (1 + self.s) / math.pi) - self.s


@dataclass(frozen=True)
class SigmoidSchedule(Schedule):
    """Sigmoid schedule (Chen 2023; Jabri et al. 2023): alpha^2(t) = (v_end - sigmoid(z)) / (v_end - v_start),

    z = (start + t (end - start)) / tau, v_x = sigmoid(x / tau).
    """

    start: float = -3.0
    end: float = 3.0
    tau: float = 1.0
    name = "sigmoid"

    def __post_init__(self):
        _check("start", self.start, -20 <= self.start <= 20, "-20 <= start <= 20")
        _check("end", self.end, self.start < self.end <= 20, f"start ({self.start:g}) < end <= 20")
        _check("tau", self.tau, 0.05 <= self.tau <= 10, "0.05 <= tau <= 10")
        super().__post_init__()

    def _v(self, x):
        return 1 / (1 + math.exp(-x / self.tau))

    def _gamma(self, t):  # alpha^2 and sigma^2, each computed without cancellation
        vs, ve = self._v(self.start), self._v(self.end)
        z = (self.start + t * (self.end - self.start)) / self.tau
        return (ve - torch.sigmoid(z)) / (ve - vs), (torch.sigmoid(z) - vs) / (ve - vs)

    def _alpha_sigma(self, t):
        a2, s2 = self._gamma(t)
        return torch.sqrt(a2), torch.sqrt(s2)

    def _logsnr(self, t):
        a2, s2 = self._gamma(t)
        return torch.log(a2) - torch.log(s2)

    def _derivatives(self, t):
        alpha, sigma = self._alpha_sigma(t)
        vs, ve = self._v(self.start), self._v(self.end)
        z = (self.start + t * (self.end - self.start)) / self.tau
        sz = torch.sigmoid(z)
        d_a2 = -sz * (1 - sz) * (self.end - self.start) / self.tau / (ve - vs)
        return d_a2 / (2 * alpha), -d_a2 / (2 * sigma)

    def _t_of_logsnr(self, lam):
        vs, ve = self._v(self.start), self._v(self.end)
        sz = ve - torch.sigmoid(lam) * (ve - vs)
        z = torch.log(sz) - torch.log1p(-sz)
        return (z * self.tau - self.start) / (self.end - self.start)


def _check_sigma_range(sigma_min: float, sigma_max: float) -> None:
    """The noise range of the alpha = 1 schedules (edm, ve)."""
    _check("sigma_min", sigma_min, 1e-4 <= sigma_min <= 10, "1e-4 <= sigma_min <= 10")
    _check("sigma_max", sigma_max, sigma_min < sigma_max <= 1000, f"sigma_min ({sigma_min:g}) < sigma_max <= 1000")


@dataclass(frozen=True)
class KarrasSchedule(Schedule):
    """EDM / Karras et al. 2022: alpha = 1, sigma(t) = (smin^(1/rho) + t (smax^(1/rho) - smin^(1/rho)))^rho.

    Every time grid here ends at sigma = e^-5 = 0.0067, not at EDM's sigma_min = 0.002: that is where the
    log-SNR reaches LOGSNR_MAX = 10 (sigma = 0.002 is lambda = 12.4), so t_range starts at t = 0.053 and a
    grid uniform in t is Karras' rho = 7 grid from 80 down to 0.0067. Any sigma_min at or below 0.0067 gives
    the same grids and samples; it changes only which t maps to which sigma.
    """

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    name = "edm"

    def __post_init__(self):
        _check_sigma_range(self.sigma_min, self.sigma_max)
        _check("rho", self.rho, 0.5 <= self.rho <= 20, "0.5 <= rho <= 20")
        super().__post_init__()

    def _ends(self):
        return self.sigma_min ** (1 / self.rho), self.sigma_max ** (1 / self.rho)

    def _alpha_sigma(self, t):
        lo, hi = self._ends()
        return torch.ones_like(t), (lo + t * (hi - lo)) ** self.rho

    def _derivatives(self, t):
        lo, hi = self._ends()
        return torch.zeros_like(t), self.rho * (lo + t * (hi - lo)) ** (self.rho - 1) * (hi - lo)

    def _logsnr(self, t):  # alpha = 1
        return -2 * torch.log(self._alpha_sigma(t)[1])

    def _t_of_logsnr(self, lam):
        lo, hi = self._ends()
        return (torch.exp(-lam / (2 * self.rho)) - lo) / (hi - lo)


@dataclass(frozen=True)
class VESchedule(Schedule):
    """Variance exploding (Song et al. 2021): alpha = 1, sigma(t) = sigma_min (sigma_max / sigma_min)^t."""

    sigma_min: float = 0.01
    sigma_max: float = 50.0
    name = "ve"

    def __post_init__(self):
        _check_sigma_range(self.sigma_min, self.sigma_max)
        super().__post_init__()

    def _alpha_sigma(self, t):
        return torch.ones_like(t), self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def _derivatives(self, t):
        _, sigma = self._alpha_sigma(t)
        return torch.zeros_like(t), sigma * math.log(self.sigma_max / self.sigma_min)

    def _logsnr(self, t):  # alpha = 1
        return -2 * torch.log(self._alpha_sigma(t)[1])

    def _t_of_logsnr(self, lam):
        return (-lam / 2 - math.log(self.sigma_min)) / math.log(self.sigma_max / self.sigma_min)


@dataclass(frozen=True)
class FlowSchedule(Schedule):
    """Rectified flow / linear interpolation (Liu et al. 2023; Lipman et al. 2023): alpha = 1 - t, sigma = t."""

    name = "flow"

    def _alpha_sigma(self, t):
        return 1 - t, t

    def _derivatives(self, t):
        return -torch.ones_like(t), torch.ones_like(t)

    def _logsnr(self, t):
        return 2 * (torch.log1p(-t) - torch.log(t))

    def _t_of_logsnr(self, lam):
        return torch.sigmoid(-lam / 2)


SCHEDULES: dict[str, type[Schedule]] = {
    "linear": LinearSchedule,
    "cosine": CosineSchedule,
    "sigmoid": SigmoidSchedule,
    "edm": KarrasSchedule,
    "ve": VESchedule,
    "flow": FlowSchedule,
}


def make_schedule(name: str, **params) -> Schedule:
    """A schedule by name, from 'name' plus keyword parameters or from a spec 'name:k=v,k=v'."""
    if ":" in name:
        name, _, rest = name.partition(":")
        for item in filter(None, (s.strip() for s in rest.split(","))):
            key, eq, value = item.partition("=")
            if not eq:
                raise ValueError(f"schedule parameter {item!r} must look like name=value")
            try:
                params[key.strip()] = float(value)
            except ValueError:
                raise ValueError(f"schedule parameter {key.strip()}={value!r} is not a number") from None
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; allowed: {', '.join(SCHEDULES)}")
    cls = SCHEDULES[name]
    allowed = [f.name for f in fields(cls)]
    for key in params:
        if key not in allowed:
            raise ValueError(f"schedule {name!r} has no parameter {key!r}; "
                             f"allowed: {', '.join(allowed) or 'none'}")
    values = {}
    for key, value in params.items():
        try:
            values[key] = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"schedule parameter {key}={value!r} is not a number") from None
    return cls(**values)


# How training draws t (TrainConfig.t_sampling). "logsnr_normal": lambda ~ N(mean, std^2) truncated to the
# schedule's range (LOGSNR_NORMAL). Most examples then fall where the noise is about the data's own fine scale
# (lambda 1-6 for the standardised toy sets), where a 2-D model's likelihood is lost (docs/training.md).
T_SAMPLING = ("uniform_t", "uniform_logsnr", "logsnr_normal")
LOGSNR_NORMAL = (3.0, 2.5)


def times_of_uniform(schedule: Schedule, u: Tensor, rule: str = "uniform_t") -> Tensor:
    """Times t for uniform draws u in (0, 1) under a t-sampling rule: u itself (uniform in t), lambda uniform
    over the schedule's range, or lambda through the truncated normal's inverse CDF. On u's device."""
    if rule not in T_SAMPLING:
        raise ValueError(f"t_sampling {rule!r} is invalid; allowed: {', '.join(T_SAMPLING)}")
    if rule == "uniform_t":
        return u
    t_lo, t_hi = schedule.t_range
    lam_hi, lam_lo = float(schedule.logsnr(t_lo)), float(schedule.logsnr(t_hi))
    if rule == "uniform_logsnr":
        return schedule.t_of_logsnr(lam_hi + u * (lam_lo - lam_hi))
    mean, std = LOGSNR_NORMAL
    lo, hi = (0.5 * math.erfc(-(v - mean) / (std * math.sqrt(2))) for v in (lam_lo, lam_hi))  # the normal's CDF
    return schedule.t_of_logsnr(mean + std * torch.special.ndtri(lo + u * (hi - lo)))
