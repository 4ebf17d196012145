"""python -m diffusion.train and diffusion.evaluate: real runs, and exit code 2 on bad arguments.

test_train_then_sample_then_evaluate starts each of the three commands as a real `python -m` process; the
other tests run the commands in this process, through main(argv) as the entry points call it (conftest's
run_cli), which checks the same exit codes and messages without a fresh Python per call."""

import json
import pathlib
import subprocess
import sys

import pytest

from diffusion.checkpoints import load_checkpoint


def run(module, *args, timeout=300):
    """A real `python -m diffusion.MODULE ARGS` process."""
    return subprocess.run([sys.executable, "-m", f"diffusion.{module}", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=pathlib.Path(__file__).resolve().parents[1])


def test_train_then_sample_then_evaluate(tmp_path):
    ckpt = tmp_path / "m.safetensors"
    r = run("train", "--dataset", "8gaussians", "--steps", "150", "--batch", "256", "--width", "64", "--depth", "2",
            "--quiet", "--out", str(ckpt))
    assert r.returncode == 0, r.stderr
    model, config = load_checkpoint(ckpt)
    assert config["dataset"] == "8gaussians" and config["train"]["steps_done"] == 150
    assert config["label_names"][0] == "E"
    r = run("sample", "--checkpoint", str(ckpt), "--label", "3", "--guidance", "2", "--steps", "10", "--n", "100",
            "--quiet", "--out", str(tmp_path / "s.npy"))
    assert r.returncode == 0, r.stderr
    r = run("evaluate", "--checkpoint", str(ckpt), "--n", "500", "--steps", "10")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for key in ("kl_gap_nats", "ed_ratio", "score_rel_error", "conditional", "entropy_nats"):
        assert key in out
    acc = {w: v["accuracy"] for w, v in out["conditional"].items()}
    assert 0 <= acc["0"] <= 1 and acc["3"] >= acc["0"] - 0.05


@pytest.mark.parametrize("module, args, needle", [
    ("train", ["--dataset", "nope"], "unknown dataset"),
    ("train", ["--steps", "0"], "--steps"),
    ("train", ["--batch", "-1"], "--batch"),
    ("train", ["--parameterization", "magic"], "--parameterization"),
    ("train", ["--weighting", "magic"], "--weighting"),
    ("train", ["--schedule", "edm:rho=0"], "rho"),
    ("train", ["--device", "tpu"], "device"),
    ("train", ["--lr", "nan"], "--lr"),
    ("evaluate", ["--n", "5"], "--n"),
    ("sample", ["--sampler", "x"], "--sampler"),
])
def test_bad_arguments(run_cli, tmp_path, module, args, needle):
    base = ["--out", str(tmp_path / "m.safetensors")] if module == "train" else []
    if module == "evaluate":
        base = ["--checkpoint", str(tmp_path / "missing.safetensors")]
    if module == "sample":
        base = ["--oracle", "--out", str(tmp_path / "x.npy")]
    r = run_cli(f"diffusion.{module}", *base, *args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr


def test_evaluate_missing_or_corrupt_checkpoint(run_cli, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage!" * 10)
    for path in (bad, tmp_path / "missing.safetensors"):
        r = run_cli("diffusion.evaluate", "--checkpoint", str(path))
        assert r.returncode == 2 and str(path) in r.stderr and "Traceback" not in r.stderr


def test_help_works(run_cli):
    for module in ("train", "sample", "evaluate"):
        r = run_cli(f"diffusion.{module}", "--help")
        assert r.returncode == 0 and "usage" in r.stdout
