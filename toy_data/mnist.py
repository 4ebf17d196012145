"""MNIST handwritten digits, offline: the copy shipped in toy_data/data/mnist.npz, or your own IDX files.

`load_mnist("train")` gives (images [60000, 1, 28, 28] float32 in [-1, 1], labels [60000] int64);
`load_mnist("test")` the 10,000 test digits. `mnist_sampler()` draws random training batches with the
same contract as the 2-D toy sets: `data(n, generator=g)` returns (x0, labels).

Where the data comes from, first match wins:

1. `path=` given to `load_mnist` / `mnist_sampler`;
2. the environment variable DIFFUSION_LAB_MNIST, if set and non-empty;
3. MNIST_PATH, the shipped npz (provenance and licence: toy_data/data/README.md).

A path may be an .npz file (keys x_train, y_train, x_test, y_test; uint8 images [N, 28, 28]) or a
folder of the standard IDX files, as torchvision downloads them into `MNIST/raw`:
train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte,
each optionally gzipped (.gz). For example `load_mnist(path="~/data/MNIST/raw")`, or
`export DIFFUSION_LAB_MNIST=~/data/MNIST/raw`. `source="npz"` or `source="idx"` forces the format;
by default a folder is read as IDX and a file as npz. The npz is read with allow_pickle=False and IDX
files are parsed by hand, so no file is ever unpickled.
"""

from __future__ import annotations

import gzip
import os
import struct
import zipfile
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

MNIST_PATH = Path(__file__).resolve().parent / "data" / "mnist.npz"
ENV_VAR = "DIFFUSION_LAB_MNIST"
LABEL_NAMES = tuple(str(d) for d in range(10))
SPLITS = ("train", "test")
SOURCES = ("npz", "idx")
SIDE = 28  # image height and width

IDX_IMAGES_MAGIC = 0x00000803  # uint8 data, 3 dims
IDX_LABELS_MAGIC = 0x00000801  # uint8 data, 1 dim
IDX_NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

Sampler = Callable[..., tuple[Tensor, Tensor]]


class MnistError(ValueError):
    """An MNIST file or folder that is missing or not valid MNIST data."""


def _resolve(path) -> Path:
    """The path to read: `path`, else $DIFFUSION_LAB_MNIST, else the shipped npz; absolute, ~ expanded."""
    if path is None:
        path = os.environ.get(ENV_VAR) or MNIST_PATH
    return Path(os.path.expanduser(os.fspath(path))).resolve()


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"MNIST split must be one of {', '.join(map(repr, SPLITS))}; got {split!r}")


