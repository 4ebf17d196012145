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


def mean_distance(x: Tensor, y: Tensor | None = None, chunk: int = 2048) -> float:
    """E|X - Y| over all pairs of rows of x and y; with y None, E|X - X'| over pairs i != j (unbiased).

    Computed in float64 in chunks of rows, so 20,000 x 20,000 pairs need no 3 GB matrix.
    """
    x = x.reshape(x.shape[0], -1).double()
    same = y is None
    y = x if same else y.reshape(y.shape[0], -1).double()
    total = 0.0
    for i in range(0, len(x), chunk):
        total += torch.cdist(x[i:i + chunk], y).sum().item()  # the diagonal of x with itself adds 0
    pairs = len(x) * (len(x) - 1) if same else len(x) * len(y)
    return total / pairs


def energy_distance_ratio(x: Tensor, y: Tensor, n: int) -> float:
    """E[ED(n model points, n true points)] / E[ED(n true points, n true points)], estimated from all of x and y.

    x are model samples and y true samples, each best several times n. For the V-statistic of
    `energy_distance` on two independent sets of size n, E[ED] = 2 E|X-Y| - (1 - 1/n)(E|X-X'| + E|Y-Y'|),
    so both expectations follow from three mean distances: this is the ratio that averaging
    energy_distance(model n, true n) / energy_distance(true n, true n) over many draws would give,
    without the swing of any one draw (large for well-separated modes, whose counts dominate).
    1 means a model sample is as close to the truth as a fresh true sample of the same size.
    """
    if not (isinstance(n, int) and n >= 2):
        raise ValueError(f"n must be an integer >= 2; got {n!r}")
    d_xy, d_xx, d_yy = mean_distance(x, y), mean_distance(x), mean_distance(y)
    expected = 2 * d_xy - (1 - 1 / n) * (d_xx + d_yy)
    return expected / (2 * d_yy / n)


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
