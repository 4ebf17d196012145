"""Offline MNIST: the shipped npz, IDX folders (plain and gzipped), clear errors for bad files, the sampler."""

from __future__ import annotations

import gzip
import hashlib
import re
import struct

import numpy as np
import pytest
import torch

from toy_data.mnist import (ENV_VAR, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, LABEL_NAMES, MNIST_PATH, MnistError,
                            load_mnist, mnist_sampler)

README = MNIST_PATH.parent / "README.md"
# The official MNIST per-class counts, digits 0..9.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
N_SLICE = 300  # test digits written out as IDX files


@pytest.fixture(scope="module")
def test_split():
    return load_mnist("test")


@pytest.fixture(scope="module")
def raw_slice():
    with np.load(MNIST_PATH, allow_pickle=False) as d:
        return d["x_test"][:N_SLICE].copy(), d["y_test"][:N_SLICE].copy()


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write_idx(folder, images, labels, split="t10k", gz=False, image_magic=IDX_IMAGES_MAGIC):
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for name, data in ((f"{split}-images-idx3-ubyte", idx_bytes(image_magic, images)),
                       (f"{split}-labels-idx1-ubyte", idx_bytes(IDX_LABELS_MAGIC, labels))):
        (folder / (name + suffix)).write_bytes(gzip.compress(data) if gz else data)
    return folder


def raises(match: str, *args, **kwargs) -> str:
    with pytest.raises(MnistError, match=match) as info:
        load_mnist(*args, **kwargs)
    return str(info.value)


# --- the shipped file -----------------------------------------------------------------------------


def test_shipped_train_split_shapes_range_and_official_counts():
    x, y = load_mnist("train")
    assert x.shape == (60000, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (60000,) and y.dtype == torch.int64
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    assert torch.bincount(y, minlength=10).tolist() == TRAIN_COUNTS


def test_shipped_test_split(test_split):
    x, y = test_split
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    assert torch.bincount(y, minlength=10).tolist() == TEST_COUNTS
    assert LABEL_NAMES == tuple("0123456789")


def test_scaling_is_x_over_127_5_minus_1(test_split, raw_slice):
    images, labels = raw_slice
    expected = torch.from_numpy(images).float() / 127.5 - 1
    assert torch.equal(test_split[0][:N_SLICE, 0], expected)
    assert torch.equal(test_split[1][:N_SLICE], torch.from_numpy(labels).long())


def test_shipped_copy_matches_its_readme():
    text = README.read_text()
    (digest,) = re.findall(r"\b[0-9a-f]{64}\b", text)
    assert hashlib.sha256(MNIST_PATH.read_bytes()).hexdigest() == digest
    assert "CC BY-SA 3.0" in text and "LeCun" in text and "Cortes" in text and "Burges" in text
    for counts in (TRAIN_COUNTS, TEST_COUNTS):
        assert " ".join(map(str, counts)) in text


# --- IDX folders ----------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_idx_round_trip(tmp_path, raw_slice, test_split, gz):
    images, labels = raw_slice
    folder = write_idx(tmp_path / "MNIST" / "raw", images, labels, gz=gz)
    x, y = load_mnist("test", path=folder)
    assert torch.equal(x, test_split[0][:N_SLICE]) and torch.equal(y, test_split[1][:N_SLICE])
    write_idx(folder, images[:50], labels[:50], split="train", gz=gz)
    x, y = load_mnist("train", path=str(folder), source="idx")
    assert torch.equal(x, test_split[0][:50]) and torch.equal(y, test_split[1][:50])


def test_env_var_overrides_the_default(tmp_path, raw_slice, test_split, monkeypatch):
    folder = write_idx(tmp_path, raw_slice[0][:20], raw_slice[1][:20])
    monkeypatch.setenv(ENV_VAR, str(folder))
    x, y = load_mnist("test")
    assert x.shape == (20, 1, 28, 28) and torch.equal(y, test_split[1][:20])
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "gone"))
    assert ENV_VAR in raises("no such file", "test")
    monkeypatch.setenv(ENV_VAR, "")
    assert load_mnist("test")[0].shape[0] == 10000


# --- bad inputs -----------------------------------------------------------------------------------


def test_missing_file_names_the_path(tmp_path):
    msg = raises("no such file or folder", path=tmp_path / "nope.npz")
    assert "nope.npz" in msg


def test_truncated_npz(tmp_path):
    bad = tmp_path / "cut.npz"
    bad.write_bytes(MNIST_PATH.read_bytes()[:100_000])
    assert "cut.npz" in raises("not a readable .npz", path=bad)


def test_npz_problems(tmp_path):
    ok_x, ok_y = np.zeros((5, 28, 28), np.uint8), np.arange(5, dtype=np.uint8)
    cases = {
        "missing key.*y_test": dict(x_test=ok_x),
        "labels outside 0..9.*10": dict(x_test=ok_x, y_test=np.array([0, 1, 2, 10, 3], np.uint8)),
        "must be uint8": dict(x_test=ok_x.astype(np.float32), y_test=ok_y),
        r"shape \[N, 28, 28\]; found \[5, 32, 32\]": dict(x_test=np.zeros((5, 32, 32), np.uint8), y_test=ok_y),
        "5 images but 4 labels": dict(x_test=ok_x, y_test=ok_y[:4]),
        "labels must be integers": dict(x_test=ok_x, y_test=ok_y.astype(np.float64)),
    }
    for i, (match, arrays) in enumerate(cases.items()):
        path = tmp_path / f"bad{i}.npz"
        np.savez(path, **arrays)
        assert f"bad{i}.npz" in raises(match, "test", path=path)
    np.save(tmp_path / "single.npy", ok_x)
    raises("not an .npz archive", "test", path=tmp_path / "single.npy")
    np.savez(tmp_path / "objects.npz", x_test=np.array([None, 1], dtype=object), y_test=ok_y)
    raises("not a readable .npz", "test", path=tmp_path / "objects.npz")  # would need pickle