def _check_arrays(images: np.ndarray, labels: np.ndarray, where: str) -> None:
    """Raise MnistError unless images are uint8 [N, 28, 28] and labels are N integers in 0..9."""
    if images.dtype != np.uint8:
        raise MnistError(f"{where}: images must be uint8 (0..255); found dtype {images.dtype}")
    if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
        raise MnistError(f"{where}: images must have shape [N, 28, 28]; found {list(images.shape)}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise MnistError(f"{where}: labels must be integers; found dtype {labels.dtype}")
    if labels.ndim != 1:
        raise MnistError(f"{where}: labels must have shape [N]; found {list(labels.shape)}")
    if len(labels) != len(images):
        raise MnistError(f"{where}: {len(images)} images but {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        bad = labels[(labels < 0) | (labels > 9)]
        raise MnistError(f"{where}: {len(bad)} labels outside 0..9 (e.g. {int(bad[0])})")


def _read_npz(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    keys = (f"x_{split}", f"y_{split}")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise MnistError(f"{path}: a single .npy array, not an .npz archive with keys {', '.join(keys)}")
        with data:
            missing = [k for k in keys if k not in data.files]
            if missing:
                raise MnistError(f"{path}: missing key(s) {', '.join(missing)} (the npz has "
                                 f"{', '.join(data.files) or 'no arrays'})")
            images, labels = data[keys[0]], data[keys[1]]
    except MnistError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError) as e:
        raise MnistError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from e
    _check_arrays(images, labels, str(path))
    return images, labels


def _idx_file(folder: Path, name: str) -> Path:
    """`name` or `name.gz` inside `folder` (plain file first)."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise MnistError(f"{folder}: no {name} or {name}.gz in this folder (expected the standard MNIST IDX "
                     f"files: {', '.join(n for pair in IDX_NAMES.values() for n in pair)})")


def read_idx(path, magic: int) -> np.ndarray:
    """The uint8 array in one IDX file (gzipped if its name ends in .gz), checked against `magic`."""
    path = Path(path)
    kind = "an image file" if magic == IDX_IMAGES_MAGIC else "a label file"
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise MnistError(f"{path}: cannot read ({type(e).__name__}: {e})") from e
    what = "bytes after decompression" if path.suffix == ".gz" else "bytes"
    if len(raw) < 4:
        raise MnistError(f"{path}: too short for an IDX header ({len(raw)} {what})")
    (found,) = struct.unpack(">I", raw[:4])
    if found != magic:
        raise MnistError(f"{path}: wrong magic number 0x{found:08X} (expected 0x{magic:08X} for {kind})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise MnistError(f"{path}: header cut short: expected {header} {what} of header, found {len(raw)}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if ndim == 3 and dims[1:] != (SIDE, SIDE):
        raise MnistError(f"{path}: images are {dims[1]}x{dims[2]} (expected 28x28)")
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        raise MnistError(f"{path}: expected {expected} {what} from its header (dims {list(dims)}), found {len(raw)}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _read_idx_folder(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images_name, labels_name = IDX_NAMES[split]
    images_path, labels_path = _idx_file(folder, images_name), _idx_file(folder, labels_name)
    images, labels = read_idx(images_path, IDX_IMAGES_MAGIC), read_idx(labels_path, IDX_LABELS_MAGIC)
    _check_arrays(images, labels, f"{images_path} + {labels_path.name}")
    return images, labels


@lru_cache(maxsize=4)
def _decoded(path: Path, split: str, source: str, stamp: tuple) -> tuple[Tensor, Tensor]:
    """The cached uint8 (images [N, 28, 28], labels [N]) of one split; `stamp` makes an edited file a new key."""
    # Never handed out: load_mnist and the sampler return new tensors made from these, so callers that
    # modify what they get cannot change what the next caller gets.
    images, labels = (_read_npz if source == "npz" else _read_idx_folder)(path, split)
    # np.require copies only what must be copied: the read-only buffers of IDX files.
    return tuple(torch.from_numpy(np.require(a, np.uint8, ["C", "W"])) for a in (images, labels))


def _stamp(path: Path) -> tuple:
    """(name, size, mtime) of a file or of each file in a folder, so an edited file is not served from the cache."""
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    return tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file())


def _raw(split: str, path, source: str | None) -> tuple[Tensor, Tensor]:
    """The cached uint8 (images, labels) of one split of the data at `path` (see the module docstring)."""
    _check_split(split)
    if source is not None and source not in SOURCES:
        raise ValueError(f"MNIST source must be None (auto) or one of {', '.join(map(repr, SOURCES))}; got {source!r}")
    where = _resolve(path)
    if not where.exists():
        hint = f" (from ${ENV_VAR})" if path is None and os.environ.get(ENV_VAR) else ""
        raise MnistError(f"{where}{hint}: no such file or folder; expected an MNIST .npz file or a folder of IDX files")
    source = source or ("idx" if where.is_dir() else "npz")
    if source == "idx" and not where.is_dir():
        raise MnistError(f"{where}: source='idx' needs a folder of IDX files, not a file")
    if source == "npz" and where.is_dir():
        raise MnistError(f"{where}: source='npz' needs an .npz file, not a folder")
    return _decoded(where, split, source, _stamp(where))


def _to_float(images: Tensor) -> Tensor:
    """uint8 [N, 28, 28] -> float32 [N, 1, 28, 28] in [-1, 1] (x / 127.5 - 1); always a new tensor."""
    return images.to(torch.float32).div_(127.5).sub_(1).unsqueeze(1)


def load_mnist(split: str = "train", path=None, source: str | None = None) -> tuple[Tensor, Tensor]:
    """One MNIST split: (images [N, 1, 28, 28] float32 in [-1, 1], labels [N] int64); fresh tensors each call."""
    images, labels = _raw(split, path, source)
    return _to_float(images), labels.to(torch.int64)


def mnist_sampler(split: str = "train", path=None, source: str | None = None) -> Sampler:
    """A batch drawer `data(n, generator=None, label=None) -> (x0 [n, 1, 28, 28] float32, labels [n] int64)`.

    Rows are drawn uniformly with replacement using `generator`, so a seeded generator gives the same
    batches; `label` (a digit 0-9) restricts the draw to that class.
    """
    images, labels = _raw(split, path, source)
    by_label: dict[int, Tensor] = {}

    def data(n: int, generator: torch.Generator | None = None, label: int | None = None) -> tuple[Tensor, Tensor]:
        """n random MNIST digits (of one class if `label` is given): (x0 [n, 1, 28, 28], labels [n])."""
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 10_000_000:
            raise ValueError(f"number of images must be an integer in [0, 10000000]; got {n!r}")
        if label is None:
            idx = torch.randint(len(labels), (n,), generator=generator)
        else:
            if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label <= 9:
                raise ValueError(f"label must be a digit 0-9 or None; got {label!r}")
            if label not in by_label:
                by_label[label] = torch.nonzero(labels == label)[:, 0]
            pool = by_label[label]
            if len(pool) == 0:
                raise ValueError(f"this MNIST {split} split has no images of digit {label}")
            idx = pool[torch.randint(len(pool), (n,), generator=generator)]
        return _to_float(images[idx]), labels[idx].to(torch.int64)

    return data
