"""Checkpoints: exact round trip, safe format, atomic writes, clear errors on bad files."""

import json
import os
import struct

import pytest
import torch

from diffusion.checkpoints import CheckpointError, load_checkpoint, read_config, rewrite_metrics, save_checkpoint
from diffusion.models import DiffusionModel
from diffusion.nets import MLP2D, MLPConfig
from diffusion.schedules import make_schedule


def make(kind="v", num_classes=2):
    torch.manual_seed(0)
    net = MLP2D(MLPConfig(width=32, depth=2, num_classes=num_classes, scalar_out=kind == "energy"))
    return DiffusionModel(net, kind, make_schedule("sigmoid:start=-2,end=3,tau=0.7"), num_classes).eval()


@pytest.mark.parametrize("kind", ["v", "energy"])
def test_round_trip_reproduces_outputs_exactly(tmp_path, kind):
    model = make(kind)
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, model, dataset="moons", label_names=["a", "b"], train={"steps": 1})
    loaded, config = load_checkpoint(path)
    assert config["dataset"] == "moons" and config["schedule"] == model.schedule.spec()
    assert loaded.schedule == model.schedule and loaded.parameterization == kind
    x = torch.randn(50, 2)
    for t, label in [(0.0, None), (0.37, 1), (1.0, torch.tensor([0, -1] * 25))]:
        assert torch.equal(loaded(x, t, label), model(x, t, label))


def test_rewrite_metrics_keeps_weights_and_config(tmp_path):
    model = make()
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, model, dataset="moons", label_names=["a", "b"], train={"steps": 1}, metrics={"ed_ratio": 9.0})
    before = read_config(path)
    rewrite_metrics(path, {"ed_ratio": 1.1, "kl_gap_nats": 0.02})
    loaded, after = load_checkpoint(path)
    assert after["metrics"] == {"ed_ratio": 1.1, "kl_gap_nats": 0.02}
    assert {k: v for k, v in after.items() if k != "metrics"} == {k: v for k, v in before.items() if k != "metrics"}
    x = torch.randn(20, 2)
    assert torch.equal(loaded(x, 0.4, 1), model(x, 0.4, 1))


def test_file_is_plain_safetensors_without_pickle(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, make(), dataset="moons")
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    assert "__metadata__" in header and all(v["dtype"] == "F32" for k, v in header.items() if k != "__metadata__")
    assert b"\x80\x04" not in raw[:8 + n]  # no pickle protocol marker in the header


def test_atomic_write_keeps_previous_file_when_save_fails(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, make(), dataset="moons")
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        save_checkpoint(path, make("x0"), dataset="moons")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp file left behind


def _expect_error(path, needle, read=load_checkpoint):
    with pytest.raises(CheckpointError) as e:
        read(path)
    assert str(path) in str(e.value) and needle in str(e.value)


def test_truncated_file(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, make(), dataset="moons")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    _expect_error(path, "truncated")
    path.write_bytes(raw[:5])
    _expect_error(path, "truncated")


def test_garbage_and_foreign_files(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\xff" * 64)
    _expect_error(path, "not a safetensors file")
    path.write_bytes(b"hello world, not a model")
    _expect_error(path, "not a")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(path))
    _expect_error(path, "not a diffusion-lab checkpoint")
    _expect_error(tmp_path / "missing.safetensors", "cannot be read")


def _rewrite_config(path, change):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    config = json.loads(header["__metadata__"]["config"])
    change(config)
    header["__metadata__"]["config"] = json.dumps(config)
    new = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n:])


def test_mismatched_weights(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, make(), dataset="moons")
    _rewrite_config(path, lambda c: c["net"].update(width=64))  # the config now describes another network
    _expect_error(path, "do not match")


def test_nan_weights_are_refused(tmp_path):
    model = make()
    with torch.no_grad():
        next(model.parameters())[0] = float("nan")
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, model, dataset="moons")
    _expect_error(path, "NaN")


def test_expectations_are_checked(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, make(), dataset="moons")
    assert read_config(path)["net"]["arch"] == "mlp2d"
    with pytest.raises(CheckpointError, match="net.arch='mlp2d'"):
        load_checkpoint(path, expect={"net.arch": "unet"})


@pytest.mark.parametrize("change, needle", [
    (lambda c: c["net"].update(width=-5), "width=-5"),
    (lambda c: c["net"].update(width=10**9), "out of range"),
    (lambda c: c["net"].update(arch="transformer"), "unknown network architecture"),
    (lambda c: c.update(schedule="zigzag"), "can build"),
    (lambda c: c.update(parameterization="magic"), "can build"),
])
def test_hostile_configs_are_refused_with_checkpoint_error(tmp_path, change, needle):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, make(), dataset="moons")
    _rewrite_config(path, change)
    _expect_error(path, needle)


def _with_header(raw, change):
    """The file with its JSON header changed by `change(header)` (the tensor data kept as it is)."""
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    change(header)
    new = json.dumps(header).encode()
    return struct.pack("<Q", len(new)) + new + raw[8 + n:]


def _first_tensor(h):
    return h[next(k for k in h if k != "__metadata__")]


@pytest.mark.parametrize("hostile, needle", [
    (lambda raw: struct.pack("<Q", 2**62) + raw[8:], "header length is implausible"),  # refused before any read
    (lambda raw: struct.pack("<Q", 9_000_000) + raw[8:], "header cut short"),
    (lambda raw: raw[:8] + b"x" * (len(raw) - 8), "corrupt or truncated"),  # header not JSON
    (lambda raw: _with_header(raw, lambda h: _first_tensor(h).update(dtype="F64")), "corrupt or truncated"),
    (lambda raw: _with_header(raw, lambda h: _first_tensor(h)["shape"].append(2)), "corrupt or truncated"),
    (lambda raw: raw + bytes(8), "corrupt or truncated"),  # data the header does not describe
    (lambda raw: _with_header(raw, lambda h: h["__metadata__"].update(config="[" * 100_000)), "no readable config"),
])
def test_hostile_files_are_refused_by_every_reader(tmp_path, hostile, needle):
    from diffusion.classifier import load_classifier

    path = tmp_path / "m.safetensors"
    save_checkpoint(path, make(), dataset="moons")
    path.write_bytes(hostile(path.read_bytes()))
    for read in (load_checkpoint, read_config, load_classifier):
        _expect_error(path, needle, read)


def test_loaded_tensors_do_not_map_the_file(tmp_path):
    """A file cut short on disk after loading cannot fault the process (tensors mapped from a file would)."""
    import subprocess
    import sys

    path = tmp_path / "m.safetensors"
    save_checkpoint(path, make(), dataset="moons")
    code = ("import os, sys; from diffusion.checkpoints import read_safetensors; "
            "_, ts = read_safetensors(sys.argv[1]); os.truncate(sys.argv[1], 0); "
            "print(sum(float(v.sum()) for v in ts.values()))")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", code, str(path)], cwd=root, capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert r.returncode == 0, r.stderr