def test_idx_wrong_magic(tmp_path, raw_slice):
    folder = write_idx(tmp_path, *raw_slice, image_magic=IDX_LABELS_MAGIC + 0x100)
    msg = raises(r"wrong magic number 0x00000901 \(expected 0x00000803 for an image file\)", "test", path=folder)
    assert "t10k-images-idx3-ubyte" in msg


def test_idx_truncated(tmp_path, raw_slice):
    folder = write_idx(tmp_path, *raw_slice)
    path = folder / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    expected = 16 + N_SLICE * 784
    raises(f"t10k-images-idx3-ubyte: expected {expected} bytes from its header .*, found 1000", "test", path=folder)
    path.write_bytes(b"\x00\x00\x08")
    raises("too short for an IDX header", "test", path=folder)


def test_idx_gz_problems(tmp_path, raw_slice):
    folder = write_idx(tmp_path, *raw_slice, gz=True)
    path = folder / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:30])
    raises("t10k-labels-idx1-ubyte.gz: cannot read", "test", path=folder)
    path.write_bytes(gzip.compress(idx_bytes(IDX_LABELS_MAGIC, raw_slice[1])[:-5]))
    raises("bytes after decompression", "test", path=folder)


def test_idx_wrong_dims_counts_labels_and_missing_files(tmp_path, raw_slice):
    images, labels = raw_slice
    raises(r"images are 32x32 \(expected 28x28\)", "test",
           path=write_idx(tmp_path / "a", np.zeros((4, 32, 32), np.uint8), labels[:4]))
    raises("300 images but 299 labels", "test", path=write_idx(tmp_path / "b", images, labels[:-1]))
    raises("labels outside 0..9", "test", path=write_idx(tmp_path / "c", images, labels + 10))
    msg = raises("no train-images-idx3-ubyte or train-images-idx3-ubyte.gz", "train", path=tmp_path / "c")
    assert str(tmp_path / "c") in msg


def test_bad_split_and_source(tmp_path):
    with pytest.raises(ValueError, match="'train', 'test'; got 'valid'"):
        load_mnist("valid")
    with pytest.raises(ValueError, match="'npz', 'idx'"):
        load_mnist("test", source="csv")
    raises("source='idx' needs a folder", "test", source="idx")
    raises("source='npz' needs an .npz file", "test", path=tmp_path, source="npz")


# --- sampler and cache ----------------------------------------------------------------------------


def test_sampler_contract_and_determinism(test_split):
    data = mnist_sampler("test")
    x0, labels = data(64, torch.Generator().manual_seed(3))
    assert x0.shape == (64, 1, 28, 28) and x0.dtype == torch.float32
    assert labels.shape == (64,) and labels.dtype == torch.int64
    again = data(64, generator=torch.Generator().manual_seed(3))
    assert torch.equal(x0, again[0]) and torch.equal(labels, again[1])
    assert not torch.equal(x0, data(64, torch.Generator().manual_seed(4))[0])
    x, y = test_split  # every drawn row is a real (image, label) pair of the split
    pairs = {(xi.numpy().tobytes(), int(yi)) for xi, yi in zip(x, y)}
    assert all((xi.numpy().tobytes(), int(yi)) in pairs for xi, yi in zip(x0, labels))
    x7, y7 = data(10, torch.Generator().manual_seed(0), label=7)
    assert (y7 == 7).all() and x7.shape == (10, 1, 28, 28)
    assert data(0)[0].shape == (0, 1, 28, 28)
    for bad in (-1, 2.0, True):
        with pytest.raises(ValueError, match="number of images"):
            data(bad)
    with pytest.raises(ValueError, match="digit 0-9"):
        data(3, label=10)


def test_callers_cannot_corrupt_the_cache(test_split):
    data = mnist_sampler("test")
    batch = data(32, torch.Generator().manual_seed(1))
    x, y = load_mnist("test")
    assert torch.equal(x, test_split[0]) and x.data_ptr() != test_split[0].data_ptr()
    for t in (x, y, *data(32, torch.Generator().manual_seed(1))):
        t.fill_(3)
    x2, y2 = load_mnist("test")
    assert torch.equal(x2, test_split[0]) and torch.equal(y2, test_split[1])
    for fresh, before in zip(data(32, torch.Generator().manual_seed(1)), batch):
        assert torch.equal(fresh, before)


def test_edited_file_is_not_served_from_the_cache(tmp_path, raw_slice):
    folder = write_idx(tmp_path, raw_slice[0][:10], raw_slice[1][:10])
    assert load_mnist("test", path=folder)[0].shape[0] == 10
    write_idx(folder, raw_slice[0][:12], raw_slice[1][:12])
    assert load_mnist("test", path=folder)[0].shape[0] == 12
