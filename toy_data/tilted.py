"""The tilted density that classifier-free guidance aims at, exact for a Gaussian mixture.

Guidance with weight w replaces the score of p_t(x | c) by (1 + w) grad log p_t(x | c) - w grad log p_t(x).
At t = 0 that is the score of the tilted density

    p_w(x) = p(x | c)^(1+w) p(x)^(-w) / Z  =  p(x | c) P(c | x)^w / Z',      P(c | x) = pi_c p(x | c) / p(x),

p(x | c) reweighted by how surely x belongs to c (pi_c is the label's share of the mass). For w >= 0 the
factor P(c | x)^w lies in [0, 1], so drawing x ~ p(x | c) and keeping it with probability P(c | x)^w
samples p_w exactly (rejection sampling); Z' = E_{p(x|c)}[P(c | x)^w] is the rate at which points are kept.
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
