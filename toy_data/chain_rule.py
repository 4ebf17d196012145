"""The autoregressive route, exact on a 2-D Gaussian mixture: p(x1, x2) = p(x1) p(x2 | x1).

Each isotropic component N(mu_k, s_k^2 I) factorises over the coordinates, so (noised to
x_t = alpha x0 + sigma eps, each component is N(alpha mu_k, v_k I) with v_k = alpha^2 s_k^2 + sigma^2)

    p(x1)      = sum_k w_k N(x1; alpha mu_k1, v_k)                        a 1-D mixture
    p(x2 | x1) = sum_k r_k(x1) N(x2; alpha mu_k2, v_k),  r_k(x1) = w_k N(x1; alpha mu_k1, v_k) / p(x1)

again a 1-D mixture, its weights reweighted by how well each component explains x1. Both factors are
normalised densities in one variable, so no normaliser Z appears anywhere; sampling goes one coordinate
at a time: x1 from p(x1), then x2 from p(x2 | x1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .mixture import GaussianMixture


def _check(dist: GaussianMixture) -> None:
    if dist.dim != 2:
        raise ValueError(f"the chain-rule example needs a 2-D mixture; got {dist.dim} dimensions")


def _components(dist: GaussianMixture, alpha: float, sigma: float, label):
    """(log weights [K], means [K, 2], variances [K]) of the mixture noised to (alpha, sigma)."""
    _check(dist)
    log_w = dist.log_weights(label, 1)[0]
    var = (alpha**2 * dist.stds**2 + sigma**2).clamp_min(1e-12)
    return log_w, alpha * dist.means, var


def _log_normal(x: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    """log N(x_b; mean_k, var_k): [B, K] for x [B]."""
    return -0.5 * torch.log(2 * math.pi * var) - (x[:, None] - mean) ** 2 / (2 * var)


def marginal_log_prob(dist: GaussianMixture, x1, alpha: float = 1.0, sigma: float = 0.0, label=None) -> Tensor:
    """log p(x1) [B] of the first coordinate (float64), for x1 [B]."""
    log_w, mean, var = _components(dist, alpha, sigma, label)
    x1 = torch.as_tensor(x1, dtype=torch.float64).reshape(-1)
    return torch.logsumexp(log_w + _log_normal(x1, mean[:, 0], var), -1)


def conditional_log_weights(dist: GaussianMixture, x1, alpha: float = 1.0, sigma: float = 0.0,
                            label=None) -> Tensor:
    """log r_k(x1) [B, K]: the components' weights in p(x2 | x1), each w_k reweighted by N(x1; its mean, var)."""
    log_w, mean, var = _components(dist, alpha, sigma, label)
    x1 = torch.as_tensor(x1, dtype=torch.float64).reshape(-1)
    return torch.log_softmax(log_w + _log_normal(x1, mean[:, 0], var), -1)


def conditional_log_prob(dist: GaussianMixture, x2, x1, alpha: float = 1.0, sigma: float = 0.0,
                         label=None) -> Tensor:
    """log p(x2 | x1) [B] (float64), for x2 [B] and x1 [B] (or one x1 for every x2)."""
    x2 = torch.as_tensor(x2, dtype=torch.float64).reshape(-1)
    x1 = torch.as_tensor(x1, dtype=torch.float64).reshape(-1).expand(x2.shape[0])
    _, mean, var = _components(dist, alpha, sigma, label)
    return torch.logsumexp(conditional_log_weights(dist, x1, alpha, sigma, label)
                           + _log_normal(x2, mean[:, 1], var), -1)


def chain_rule_sample(dist: GaussianMixture, n: int, alpha: float = 1.0, sigma: float = 0.0, label=None,
                      generator=None) -> Tensor:
    """n points [n, 2] (float64) drawn one coordinate at a time: x1 ~ p(x1), then x2 ~ p(x2 | x1).

    The component that produced x1 is forgotten: x2's component is drawn afresh from r_k(x1), as an
    autoregressive model that only sees x1 would have to.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 10_000_000:
        raise ValueError(f"number of points must be an integer in [0, 10000000]; got {n!r}")
    log_w, mean, var = _components(dist, alpha, sigma, label)
    if n == 0:
        return torch.zeros(0, 2, dtype=torch.float64)
    k1 = torch.multinomial(torch.exp(log_w), n, replacement=True, generator=generator)
    x1 = mean[k1, 0] + var[k1].sqrt() * torch.randn(n, generator=generator, dtype=torch.float64)
    r = torch.exp(conditional_log_weights(dist, x1, alpha, sigma, label))
    k2 = torch.multinomial(r, 1, generator=generator)[:, 0]
    x2 = mean[k2, 1] + var[k2].sqrt() * torch.randn(n, generator=generator, dtype=torch.float64)
    return torch.stack([x1, x2], 1)
