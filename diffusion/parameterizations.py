"""What a network predicts, and the exact conversions between the choices.

At a noise level (alpha, sigma) with x = alpha x0 + sigma eps, a model may predict

    eps    the noise                       eps
    x0     the clean data                  x0
    v      the velocity (Salimans & Ho)    v = alpha eps - sigma x0
    score  grad_x log p_t(x)               s = -eps / sigma
    flow   the probability-flow velocity   u = dx/dt = alpha' x0 + sigma' eps
    energy a scalar E(x, t) with           s = -grad_x E   (converted to a score by the model wrapper)

Any one of them together with x fixes the pair (x0, eps), so every conversion goes through
`to_x0_eps` and `from_x0_eps`; the probability-flow velocity that the ODE samplers and the likelihood
integrate is `flow_velocity`. Loss weightings are functions of lambda that multiply the eps-space
squared error; `eps_scale` turns them into the weight on any parameterization's own squared error.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

PARAMETERIZATIONS = ("eps", "x0", "v", "score", "flow", "energy")


def append_dims(v: Tensor, ndim: int) -> Tensor:
    """v with trailing singleton dims up to `ndim`: a [B] tensor becomes [B, 1, ...]."""
    v = torch.as_tensor(v)
    if v.ndim > ndim:
        raise ValueError(f"cannot broadcast a tensor of rank {v.ndim} to rank {ndim}")
    return v.reshape(v.shape + (1,) * (ndim - v.ndim))


@dataclass(frozen=True)
class NoiseLevel:
    """alpha, sigma, their time derivatives and the log-SNR lambda = log(alpha^2 / sigma^2) at some t;
    scalars or [B] tensors. `noise_level` fills lambda from the schedule's own `logsnr`."""

    alpha: Tensor
    sigma: Tensor
    d_alpha: Tensor
    d_sigma: Tensor
    logsnr: Tensor

    def to(self, x: Tensor) -> "NoiseLevel":
        """The same level cast to x's dtype/device and shaped to broadcast against x."""
        def f(v):
            return append_dims(torch.as_tensor(v).to(device=x.device, dtype=x.dtype), x.ndim)
        return NoiseLevel(f(self.alpha), f(self.sigma), f(self.d_alpha), f(self.d_sigma), f(self.logsnr))


def noise_level(schedule, t) -> NoiseLevel:
    """The schedule's NoiseLevel at t (t in [0, 1], clamped to the schedule's t_range)."""
    alpha, sigma = schedule.alpha_sigma(t)
    d_alpha, d_sigma = schedule.derivatives(t)
    return NoiseLevel(alpha, sigma, d_alpha, d_sigma, schedule.logsnr(t))


def check_parameterization(kind: str) -> str:
    if kind not in PARAMETERIZATIONS:
        raise ValueError(f"unknown parameterization {kind!r}; allowed: {', '.join(PARAMETERIZATIONS)}")
    return kind


def to_x0_eps(kind: str, out: Tensor, x: Tensor, lvl: NoiseLevel) -> tuple[Tensor, Tensor]:
    """(x0_hat, eps_hat) from a prediction `out` of the given kind at x. 'energy' expects its score."""
    check_parameterization(kind)
    lv = lvl.to(x)
    a, s, da, ds = lv.alpha, lv.sigma, lv.d_alpha, lv.d_sigma
    if kind == "eps":
        return (x - s * out) / a, out
    if kind == "x0":
        return out, (x - a * out) / s
    if kind == "v":  # solve [a s; -s a] [x0; eps] = [x; v]
        n = a**2 + s**2
        return (a * x - s * out) / n, (s * x + a * out) / n
    if kind in ("score", "energy"):
        eps = -s * out
        return (x - s * eps) / a, eps
    # flow: solve [a s; a' s'] [x0; eps] = [x; u]; det = a s' - s a' = -a s lambda'/2 > 0
    det = a * ds - s * da
    return (ds * x - s * out) / det, (a * out - da * x) / det


def flow_velocity(x0: Tensor, eps: Tensor, lvl: NoiseLevel) -> Tensor:
    """The probability-flow velocity u = dx/dt = alpha' x0 + sigma' eps.

    With the denoiser's (x0_hat, eps_hat) this is the drift of the probability-flow ODE (Song et al. 2021,
    Eq. 13; Karras et al. 2022, Eq. 4 written in t), which every ODE sampler and the likelihood integrate;
    with alpha = 1 and t = sigma it is k-diffusion's `to_d`, (x - x0_hat) / sigma.
    """
    lv = lvl.to(x0)
    return lv.d_alpha * x0 + lv.d_sigma * eps


