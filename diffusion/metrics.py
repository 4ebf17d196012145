"""Sample-quality measures against the exact ground truth."""

from __future__ import annotations

import torch
from torch import Tensor


def energy_distance(x: Tensor, y: Tensor, max_points: int = 10_000) -> float:
    """Energy distance 2 E|X-Y| - E|X-X'| - E|Y-Y'| (Szekely & Rizzo), the V-statistic, in float64.

    Inputs are flattened to [N, D]; at most `max_points` of each are used.
    """
    x, y = _points(x, max_points), _points(y, max_points)
    return 2 * _mean_dist(x, y) - _mean_dist(x, x) - _mean_dist(y, y)


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


def floor_of(mean_yy: float, n: int) -> float:
    """The expected energy distance of two independent true samples of size n, 2 E|Y - Y'| / n (the V-statistic's
    E[ED] = 2 E|X-Y| - (1 - 1/n)(E|X-X'| + E|Y-Y'|) with X ~ Y), from the mean distance E|Y - Y'|."""
    return 2 * mean_yy / n


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
    return expected / floor_of(d_yy, n)


def _mean_dist(x: Tensor, y: Tensor) -> float:
    return torch.cdist(x, y).mean().item()


def _points(x: Tensor, max_points: int = 10_000) -> Tensor:
    """x as energy_distance uses it: [N, D] float64, at most `max_points` rows."""
    return x.reshape(x.shape[0], -1)[:max_points].double()


class EnergyReference:
    """Exact reference samples of `dist` (or of its conditional on `label`) and the energy-distance floor.

    ratio(x) = mean over references of energy_distance(x, ref) / floor, where the floor is the expected energy
    distance between two independent true samples of size n, so 1 means 'as close to the truth as a fresh
    true sample'. For the V-statistic that expectation is exactly 2 E|Y - Y'| / n, and E|Y - Y'| is the mean
    over all pairs of `pairs` x n pooled true points (`mean_distance`): far steadier than averaging the
    energy distance of a few pairs of samples (one pair's has a relative standard
    deviation of 0.7-0.8 on moons and 8gaussians, so a mean of 8 pairs still moves by about 25%).
    Each reference's self-distance term is computed once (the same float64 cdist means, combined in the same
    order as `energy_distance`).

    Even a perfect sampler's ratio scatters around 1: `controls(k)` are the ratios of k fresh exact samples,
    to show that spread beside the sampler's. Far from the truth the ratio grows in proportion to n: for two
    different distributions E[ED] = D + (E|X-X'| + E|Y-Y'|) / n, so the ratio is n D / (2 E|Y-Y'|) plus a
    term of order 1, where D is the distributions' own energy distance.

    `EnergyReference.from_samples(refs, floor)` holds given reference samples and a given floor instead.
    """

    def __init__(self, dist, n: int, label=None, seed: int = 12345, refs: int = 4, pairs: int = 4):
        g = torch.Generator().manual_seed(seed)
        pool = dist.sample(pairs * n, label=label, generator=g)[0]
        floor = floor_of(mean_distance(pool), n)
        self._hold([dist.sample(n, label=label, generator=g)[0] for _ in range(refs)], floor)
        self.dist, self.label, self.n, self.seed = dist, label, n, seed

    @classmethod
    def from_samples(cls, refs, floor: float) -> "EnergyReference":
        """A reference of the given true samples (each [n, ...]) and floor; it has no `controls`."""
        ref = cls.__new__(cls)
        ref._hold(list(refs), float(floor))
        ref.dist, ref.label, ref.n, ref.seed = None, None, len(refs[0]), None
        return ref

    def _hold(self, refs, floor: float) -> None:
        self.floor = floor
        self.refs = [_points(r) for r in refs]
        self.ref_self = [_mean_dist(r, r) for r in self.refs]

    def distances(self, x: Tensor) -> list[float]:
        """energy_distance(x, ref) for every reference."""
        x = _points(x)
        xx = _mean_dist(x, x)
        return [2 * _mean_dist(x, r) - xx - rr for r, rr in zip(self.refs, self.ref_self)]

    def ratio(self, x: Tensor) -> float:
        d = self.distances(x)
        return sum(d) / len(d) / self.floor

    def control(self, seed: int = 777) -> float:
        """The ratio of an independent exact sample of the same size (what a perfect sampler could score)."""
        return self.controls(1, seed)[0]

    def controls(self, k: int = 12, seed: int = 777) -> list[float]:
        """The ratios of k independent exact samples of the same size: how far a perfect sampler's ratio
        scatters from draw to draw at this n (the first is `control()`)."""
        if self.dist is None:
            raise ValueError("a reference built from given samples cannot draw fresh ones")
        g = torch.Generator().manual_seed(self.seed + seed)
        return [self.ratio(self.dist.sample(self.n, label=self.label, generator=g)[0]) for _ in range(k)]


def relative_score_error(model, dist, schedule, ts=(0.05, 0.1, 0.25, 0.5, 0.75), n: int = 4000, seed: int = 0,
                         label=None):
    """{t: sqrt(E|s_hat - s|^2 / E|s|^2)} on points x_t drawn from the exact p_t (of `label`'s data, if given)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for t in ts:
        alpha, sigma = schedule.alpha_sigma(t)
        x0 = dist.sample(n, label=label, generator=g)[0]
        xt = (alpha * x0 + sigma * torch.randn(x0.shape, generator=g)).float()
        true = dist.score(xt, alpha, sigma, label)
        err = ((model.score(xt, t, label) - true) ** 2).sum(-1).mean() / (true**2).sum(-1).mean()
        out[f"{t:g}"] = round(float(err.sqrt()), 4)
    return out
