"""A small MNIST classifier: part of the evaluation of the digit models, never of the generator.

It answers two questions about generated digits:
  * is a sample of the requested class?  (`predict`: the most likely digit)
  * do the samples look like real digits as a whole?  (`features`: the 128-d penultimate activations,
    in which `frechet_distance` compares two sets of images, the way FID uses an Inception network)

Images are [B, 1, 28, 28] in [-1, 1], as `toy_data.mnist.load_mnist` returns them. The network:

    conv 3x3 32 - BN - ReLU - maxpool        28 -> 14
    conv 3x3 64 - BN - ReLU - maxpool        14 -> 7
    conv 3x3 128 - BN - ReLU - maxpool        7 -> 3
    linear 1152 -> 128 - ReLU  = features     (dropout while training)
    linear 128 -> 10           = logits

The checkpoint also stores the feature mean and covariance of the 10,000 test digits (with a
fingerprint of the data they came from), so an evaluation need not embed the test set each time.

Saved as one .safetensors file (loading cannot execute code) whose metadata holds a JSON config with
format "diffusion-lab-classifier/1", so a classifier and a diffusion checkpoint can never be confused:
each loader refuses the other's files with a CheckpointError naming the file.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import asdict, dataclass

import numpy as np
import torch
from safetensors.torch import save as st_save
from torch import Tensor, nn

from .checkpoints import FORMAT as DIFFUSION_FORMAT
from .checkpoints import CheckpointError, atomic_write, read_safetensors

CLASSIFIER_FORMAT = "diffusion-lab-classifier/1"
DEFAULT_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "checkpoints",
                            "mnist_classifier.safetensors")


@dataclass
class ClassifierConfig:
    channels: int = 1
    size: int = 28
    widths: tuple = (32, 64, 128)  # conv channels per stage; each stage halves the resolution
    feature_dim: int = 128
    num_classes: int = 10
    dropout: float = 0.3

    def __post_init__(self):
        self.widths = tuple(int(w) for w in self.widths)
        if not 1 <= len(self.widths) <= 4 or not all(4 <= w <= 512 for w in self.widths):
            raise ValueError(f"widths must be 1-4 integers in [4, 512]; got {list(self.widths)}")
        if not 8 <= self.size <= 256 or not 1 <= self.channels <= 4:
            raise ValueError(f"size must be in [8, 256] and channels in [1, 4]; got {self.size}, {self.channels}")
        if not 2 <= self.num_classes <= 1000 or not 2 <= self.feature_dim <= 4096:
            raise ValueError(f"num_classes must be in [2, 1000] and feature_dim in [2, 4096]; "
                             f"got {self.num_classes}, {self.feature_dim}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout}")


class MnistClassifier(nn.Module):
    def __init__(self, config: ClassifierConfig | None = None):
        super().__init__()
        self.cfg = config or ClassifierConfig()
        layers, c, side = [], self.cfg.channels, self.cfg.size
        for w in self.cfg.widths:
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2)]
            c, side = w, side // 2
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Linear(c * side * side, self.cfg.feature_dim)
        self.drop = nn.Dropout(self.cfg.dropout)
        self.head = nn.Linear(self.cfg.feature_dim, self.cfg.num_classes)

    def config(self) -> dict:
        d = asdict(self.cfg)
        d["widths"] = list(d["widths"])
        return d

    def _check(self, x: Tensor) -> None:
        want = (self.cfg.channels, self.cfg.size, self.cfg.size)
        if x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(f"classifier input must have shape [B, {', '.join(map(str, want))}]; "
                             f"got {list(x.shape)}")

    def features(self, x: Tensor) -> Tensor:
        """[B, feature_dim]: the penultimate activations (after ReLU), the space of the Frechet distance."""
        self._check(x)
        return torch.relu(self.fc(self.conv(x).flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        """[B, num_classes] logits."""
        return self.head(self.drop(self.features(x)))

    @torch.no_grad()
    def predict(self, x: Tensor, batch: int = 1000) -> Tensor:
        """[B] the most likely class of each image (eval mode, in batches)."""
        return torch.cat([self(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)]) if len(x) else \
            torch.zeros(0, dtype=torch.long)

    @torch.no_grad()
    def embed(self, x: Tensor, batch: int = 1000) -> Tensor:
        """[B, feature_dim] features in batches, without gradients."""
        if not len(x):
            return torch.zeros(0, self.cfg.feature_dim)
        return torch.cat([self.features(x[i:i + batch]) for i in range(0, len(x), batch)])


def fingerprint(images: Tensor) -> str:
    """A crc32 of an image set (its float32 bytes) and its size: which data a stored reference describes."""
    a = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)
    return f"{zlib.crc32(a.tobytes()):08x}-{len(a)}"


def reference_stats(model: MnistClassifier, images: Tensor) -> dict:
    """The feature statistics of a reference set (the test split), to store beside the weights:
    {"mean" [D], "cov" [D, D] (float64), "fingerprint"}. Embedding 10,000 digits takes ~10-20 s on
    one CPU core; evaluation runs reuse these when the test set on disk has the same fingerprint."""
    mean, cov = gaussian_stats(model.embed(images))
    return {"mean": mean, "cov": cov, "fingerprint": fingerprint(images)}


def save_classifier(path, model: MnistClassifier, reference: dict | None = None, **extra) -> dict:
    """Write weights + config (format CLASSIFIER_FORMAT, plus `extra`, e.g. accuracy) atomically; returns the config.

    `reference` (from `reference_stats`) is stored as the tensors reference.mean / reference.cov."""
    config = {"format": CLASSIFIER_FORMAT, "kind": "mnist-classifier", "net": model.config(), **extra}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if reference is not None:
        config["reference"] = {"split": "test", "fingerprint": reference["fingerprint"]}
        tensors["reference.mean"] = torch.as_tensor(reference["mean"], dtype=torch.float64).contiguous()
        tensors["reference.cov"] = torch.as_tensor(reference["cov"], dtype=torch.float64).contiguous()
    atomic_write(path, st_save(tensors, metadata={"config": json.dumps(config)}))
    return config


def _checked_config(path, config) -> dict:
    if not isinstance(config, dict):
        raise CheckpointError(path, "not a diffusion-lab classifier (its config is not an object)")
    if config.get("format") == DIFFUSION_FORMAT:
        raise CheckpointError(path, "is a diffusion model checkpoint, not an MNIST classifier "
                                    f"(format {DIFFUSION_FORMAT}; expected {CLASSIFIER_FORMAT})")
    if config.get("format") != CLASSIFIER_FORMAT:
        raise CheckpointError(path, f"unsupported classifier format {config.get('format')!r}; "
                                    f"expected {CLASSIFIER_FORMAT}")
    return config


def load_classifier(path=None) -> tuple[MnistClassifier, dict]:
    """(classifier in eval mode on the CPU, config) from `path` (default: the shipped one).

    Any problem (missing, unreadable, corrupt, a diffusion checkpoint, weights that do not fit the
    config, NaN weights) raises CheckpointError naming the file. Nothing is ever unpickled.
    """
    path = DEFAULT_PATH if path is None else os.fspath(path)
    config, tensors = read_safetensors(path, "classifier")
    config = _checked_config(path, config)
    try:
        model = MnistClassifier(ClassifierConfig(**config["net"]))
    except Exception as e:  # missing/unknown fields, out-of-range sizes
        raise CheckpointError(path, f"its config does not describe a classifier this code can build "
                                    f"({type(e).__name__}: {e})") from None
    for name, value in tensors.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(path, f"weight {name} holds NaN or inf")
    ref = {k: tensors.pop(k) for k in [k for k in tensors if k.startswith("reference.")]}
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(path, f"the weights do not match the classifier in its config "
                                    f"({first[1].strip() if len(first) > 1 else first[0]})") from None
    model.reference = None  # the stored test-set feature statistics, if any
    if ref:
        d = model.cfg.feature_dim
        info = config.get("reference")
        if (set(ref) != {"reference.mean", "reference.cov"} or tuple(ref["reference.mean"].shape) != (d,)
                or tuple(ref["reference.cov"].shape) != (d, d) or not isinstance(info, dict)
                or not isinstance(info.get("fingerprint"), str)):
            raise CheckpointError(path, f"its stored reference statistics are malformed (expected "
                                        f"reference.mean [{d}], reference.cov [{d}, {d}] and a fingerprint)")
        model.reference = {"mean": ref["reference.mean"].double().numpy(), "cov": ref["reference.cov"].double().numpy(),
                           "fingerprint": info["fingerprint"]}
    return model.eval(), config


def gaussian_stats(feats) -> tuple[np.ndarray, np.ndarray]:
    """(mean [D], covariance [D, D]) of features [N, D] in float64 (unbiased covariance)."""
    f = np.asarray(feats.detach().cpu() if isinstance(feats, Tensor) else feats, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be [N, D] with N >= 2; got shape {list(f.shape)}")
    if not np.isfinite(f).all():
        raise ValueError("features hold NaN or inf")
    return f.mean(0), np.cov(f, rowvar=False)


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (eigenvalues clipped at 0)."""
    vals, vecs = np.linalg.eigh((m + m.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def frechet_from_stats(mu1, cov1, mu2, cov2) -> float:
    """|mu1 - mu2|^2 + tr(C1) + tr(C2) - 2 tr((C1^1/2 C2 C1^1/2)^1/2): the 2-Wasserstein distance squared
    between N(mu1, C1) and N(mu2, C2) (Frechet 1957; Dowson & Landau 1982), in float64."""
    s1 = _sqrt_psd(np.asarray(cov1, np.float64))
    inner = s1 @ np.asarray(cov2, np.float64) @ s1
    vals = np.linalg.eigvalsh((inner + inner.T) / 2)
    cross = np.sqrt(np.clip(vals, 0, None)).sum()
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    return float(max(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * cross, 0.0))


def frechet_distance(feats_a, feats_b) -> float:
    """The Frechet distance between Gaussians fitted to two feature sets [N, D] and [M, D] (FID's formula).

    The estimate is biased upwards for finite N, so compare it only with a floor computed at the same N.
    """
    return frechet_from_stats(*gaussian_stats(feats_a), *gaussian_stats(feats_b))
