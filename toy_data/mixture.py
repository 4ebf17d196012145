"""Exact Gaussian mixtures: the ground truth of every 2-D picture.

p0(x) = sum_k w_k N(x; mu_k, s_k^2 I). Noised by x_t = alpha x0 + sigma eps, each component stays
Gaussian, N(alpha mu_k, v_k I) with v_k = alpha^2 s_k^2 + sigma^2, so at every noise level we know
exactly the density, the score and the posterior over clean points:

    log p_t(x)       = logsumexp_k [log w_k + log N(x; alpha mu_k, v_k I)]
    grad log p_t(x)  = sum_k r_k(x) (alpha mu_k - x) / v_k,        r_k = responsibilities
    E[x0 | x_t = x]  = sum_k r_k(x) [mu_k + (alpha s_k^2 / v_k)(x - alpha mu_k)]   (the ideal denoiser)

A finite training set is the special case s_k = 0: its ideal denoiser is the posterior mean over the
N points, the model that can only memorise.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

NO_LABEL = -1  # in a per-row label tensor: this row is unconditional


def _level(v, n_rows: int) -> Tensor:
    """alpha or sigma as a float64 [B or 1, 1] column."""
    v = torch.as_tensor(v, dtype=torch.float64).reshape(-1, 1)
    if v.shape[0] not in (1, n_rows):
        raise ValueError(f"alpha/sigma must be scalars or have one entry per row ({n_rows}); got {v.shape[0]}")
    return v


class GaussianMixture:
    """An isotropic Gaussian mixture in D dimensions with one class label per component."""

    def __init__(self, means, stds, weights, labels, label_names, name: str = ""):
        self.means = torch.as_tensor(means, dtype=torch.float64)  # [K, D]
        self.stds = torch.as_tensor(stds, dtype=torch.float64).expand(self.means.shape[0]).clone()  # [K]
        w = torch.as_tensor(weights, dtype=torch.float64).expand(self.means.shape[0])
        self.weights = w / w.sum()  # [K]
        self.labels = torch.as_tensor(labels, dtype=torch.long).expand(self.means.shape[0]).clone()  # [K]
        self.label_names = tuple(label_names)
        self.name = name
        if self.labels.min() < 0 or self.labels.max() >= len(self.label_names):
            raise ValueError("every component label must index label_names")
        self._log_w_by_label = self._conditional_log_weights()  # [C + 1, K], last row unconditional

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def _conditional_log_weights(self) -> Tensor:
        rows = []
        for c in range(self.num_classes):
            w = torch.where(self.labels == c, self.weights, torch.zeros_like(self.weights))
            rows.append(torch.log(w / w.sum()))
        rows.append(torch.log(self.weights))
        return torch.stack(rows)

    def check_label(self, label):
        """None, an int in [0, C), or a [B] tensor with entries in [-1, C) (-1 = unconditional)."""
        if label is None:
            return None
        allowed = f"an integer in 0..{self.num_classes - 1} ({', '.join(self.label_names)})"
        if isinstance(label, bool):
            raise ValueError(f"label must be {allowed}; got {label!r}")
        try:
            lab = torch.as_tensor(label)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"label must be {allowed}; got {label!r}") from None
        if lab.dtype.is_floating_point or lab.dtype == torch.bool or lab.dtype.is_complex:
            raise ValueError(f"label must be {allowed}; got {label!r}")
        lo = NO_LABEL if lab.ndim else 0
        if lab.numel() and (lab.min() < lo or lab.max() >= self.num_classes):
            raise ValueError(f"label must be in 0..{self.num_classes - 1} for {self.name or 'this mixture'} "
                             f"({', '.join(self.label_names)}); got {label if lab.ndim == 0 else lab.tolist()}")
        return lab

    def log_weights(self, label, n_rows: int) -> Tensor:
        """[1 or B, K] log mixture weights, restricted to a label where one is given."""
        lab = self.check_label(label)
        if lab is None:
            return self._log_w_by_label[-1:]
        if lab.ndim == 0:
            return self._log_w_by_label[lab.item()][None]
        if lab.shape[0] != n_rows:
            raise ValueError(f"a label tensor needs one entry per row ({n_rows}); got {lab.shape[0]}")
        return self._log_w_by_label[torch.where(lab < 0, self.num_classes, lab)]

    # --- the exact quantities at a noise level (alpha, sigma) ---------------------------------

    def _logits(self, x: Tensor, alpha, sigma, label):
        """log w_k + log N(x; alpha mu_k, v_k I): [B, K], with the per-component variances [B or 1, K]."""
        x = x.to(torch.float64)
        a, s = _level(alpha, x.shape[0]), _level(sigma, x.shape[0])
        v = (a**2 * self.stds**2 + s**2).clamp_min(1e-12)  # [B or 1, K]
        sq = (x**2).sum(-1, keepdim=True) - 2 * a * (x @ self.means.T) + a**2 * (self.means**2).sum(-1)
        log_n = -0.5 * self.dim * torch.log(2 * math.pi * v) - sq.clamp_min(0) / (2 * v)
        return self.log_weights(label, x.shape[0]) + log_n, a, v

    def log_prob(self, x: Tensor, alpha=1.0, sigma=0.0, label=None) -> Tensor:
        """log p_t(x) (or log p_t(x | label)) for x [B, D]; returns [B] in x's dtype."""
        logits, _, _ = self._logits(x, alpha, sigma, label)
        return torch.logsumexp(logits, -1).to(x.dtype)

    def score(self, x: Tensor, alpha=1.0, sigma=0.0, label=None) -> Tensor:
        """grad_x log p_t(x) for x [B, D]."""
        logits, a, v = self._logits(x, alpha, sigma, label)
        rv = torch.softmax(logits, -1) / v  # [B, K]
        x64 = x.to(torch.float64)
        return (a * (rv @ self.means) - x64 * rv.sum(-1, keepdim=True)).to(x.dtype)

    def denoise(self, x: Tensor, alpha=1.0, sigma=0.0, label=None) -> Tensor:
        """The ideal denoiser E[x0 | x_t = x] for x [B, D]."""
        logits, a, v = self._logits(x, alpha, sigma, label)
        r = torch.softmax(logits, -1)  # [B, K]
        rg = r * a * self.stds**2 / v  # r_k alpha s_k^2 / v_k
        x64 = x.to(torch.float64)
        out = r @ self.means + x64 * rg.sum(-1, keepdim=True) - a * (rg @ self.means)
        return out.to(x.dtype)

    def posterior(self, x: Tensor, alpha, sigma, label=None):
        """p(x0 | x_t = x) as a mixture: (weights [B, K], means [B, K, D], stds [B, K])."""
        logits, a, v = self._logits(x, alpha, sigma, label)
        x64 = x.to(torch.float64)
        gain = (a * self.stds**2 / v)[..., None]  # [B or 1, K, 1]
        means = self.means + gain * (x64[:, None, :] - a[..., None] * self.means)
        stds = self.stds * torch.sqrt((v - a**2 * self.stds**2).clamp_min(0) / v)  # s_k sigma / sqrt(v_k)
        return torch.softmax(logits, -1), means, stds.expand_as(logits)

    def nearest_label(self, x: Tensor) -> Tensor:
        """The label of the component most responsible for x under p0: [B] long."""
        logits, _, _ = self._logits(x, 1.0, 0.0, None)
        return self.labels[logits.argmax(-1)]

    # --- sampling and entropy ----------------------------------------------------------------

    def sample(self, n: int, label=None, generator=None) -> tuple[Tensor, Tensor]:
        """n points from p0 (or p0(. | label)): (x [n, D] float32, labels [n] long)."""
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 10_000_000:
            raise ValueError(f"number of points must be an integer in [0, 10000000]; got {n!r}")
        log_w = self.log_weights(label, n)
        if n == 0:
            return torch.zeros(0, self.dim), torch.zeros(0, dtype=torch.long)
        if log_w.shape[0] == 1:
            k = torch.multinomial(torch.exp(log_w[0]), n, replacement=True, generator=generator)
        else:  # one label per row
            k = torch.multinomial(torch.exp(log_w), 1, generator=generator)[:, 0]
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        x = self.means[k] + self.stds[k, None] * z
        return x.float(), self.labels[k]

    def power(self) -> float:
        """E[x^2] per coordinate, exactly: sum_k w_k (|mu_k|^2 / D + std_k^2)."""
        return float((self.weights * ((self.means**2).mean(1) + self.stds**2)).sum())

    def entropy(self, n: int = 200_000, seed: int = 0) -> tuple[float, float]:
        """H(p0) = -E log p0(x) in nats, by Monte Carlo: (estimate, its standard error)."""
        if (self.stds <= 0).any():
            raise ValueError("a mixture with point masses (std 0) has no finite entropy")
        g = torch.Generator().manual_seed(seed)
        logp = torch.cat([-self.log_prob(self.sample(min(n, 50_000), generator=g)[0].double())
                          for _ in range(math.ceil(n / 50_000))])[:n]
        return logp.mean().item(), (logp.std() / math.sqrt(len(logp))).item()


def finite_set(points, labels=None, label_names=None, bandwidth: float = 0.0, name="finite set"):
    """The mixture of N training points, each a Gaussian of std `bandwidth` (0: the points themselves).

    With bandwidth 0 its `denoise` is the ideal denoiser of the finite set: the softmax-weighted
    average of the N points, the model that can only memorise.
    """
    points = torch.as_tensor(points, dtype=torch.float64)
    if points.ndim != 2 or points.shape[0] < 1:
        raise ValueError(f"points must be an [N, D] array with N >= 1; got shape {tuple(points.shape)}")
    if not torch.isfinite(points).all():
        raise ValueError("points must be finite numbers")
    if labels is None:
        labels, label_names = torch.zeros(points.shape[0], dtype=torch.long), label_names or ("all",)
    labels = torch.as_tensor(labels, dtype=torch.long)
    names = label_names or tuple(f"label {i}" for i in range(int(labels.max()) + 1))
    return GaussianMixture(points, bandwidth, torch.ones(points.shape[0]), labels, names, name)