def from_x0_eps(kind: str, x0: Tensor, eps: Tensor, lvl: NoiseLevel) -> Tensor:
    """The prediction of the given kind that corresponds to (x0, eps). 'energy' gives its score."""
    check_parameterization(kind)
    lv = lvl.to(x0)
    if kind == "eps":
        return eps
    if kind == "x0":
        return x0
    if kind == "v":
        return lv.alpha * eps - lv.sigma * x0
    if kind in ("score", "energy"):
        return -eps / lv.sigma
    return flow_velocity(x0, eps, lvl)


def convert(out: Tensor, src: str, dst: str, x: Tensor, lvl: NoiseLevel) -> Tensor:
    """Convert a prediction from one parameterization to another at (x, lvl)."""
    x0, eps = to_x0_eps(src, out, x, lvl)
    return from_x0_eps(dst, x0, eps, lvl)


def eps_scale(kind: str, lvl: NoiseLevel) -> Tensor:
    """c = d out / d eps_hat at fixed x, so that |out - out*|^2 = c^2 |eps_hat - eps|^2."""
    check_parameterization(kind)
    a, s, da, ds = lvl.alpha, lvl.sigma, lvl.d_alpha, lvl.d_sigma
    if kind == "eps":
        return torch.ones_like(torch.as_tensor(a))
    if kind == "x0":
        return -s / a
    if kind == "v":
        return (a**2 + s**2) / a
    if kind in ("score", "energy"):
        return -1 / s
    return ds - da * s / a


# Loss weightings w(lambda) on the eps-space squared error |eps_hat - eps|^2.
# (Kingma & Gao 2023, "Understanding diffusion objectives", Table 1, in our lambda = log SNR.)
def weight_eps(lam: Tensor) -> Tensor:
    """'Simple' DDPM loss: the eps squared error, unweighted."""
    return torch.ones_like(lam)


def weight_x0(lam: Tensor) -> Tensor:
    """The x0 squared error: |x0_hat - x0|^2 = exp(-lambda) |eps_hat - eps|^2."""
    return torch.exp(-lam)


def weight_v(lam: Tensor) -> Tensor:
    """The v squared error of a variance-preserving process; also EDM's weighting with sigma_data = 1."""
    return 1 + torch.exp(-lam)


def weight_flow(lam: Tensor) -> Tensor:
    """The rectified-flow velocity error |u_hat - u|^2 with u = eps - x0: (1 + sigma/alpha)^2."""
    return (1 + torch.exp(-lam / 2)) ** 2


def weight_min_snr(lam: Tensor, gamma: float = 5.0) -> Tensor:
    """Min-SNR-gamma (Hang et al. 2023): the x0 error weighted by min(SNR, gamma)."""
    return torch.clamp(torch.exp(-lam) * gamma, max=1.0)


def weight_sigmoid(lam: Tensor, bias: float = 0.0) -> Tensor:
    """Sigmoid weighting (Kingma & Gao 2023): sigmoid(bias - lambda)."""
    return torch.sigmoid(bias - lam)


WEIGHTINGS = {
    "eps": weight_eps,
    "x0": weight_x0,
    "v": weight_v,
    "flow": weight_flow,
    "min_snr": weight_min_snr,
    "sigmoid": weight_sigmoid,
}


def get_weighting(name: str):
    if name not in WEIGHTINGS:
        raise ValueError(f"unknown loss weighting {name!r}; allowed: {', '.join(WEIGHTINGS)}")
    return WEIGHTINGS[name]


@torch.no_grad()
def batch_posterior_x0(x: Tensor, x0: Tensor, alpha: Tensor, sigma: Tensor, label=None) -> Tensor:
    """E[x0 | x_t = x_i] under the empirical distribution of the batch x0 [B, ...]: sum_j w_ij x0_j with
    w_ij proportional to N(x_i; alpha_i x0_j, sigma_i^2 I), over the examples j of x_i's own label when x_i has
    one (label >= 0), over all of them otherwise. x_i's own x0_i is always among them. Training on it instead
    of x0_i is the "stable target field" of Xu et al. 2023 (TrainConfig.batch_target)."""
    b = x.shape[0]
    xf, x0f = x.reshape(b, -1), x0.reshape(b, -1)
    a, s2 = alpha.reshape(b, 1).to(xf), sigma.reshape(b, 1).to(xf) ** 2
    # -|x_i - a_i x0_j|^2 / (2 s_i^2) without its row constant -|x_i|^2 / (2 s_i^2), which softmax ignores, as one
    # matrix product: [x_i a_i / s_i^2, -a_i^2 / (2 s_i^2)] . [x0_j, |x0_j|^2]
    logw = torch.cat([xf * (a / s2), -a**2 / (2 * s2)], 1) @ torch.cat([x0f, (x0f**2).sum(1, keepdim=True)], 1).T
    if isinstance(label, Tensor) and label.ndim:
        same = label[:, None] == label[None, :]
        same[label < 0] = True  # a row without a label draws on every example
        logw = torch.where(same, logw, float("-inf"))
    return (torch.softmax(logw, 1) @ x0f).reshape(x0.shape)
