"""Eight 2-D toy distributions, each an exact Gaussian mixture with natural class labels.

Shapes along curves are chains of small Gaussians spaced closer than their width, so the density
is smooth along the curve. Every set is standardised (mean 0 and variance 1 averaged over the two
coordinates, computed exactly from the mixture) so one noise schedule suits them all.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from .mixture import GaussianMixture


def _standardised(means, stds, weights, labels, label_names, name) -> GaussianMixture:
    means = torch.as_tensor(means, dtype=torch.float64)
    stds = torch.as_tensor(stds, dtype=torch.float64).expand(means.shape[0])
    w = torch.as_tensor(weights, dtype=torch.float64).expand(means.shape[0])
    w = w / w.sum()
    centre = w @ means
    var = (w * (((means - centre) ** 2).sum(-1) + means.shape[1] * stds**2)).sum() / means.shape[1]
    scale = 1 / torch.sqrt(var)
    return GaussianMixture((means - centre) * scale, stds * scale, w, labels, label_names, name)


def _chain(points: torch.Tensor, spacing: float) -> torch.Tensor:
    """Resample a polyline [M, 2] at equal arc length, about `spacing` apart."""
    seg = (points[1:] - points[:-1]).norm(dim=-1)
    s = torch.cat([torch.zeros(1, dtype=points.dtype), seg.cumsum(0)])
    n = max(2, int(math.ceil(s[-1].item() / spacing)) + 1)
    target = torch.linspace(0, s[-1].item(), n, dtype=points.dtype)
    idx = torch.searchsorted(s, target).clamp(1, len(s) - 1)
    f = ((target - s[idx - 1]) / (s[idx] - s[idx - 1]).clamp_min(1e-12))[:, None]
    return points[idx - 1] + f * (points[idx] - points[idx - 1])


def _curve(fn, lo, hi, spacing):
    th = torch.linspace(lo, hi, 2000, dtype=torch.float64)
    return _chain(torch.stack(fn(th), -1), spacing)


def moons() -> GaussianMixture:
    """Two interleaving half circles (scikit-learn's make_moons shape); label = which moon."""
    upper = _curve(lambda t: (torch.cos(t), torch.sin(t)), 0, math.pi, 0.06)
    lower = _curve(lambda t: (1 - torch.cos(t), 0.5 - torch.sin(t)), 0, math.pi, 0.06)
    means = torch.cat([upper, lower])
    labels = torch.cat([torch.zeros(len(upper)), torch.ones(len(lower))])
    w = torch.cat([torch.full((len(upper),), 1 / len(upper)), torch.full((len(lower),), 1 / len(lower))])
    return _standardised(means, 0.1, w, labels, ("upper moon", "lower moon"), "moons")


def swiss_roll() -> GaussianMixture:
    """A 2-D Swiss roll r = theta, theta in [1.5 pi, 4.5 pi], uniform along its length; label = which half-turn (theta in [1.5, 2.5), [2.5, 3.5), [3.5, 4.5] pi)."""
    pts = _curve(lambda t: (t * torch.cos(t), t * torch.sin(t)), 1.5 * math.pi, 4.5 * math.pi, 0.4)
    theta = torch.linalg.norm(pts, dim=-1)
    labels = ((theta - 1.5 * math.pi) / math.pi).floor().clamp(0, 2)
    return _standardised(pts, 0.5, 1.0, labels, ("inner turn", "middle turn", "outer turn"), "swiss_roll")


def circles() -> GaussianMixture:
    """Three concentric rings of radius 1, 2, 3 with equal mass; label = which ring."""
    means, labels, w = [], [], []
    for i, r in enumerate((1.0, 2.0, 3.0)):
        ring = _curve(lambda t: (r * torch.cos(t), r * torch.sin(t)), 0, 2 * math.pi, 0.12)[:-1]
        means.append(ring)
        labels.append(torch.full((len(ring),), i))
        w.append(torch.full((len(ring),), 1 / len(ring)))
    return _standardised(torch.cat(means), 0.15, torch.cat(w), torch.cat(labels),
                         ("inner ring", "middle ring", "outer ring"), "circles")


def spiral() -> GaussianMixture:
    """A two-armed Archimedean spiral, uniform along each arm; label = which arm."""
    means, labels = [], []
    for arm in range(2):
        phase = arm * math.pi
        pts = _curve(lambda t: (t * torch.cos(t + phase), t * torch.sin(t + phase)), 0.5 * math.pi,
                     3.5 * math.pi, 0.4)
        means.append(pts)
        labels.append(torch.full((len(pts),), arm))
    return _standardised(torch.cat(means), 0.35, 1.0, torch.cat(labels), ("arm A", "arm B"), "spiral")


def eight_gaussians() -> GaussianMixture:
    """Eight Gaussians on a circle; label = which Gaussian (compass direction)."""
    ang = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    means = 2 * torch.stack([torch.cos(ang), torch.sin(ang)], -1)
    names = ("E", "NE", "N", "NW", "W", "SW", "S", "SE")
    return _standardised(means, 0.2, 1.0, torch.arange(8), names, "8gaussians")


def grid() -> GaussianMixture:
    """A 5 x 5 grid of Gaussians; label = which row (bottom to top)."""
    ij = torch.stack(torch.meshgrid(torch.arange(5.0), torch.arange(5.0), indexing="xy"), -1).reshape(-1, 2)
    means = ij.double() - 2
    labels = ij[:, 1].long()
    return _standardised(means, 0.12, 1.0, labels, tuple(f"row {i + 1}" for i in range(5)), "grid")


def checkerboard() -> GaussianMixture:
    """The 8 dark squares of a 4 x 4 board, each a 4 x 4 patch of Gaussians; label = which row of the board."""
    sub = (torch.arange(4, dtype=torch.float64) + 0.5) / 4  # patch centres inside a unit square
    patch = torch.stack(torch.meshgrid(sub, sub, indexing="xy"), -1).reshape(-1, 2)
    means, labels = [], []
    for row in range(4):
        for col in range(4):
            if (row + col) % 2 == 0:
                means.append(patch + torch.tensor([col - 2.0, row - 2.0], dtype=torch.float64))
                labels.append(torch.full((len(patch),), row))
    return _standardised(torch.cat(means), 0.11, 1.0, torch.cat(labels),
                         tuple(f"row {i + 1}" for i in range(4)), "checkerboard")


def pinwheel() -> GaussianMixture:
    """Five curved arms that widen outwards; label = which arm."""
    means, stds, labels = [], [], []
    r = torch.linspace(0.35, 2.0, 30, dtype=torch.float64)
    for arm in range(5):
        ang = arm * 2 * math.pi / 5 + 0.9 * r
        means.append(torch.stack([r * torch.cos(ang), r * torch.sin(ang)], -1))
        stds.append(0.04 + 0.06 * r)
        labels.append(torch.full((len(r),), arm))
    return _standardised(torch.cat(means), torch.cat(stds), 1.0, torch.cat(labels),
                         tuple(f"arm {i + 1}" for i in range(5)), "pinwheel")


DATASETS = {
    "moons": moons,
    "swiss_roll": swiss_roll,
    "circles": circles,
    "spiral": spiral,
    "8gaussians": eight_gaussians,
    "grid": grid,
    "checkerboard": checkerboard,
    "pinwheel": pinwheel,
}


@lru_cache(maxsize=None)
def get_dataset(name: str) -> GaussianMixture:
    """A toy distribution by name (built once, then shared; treat it as read-only)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
    return DATASETS[name]()
