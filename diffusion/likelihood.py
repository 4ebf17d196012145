"""Exact likelihood through the probability-flow ODE (Song et al. 2021, Sec. D.2; Chen et al. 2018).

Along dx/dt = v(x, t) the log-density changes as d log p_t(x_t)/dt = -div v(x_t, t), so

    log p_t0(x) = log p_T(x_T) + int_t0^T div v(x_t, t) dt,

integrated from the data (or any t0) up to t_max, where p_T is the Gaussian prior. The divergence is
exact in low dimension (one backward pass per coordinate) and Hutchinson's estimate E[z^T J z]
(Rademacher z) in high dimension.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .parameterizations import flow_velocity, to_x0_eps
from .grids import check_steps
from .schedules import as_time

BOX_HALF = 3.0  # the toy sets are standardised: [-3, 3]^2 holds nearly all their mass (ui.figures.EXTENT)
LOG_Z_TIMES = (0.05, 0.3, 0.6)  # the times at which training records an energy head's log Z_theta(t)
LOG_Z_CHUNK = 4096  # grid points per network call in log_z_grid


def velocity(model, x: Tensor, t, label=None, create_graph: bool = False) -> Tensor:
    """The probability-flow velocity alpha' x0_hat + sigma' eps_hat of a DiffusionModel (differentiable)."""
    out, lvl = model.predict(x, t, label, create_graph=create_graph)
    x0, eps = to_x0_eps(model.parameterization, out, x, lvl)
    return flow_velocity(x0, eps, lvl)


def _velocity_and_divergence(model, x, t, label, exact: bool, z):
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = velocity(model, x, t, label, create_graph=True)
        flat_v, d = v.reshape(x.shape[0], -1), x[0].numel()
        if exact:
            div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
            for i in range(d):
                (g,) = torch.autograd.grad(flat_v[:, i].sum(), x, retain_graph=i < d - 1)
                div = div + g.reshape(x.shape[0], -1)[:, i]
        else:
            (g,) = torch.autograd.grad((v * z).sum(), x)
            div = (g * z).reshape(x.shape[0], -1).sum(-1)
    return v.detach(), div.detach()


def ode_log_likelihood(model, x: Tensor, label=None, t_start: float = 0.0, steps: int = 64,
                       exact: bool | None = None, generator=None) -> Tensor:
    """log p_t_start(x) [B] in nats, by Heun's method on a grid uniform in log-SNR from t_start to t_max.

    `exact` (default: dim <= 16) chooses the exact divergence over Hutchinson's estimator.
    """
    schedule = model.schedule
    check_steps(steps)
    d = x[0].numel()
    exact = d <= 16 if exact is None else exact
    t_lo, t_hi = schedule.t_range
    t0 = min(max(float(as_time(t_start)), t_lo), t_hi)
    correction = torch.zeros(x.shape[0], dtype=torch.float64)
    if float(t_start) == 0.0:
        # x is data as `sample()` returns it, x_{t_min} / alpha(t_min): score its density, not p_{t_min}'s.
        alpha0 = schedule.alpha_sigma(t0)[0].item()
        x = x * alpha0
        correction += d * math.log(alpha0)
    lam = torch.linspace(schedule.logsnr(t0).item(), schedule.logsnr(t_hi).item(), steps + 1, dtype=torch.float64)
    ts = schedule.t_of_logsnr(lam)
    ts[0], ts[-1] = t0, t_hi
    z = None
    if not exact:
        z = (torch.randint(0, 2, x.shape, generator=generator) * 2 - 1).to(x)
    delta = torch.zeros(x.shape[0], dtype=torch.float64)  # accumulated on the CPU (MPS has no float64)
    for i in range(steps):
        t, s = ts[i], ts[i + 1]
        v1, div1 = _velocity_and_divergence(model, x, t, label, exact, z)
        x_e = x + (s - t).item() * v1
        v2, div2 = _velocity_and_divergence(model, x_e, s, label, exact, z)
        x = x + (s - t).item() * (v1 + v2) / 2
        delta = delta + (s - t).item() * (div1 + div2).detach().cpu().double() / 2
    alpha, sigma = schedule.alpha_sigma(t_hi)
    var = (alpha**2 + sigma**2).item()  # the prior N(0, (alpha^2 + sigma^2) I) of samplers.prior_sample
    flat = x.detach().cpu().reshape(x.shape[0], -1).double()
    log_prior = -0.5 * d * math.log(2 * math.pi * var) - (flat**2).sum(-1) / (2 * var)
    return log_prior + delta + correction


def nll(model, x: Tensor, label=None, steps: int = 64, exact: bool | None = None, generator=None) -> dict:
    """Mean negative log-likelihood of data x in nats (per example) and bits per dimension."""
    logp = ode_log_likelihood(model, x, label, 0.0, steps, exact, generator)
    nats = -logp.mean().item()
    return {"nll_nats": nats, "bits_per_dim": nats / (x[0].numel() * math.log(2))}


def energy_via_ode(model, x: Tensor, t: float, label=None, steps: int = 48) -> Tensor:
    """The learned energy E_t(x) = -log p_t(x) of any head, through the ODE from t to t_max: [B]."""
    return -ode_log_likelihood(model, x, label, t, steps)


def log_z_grid(model, t: float, label=None, n: int = 64, half: float = BOX_HALF) -> float:
    """log Z_theta(t) = log of the integral of exp(-E_theta(x, t)) over [-half, half]^2, for an energy head.

    The midpoint rule on n x n cells (error O(h^2) for a smooth E, h = 2 half / n), summed by a float64
    logsumexp so that any constant in E_theta neither overflows nor underflows. E_theta is defined only up to a
    constant in x for each t (training sees its gradient), so log Z_theta(t) is whatever that constant makes it.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"grid cells per axis n must be >= 1; got {n}")
    if not half > 0:
        raise ValueError(f"the box's half-width must be > 0; got {half}")
    h = 2 * half / n
    centres = -half + h * (torch.arange(n, dtype=torch.float64) + 0.5)
    g1, g2 = torch.meshgrid(centres, centres, indexing="xy")
    pts = torch.stack([g1.ravel(), g2.ravel()], 1)
    inner = getattr(model, "model", model)  # a Rescheduled wrapper holds the module
    param = next(iter(inner.parameters()), None) if hasattr(inner, "parameters") else None
    device = param.device if param is not None else torch.device("cpu")
    pts = pts.to(device, torch.float32)
    with torch.no_grad():  # in chunks, so a fine grid's activations stay small
        e = torch.cat([model.energy(chunk, float(t), label).cpu() for chunk in pts.split(LOG_Z_CHUNK)])
    return float(torch.logsumexp(-e.double(), 0)) + 2 * math.log(h)
