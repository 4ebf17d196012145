"""Model wrappers: anything that predicts, turned into `model(x, t, label) -> x0_hat` for the samplers."""

from __future__ import annotations

import torch
from torch import Tensor

from .schedules import Schedule


def oracle_model(dist, schedule: Schedule):
    """The exact denoiser of a ground-truth distribution (anything with `denoise(x, alpha, sigma, label)`)."""

    def model(x: Tensor, t, label=None) -> Tensor:
        alpha, sigma = schedule.alpha_sigma(t)
        return dist.denoise(x, alpha, sigma, label)

    return model
