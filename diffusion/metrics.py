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
