"""Sample-quality measures against the exact ground truth."""

from __future__ import annotations

import torch
from torch import Tensor


def energy_distance(x: Tensor, y: Tensor, max_points: int = 10_000) -> float:
    """Energy distance 2 E|X-Y| - E|X-X'| - E|Y-Y'| (Szekely & Rizzo), the V-statistic, in float64.

    Inputs are flattened to [N, D]; at most `max_points` of each are used.
    """
    x = x.reshape(x.shape[0], -1)[:max_points].double()
    y = y.reshape(y.shape[0], -1)[:max_points].double()
    return (2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean()).item()


def energy_distance_floor(sample_fn, n: int, pairs: int = 5) -> float:
    """The mean energy distance between `pairs` pairs of independent true samples of size n.

    `sample_fn(n)` returns n true points. A model matching the truth scores about this much.
    """
    return sum(energy_distance(sample_fn(n), sample_fn(n)) for _ in range(pairs)) / pairs


def relative_score_error(model, dist, schedule, ts=(0.05, 0.1, 0.25, 0.5, 0.75), n: int = 4000, seed: int = 0):
    """{t: sqrt(E|s_hat - s|^2 / E|s|^2)} on points x_t drawn from the exact p_t."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for t in ts:
        alpha, sigma = schedule.alpha_sigma(t)
        x0 = dist.sample(n, generator=g)[0]
        xt = (alpha * x0 + sigma * torch.randn(x0.shape, generator=g)).float()
        true = dist.score(xt, alpha, sigma)
        err = ((model.score(xt, t) - true) ** 2).sum(-1).mean() / (true**2).sum(-1).mean()
        out[f"{t:g}"] = round(float(err.sqrt()), 4)
    return out
