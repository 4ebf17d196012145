"""The tilted density that classifier-free guidance aims at, exact for a Gaussian mixture.

Guidance with weight w replaces the score of p_t(x | c) by (1 + w) grad log p_t(x | c) - w grad log p_t(x).
At t = 0 that is the score of the tilted density

    p_w(x) = p(x | c)^(1+w) p(x)^(-w) / Z  =  p(x | c) P(c | x)^w / Z',      P(c | x) = pi_c p(x | c) / p(x),

p(x | c) reweighted by how surely x belongs to c (pi_c is the label's share of the mass). For w >= 0 the
factor P(c | x)^w lies in [0, 1], so drawing x ~ p(x | c) and keeping it with probability P(c | x)^w
samples p_w exactly (rejection sampling); Z' = E_{p(x|c)}[P(c | x)^w] is the rate at which points are kept.

Composed prompts s(x) + sum_i w_i (s(x | c_i) - s(x)) aim, at t = 0, at

    p(x) prod_i (p(x | c_i) / p(x))^{w_i}      ("a AND NOT b": w_a > 0, w_b < 0),

whose factor for a "not" is unbounded, so `ComposedMixture` normalises it on a grid instead and samples the
grid's piecewise-constant density exactly: a cell drawn by its mass, then a point uniform in the cell.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .mixture import GaussianMixture


class TiltedMixture:
    """p(x | c)^(1+w) p(x)^(-w), normalised, for a GaussianMixture `dist`, a label c and a weight w >= 0."""

    def __init__(self, dist: GaussianMixture, label: int, w: float):
        w = float(w)
        if not (w == w and 0 <= w <= 100):
            raise ValueError(f"the tilt's weight w must be in [0, 100]; got {w}")
        dist.check_label(label)
        if label is None:
            raise ValueError("the tilted density needs a label")
        self.dist, self.label, self.w = dist, int(label), w
        self.name = f"{dist.name} tilted to {dist.label_names[self.label]}, w = {w:g}"
        self.log_pi = math.log(dist.weights[dist.labels == self.label].sum().item())  # log pi_c

    def log_class_posterior(self, x: Tensor) -> Tensor:
        """log P(c | x) at t = 0: [B] float64."""
        x = x.double()
        return self.log_pi + self.dist.log_prob(x, label=self.label) - self.dist.log_prob(x)

    def log_prob_unnormalised(self, x: Tensor) -> Tensor:
        """(1 + w) log p(x | c) - w log p(x): [B] float64 (its normaliser is `normaliser()`)."""
        x = x.double()
        return (1 + self.w) * self.dist.log_prob(x, label=self.label) - self.w * self.dist.log_prob(x)

    def sample(self, n: int, label=None, generator=None) -> tuple[Tensor, Tensor]:
        """n exact points (x [n, D] float32, labels [n]) by rejection from p(x | c); `label` is ignored (the
        tilt fixes it), so this reads like GaussianMixture.sample."""
        out, have = [], 0
        for _ in range(1000):
            x = self.dist.sample(max(64, 2 * (n - have)), label=self.label, generator=generator)[0]
            u = torch.rand(x.shape[0], generator=generator, dtype=torch.float64)
            keep = x[torch.log(u) < self.w * self.log_class_posterior(x)]
            out.append(keep[: n - have])
            have += len(out[-1])
            if have == n:
                x = torch.cat(out)
                return x, torch.full((n,), self.label, dtype=torch.long)
        raise ValueError(f"{self.name}: fewer than 1 in 1000 points of the label are kept; use a smaller w")

    def normaliser(self, n: int = 200_000, seed: int = 0) -> tuple[float, float]:
        """Z = integral of exp(log_prob_unnormalised) = pi_c^(-w) E_{p(x|c)}[P(c | x)^w], by Monte Carlo:
        (estimate, its standard error)."""
        x = self.dist.sample(n, label=self.label, generator=torch.Generator().manual_seed(seed))[0]
        a = torch.exp(self.w * self.log_class_posterior(x) - self.w * self.log_pi)
        return a.mean().item(), (a.std() / math.sqrt(n)).item()

    def grid(self, n: int = 200, extent: float = 3.5):
        """(xs [n], ys [n], p [n, n]) of the density on a square grid, normalised numerically so that
        sum(p) * dx^2 = 1; p[i, j] is at (xs[j], ys[i])."""
        xs = np.linspace(-extent, extent, n)
        gx, gy = np.meshgrid(xs, xs)
        logp = self.log_prob_unnormalised(torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], -1))).numpy()
        p = np.exp(logp - logp.max()).reshape(n, n)
        return xs, xs, p / (p.sum() * (xs[1] - xs[0]) ** 2)


def label_log_probs(dist: GaussianMixture, x: Tensor, chunk: int | None = None) -> Tensor:
    """[C + 1, B] float64: log p(x | c) for every label c, and log p(x) in the last row, from one pass over the
    components (dist.log_prob per label computes the same numbers, C + 1 times over). Points go `chunk` at a
    time (by default about 4 million point-component pairs, 32 MB)."""
    x = x.double()
    chunk = chunk or max(256, 4_000_000 // len(dist.means))
    logw = torch.log(dist.weights)
    groups = [(dist.labels == c, math.log(dist.weights[dist.labels == c].sum().item()))
              for c in range(dist.num_classes)]
    dim, out = x.shape[1], []
    for part in x.split(chunk):
        d2 = torch.cdist(part, dist.means).pow(2)  # [b, K]
        logn = -d2 / (2 * dist.stds**2) - dim * torch.log(dist.stds) - dim / 2 * math.log(2 * math.pi) + logw
        out.append(torch.stack([torch.logsumexp(logn[:, m], 1) - log_pi for m, log_pi in groups]
                               + [torch.logsumexp(logn, 1)]))
    return torch.cat(out, 1)


class ComposedMixture:
    """p(x) prod_i (p(x | c_i) / p(x))^{w_i} for `prompts` [(label c_i, weight w_i)], normalised on a grid.

    The density is first evaluated on cells of `COARSE` data units over [-search, search]^2 to find where its
    mass is; the `cells` x `cells` grid of square cells then covers that region (padded), and the composed
    density is the piecewise-constant one with each cell's centre value. `sample` is exact for it. A density
    whose mass runs to the edge of the search square (a "not" that outweighs the rest) raises ValueError.
    """

    # Every point is within 0.14 of a coarse centre: a component of std 0.05 (page 8's narrowest) still shows there
    # at e^-4 of its peak, far above the 1e-12 share that marks where the mass is.
    COARSE = 0.2

    def __init__(self, dist: GaussianMixture, prompts, cells: int = 300, search: float = 20.0):
        prompts = [(c, float(w)) for c, w in prompts]
        for c, w in prompts:
            dist.check_label(c)
            if c is None:
                raise ValueError("every prompt of a composition needs a label")
            if not (w == w and -8 <= w <= 8):
                raise ValueError(f"a prompt's weight must be in [-8, 8]; got {w}")
        if not prompts:
            raise ValueError("give at least one prompt (a label and a weight)")
        self.dist, self.prompts = dist, [(int(c), w) for c, w in prompts]
        self.name = f"{dist.name}: " + " ".join(
            f"{'AND' if i and w >= 0 else ''}{'NOT' if w < 0 else ''} {dist.label_names[c]} ({abs(w):g})".strip()
            for i, (c, w) in enumerate(self.prompts))
        # 1. where is the mass? (a coarse grid over the search square)
        edges = np.arange(-search, search + 1e-9, self.COARSE)
        centres = (edges[:-1] + edges[1:]) / 2
        logp = self._grid_log(centres, centres)
        share = np.exp(logp - logp.max())
        share /= share.sum()
        rim = share[:2].sum() + share[-2:].sum() + share[:, :2].sum() + share[:, -2:].sum()
        if rim > 1e-9:
            raise ValueError(f"{self.name}: the composed density's mass reaches the edge of the square searched, "
                             f"[-{search:g}, {search:g}]^2 (far past the data, or off to infinity: then it cannot be "
                             "normalised); make the NOT weight smaller or the AND weight larger")
        rows, cols = np.nonzero(share > 1e-12)
        pad = 3 * self.COARSE + 3 * dist.stds.max().item()
        lo = np.array([centres[cols.min()], centres[rows.min()]]) - pad
        hi = np.array([centres[cols.max()], centres[rows.max()]]) + pad
        half = (hi - lo).max() / 2
        mid = (lo + hi) / 2
        # 2. the fine grid: `cells` square cells a side, centred on the mass
        self.cell = 2 * half / cells
        self.edges = [m - half + self.cell * np.arange(cells + 1) for m in mid]  # x edges, y edges
        self.xs, self.ys = ((e[:-1] + e[1:]) / 2 for e in self.edges)
        logp = self._grid_log(self.xs, self.ys)
        self.log_top = float(logp.max())
        mass = np.exp(logp - self.log_top)
        self.log_z = self.log_top + math.log(mass.sum() * self.cell**2)  # log of the grid's integral
        self.mass = torch.from_numpy((mass / mass.sum()).ravel())  # [cells^2]: each cell's share, row-major in y

    def log_prob_unnormalised(self, x: Tensor) -> Tensor:
        """log p(x) + sum_i w_i (log p(x | c_i) - log p(x)): [B] float64."""
        lp = label_log_probs(self.dist, x)
        out = lp[-1].clone()
        for c, w in self.prompts:
            out += w * (lp[c] - lp[-1])
        return out

    def _grid_log(self, xs, ys) -> np.ndarray:
        gx, gy = np.meshgrid(xs, ys)
        pts = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], -1))
        return self.log_prob_unnormalised(pts).numpy().reshape(len(ys), len(xs))

    def grid(self):
        """(xs [n], ys [n], p [n, n]): the cells' centres and the normalised density (sum(p) * cell^2 = 1);
        p[i, j] is at (xs[j], ys[i])."""
        n = len(self.xs)
        return self.xs, self.ys, self.mass.numpy().reshape(n, n) / self.cell**2

    def sample(self, n: int, label=None, generator=None) -> tuple[Tensor, Tensor]:
        """n exact points of the grid's density (x [n, 2] float32, labels [n] of -1): a cell drawn by its mass,
        then a uniform point in it. `label` is ignored, so this reads like GaussianMixture.sample."""
        idx = torch.multinomial(self.mass, n, replacement=True, generator=generator)
        cells = len(self.xs)
        corner = torch.stack([torch.from_numpy(self.edges[0])[idx % cells], torch.from_numpy(self.edges[1])[idx // cells]], 1)
        x = corner + self.cell * torch.rand(n, 2, generator=generator, dtype=torch.float64)
        return x.float(), torch.full((n,), -1, dtype=torch.long)
