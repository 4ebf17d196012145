"""Exact 2-D ground truth (Gaussian mixtures with labels) and the MNIST loader."""

from .datasets import DATASETS, get_dataset
from .mixture import NO_LABEL, GaussianMixture, finite_set

__all__ = ["DATASETS", "NO_LABEL", "GaussianMixture", "finite_set", "get_dataset"]
