"""Exact 2-D ground truth: Gaussian mixtures with labels, and the finite-set ideal denoiser."""

from .datasets import DATASETS, get_dataset
from .mixture import NO_LABEL, GaussianMixture, finite_set

__all__ = ["DATASETS", "NO_LABEL", "GaussianMixture", "finite_set", "get_dataset"]
