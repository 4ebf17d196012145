"""The MNIST evaluation: the shipped classifier, its checkpoint format, the Frechet distance, and
`python -m diffusion.evaluate` on an MNIST checkpoint (figures only checked for shape and range: the
shipped generator may still be a placeholder)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

from diffusion.checkpoints import CheckpointError, load_checkpoint
from diffusion.classifier import (CLASSIFIER_FORMAT, DEFAULT_PATH, ClassifierConfig, MnistClassifier,
                                  frechet_distance, frechet_from_stats, load_classifier, save_classifier,
                                  reference_stats)

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = pathlib.Path(__file__).resolve().parents[1]
MNIST_CKPT = ROOT / "checkpoints" / "mnist.safetensors"
MOONS_CKPT = ROOT / "checkpoints" / "moons.safetensors"


def run_evaluate(*args, timeout=180):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "diffusion.evaluate", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, env=env)


def test_forward_and_feature_shapes():
    torch.manual_seed(0)
    model = MnistClassifier().eval()
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    assert model(x).shape == (5, 10)
    assert model.features(x).shape == (5, 128)
    assert (model.features(x) >= 0).all()  # after the ReLU
    assert model.predict(x).shape == (5,) and model.embed(x, batch=2).shape == (5, 128)
    with pytest.raises(ValueError, match=r"\[B, 1, 28, 28\]"):
        model(torch.zeros(2, 28, 28))


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(1)
    model = MnistClassifier(ClassifierConfig(widths=(8, 16), feature_dim=32)).eval()
    with torch.no_grad():  # make the BatchNorm running statistics non-trivial
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "c.safetensors"
    config = save_classifier(path, model, test_accuracy=0.5)
    loaded, config2 = load_classifier(path)
    assert config2 == config and config2["format"] == CLASSIFIER_FORMAT and config2["test_accuracy"] == 0.5
    x = torch.rand(7, 1, 28, 28) * 2 - 1
    assert torch.equal(model(x), loaded(x)) and torch.equal(model.features(x), loaded.features(x))
    assert not loaded.training


def test_bad_classifier_files_are_refused_clearly(tmp_path):
    good = tmp_path / "good.safetensors"
    save_classifier(good, MnistClassifier(ClassifierConfig(widths=(8,), feature_dim=16)))
    raw = good.read_bytes()
    cases = {"empty.safetensors": b"", "garbage.safetensors": b"garbage!" * 10,
             "truncated.safetensors": raw[: len(raw) // 2]}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    for name in [*cases, "missing.safetensors"]:
        with pytest.raises(CheckpointError) as e:
            load_classifier(tmp_path / name)
        assert name in str(e.value)
    # a diffusion checkpoint as the classifier, and the classifier as a diffusion checkpoint
    with pytest.raises(CheckpointError, match="diffusion model checkpoint, not an MNIST classifier"):
        load_classifier(MNIST_CKPT)
    with pytest.raises(CheckpointError, match="unsupported checkpoint format"):
        load_checkpoint(good)
    # weights that do not fit the config
    other = tmp_path / "other.safetensors"
    header_len = int.from_bytes(raw[:8], "little")
    header = raw[8:8 + header_len].decode()
    patched = header.replace('\\"feature_dim\\": 16', '\\"feature_dim\\": 17')
    assert patched != header
    patched = patched.ljust(header_len)  # same length, so the tensor offsets stay valid
    other.write_bytes(raw[:8] + patched.encode() + raw[8 + header_len:])
    with pytest.raises(CheckpointError, match="do not match"):
        load_classifier(other)
    # stored reference statistics of the wrong size
    small = MnistClassifier(ClassifierConfig(widths=(8,), feature_dim=16))
    bad_ref = {"mean": np.zeros(15), "cov": np.eye(16), "fingerprint": "00000000-1"}
    save_classifier(tmp_path / "ref.safetensors", small, reference=bad_ref)
    with pytest.raises(CheckpointError, match="reference statistics are malformed"):
        load_classifier(tmp_path / "ref.safetensors")


def test_frechet_distance_of_a_set_with_itself_is_zero():
    g = torch.Generator().manual_seed(2)
    f = torch.randn(500, 16, generator=g) @ torch.randn(16, 16, generator=g)
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(f, f + 1.0) == pytest.approx(16.0, rel=1e-6)  # a shift of 1 in each of 16 dims


def test_frechet_distance_matches_the_closed_form():
    rng = np.random.default_rng(3)
    d = 6
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    c1, c2 = a @ a.T + 0.1 * np.eye(d), b @ b.T + 0.1 * np.eye(d)
    # diagonal (commuting) covariances: |mu1 - mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2
    s1, s2 = np.diag(c1), np.diag(c2)
    want = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(s1) - np.sqrt(s2)) ** 2).sum()
    assert frechet_from_stats(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(want, rel=1e-10)
    # general covariances: tr(C1 + C2 - 2 (C1 C2)^1/2) with the square root of C1 C2 from its eigenvalues
    # (C1 C2 is similar to a PSD matrix, so its eigenvalues are real and non-negative)
    cross = np.sqrt(np.clip(np.linalg.eigvals(c1 @ c2).real, 0, None)).sum()
    want = ((mu1 - mu2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * cross
    assert frechet_from_stats(mu1, c1, mu2, c2) == pytest.approx(want, rel=1e-9)
    # and from samples, the estimate approaches the closed form
    x = rng.multivariate_normal(mu1, c1, size=200_000)
    y = rng.multivariate_normal(mu2, c2, size=200_000)
    assert frechet_distance(x, y) == pytest.approx(want, rel=0.03)


def test_shipped_classifier_accuracy():
    from toy_data.mnist import load_mnist

    model, config = load_classifier()
    assert os.path.getsize(DEFAULT_PATH) < 2_000_000
    x, y = load_mnist("test")
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(4))[:1000]
    acc = (model.predict(x[idx]) == y[idx]).float().mean().item()
    assert acc >= 0.98, acc
    assert config["test_accuracy"] >= 0.98


@pytest.mark.slow  # a real `python -m diffusion.evaluate` (test_cli_train_evaluate.py starts one in the fast loop)
def test_evaluate_cli_on_the_mnist_checkpoint():
    r = run_evaluate("--checkpoint", MNIST_CKPT, "--n", "20", "--samplers", "euler", "--nfe", "20",
                     "--guidance", "0", "1", "--quiet", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for key in ("checkpoint", "dataset", "n", "fd_floor", "real_accuracy", "results", "classifier_test_accuracy",
                "steps_done", "target"):
        assert key in out, key
    assert out["dataset"] == "mnist" and out["n"] == 20 and out["fd_floor"] > 0
    rows = out["results"]
    assert [(r["sampler"], r["nfe"], r["guidance"]) for r in rows] == [("euler", 20, 0.0), ("euler", 20, 1.0)]
    for row in rows:
        assert 0 <= row["accuracy"] <= 1 and row["fd"] >= 0 and row["steps"] == 20
        assert row["fd_ratio"] == pytest.approx(row["fd"] / out["fd_floor"], rel=0.01)
    assert "target_met" not in rows[0] and isinstance(rows[1]["target_met"], bool)  # w = 1 at 20 NFE
    assert all(row["interval"] is None for row in rows)


def test_evaluate_records_a_guidance_interval(capsys):
    from diffusion import cli, evaluate

    rc = cli.run(evaluate.main, "python -m diffusion.evaluate",
                 ["--checkpoint", str(MNIST_CKPT), "--n", "20", "--samplers", "euler", "--nfe", "4", "--guidance", "1",
                  "--interval", "-2", "4", "--quiet", "--device", "cpu"])
    assert rc == 0
    (row,) = json.loads(capsys.readouterr().out)["results"]
    assert row["interval"] == [-2.0, 4.0] and 0 <= row["accuracy"] <= 1


def evaluate_in_process(args, capsys):
    """(exit code, stderr) of `python -m diffusion.evaluate ARGS`, run in this process (no import cost)."""
    from diffusion import cli, evaluate

    try:
        rc = cli.run(evaluate.main, "python -m diffusion.evaluate", [str(a) for a in args])
    except SystemExit as e:  # argparse errors
        rc = e.code
    captured = capsys.readouterr()
    assert captured.out == ""
    return rc, captured.err


@pytest.mark.parametrize("args, needle", [
    (["--checkpoint", MNIST_CKPT, "--nfe", "0"], "--nfe"),
    (["--checkpoint", MNIST_CKPT, "--guidance", "30"], "--guidance"),
    (["--checkpoint", MNIST_CKPT, "--guidance", "nan"], "--guidance"),
    (["--checkpoint", MNIST_CKPT, "--samplers", "magic"], "--samplers"),
    (["--checkpoint", MNIST_CKPT, "--interval", "4", "-2"], "--interval LO HI needs LO <= HI"),
    (["--checkpoint", MNIST_CKPT, "--interval", "0", "nan"], "--interval"),
    (["--checkpoint", MOONS_CKPT, "--interval", "-2", "4"], "only apply to MNIST checkpoints"),
    (["--checkpoint", MNIST_CKPT, "--n", "25"], "multiple of 10"),
    (["--checkpoint", MNIST_CKPT, "--n", "5"], "--n"),
    (["--checkpoint", MNIST_CKPT, "--steps", "10"], "only apply to 2-D checkpoints"),
    (["--checkpoint", MNIST_CKPT, "--device", "tpu"], "device"),
    (["--checkpoint", MNIST_CKPT, "--classifier", MOONS_CKPT], "not an MNIST classifier"),
    (["--checkpoint", MNIST_CKPT, "--classifier", "missing.safetensors"], "missing.safetensors"),
    (["--checkpoint", MOONS_CKPT, "--samplers", "heun"], "only apply to MNIST checkpoints"),
    (["--checkpoint", MOONS_CKPT, "--n", "50"], "--n must be an integer in [100, 20000]"),
    (["--checkpoint", DEFAULT_PATH], "is the MNIST evaluation classifier"),
])
def test_bad_arguments_exit_2_with_one_line(args, needle, capsys):
    rc, err = evaluate_in_process(args, capsys)
    assert rc == 2, (rc, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], err


@pytest.mark.slow  # a real subprocess; test_bad_arguments_exit_2_with_one_line checks this message in-process
def test_wrong_kind_from_the_command_line_has_no_traceback():
    r = run_evaluate("--checkpoint", DEFAULT_PATH, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"python -m diffusion.evaluate: error: checkpoint {DEFAULT_PATH}: is the "
                                             f"MNIST evaluation classifier, not a diffusion model checkpoint; pass it "
                                             f"as --classifier"]


def test_stored_reference_is_used_only_for_the_same_test_set(tmp_path):
    from diffusion.evaluate import mnist_reference
    from toy_data.mnist import load_mnist

    torch.manual_seed(5)
    tiny = MnistClassifier(ClassifierConfig(widths=(4,), feature_dim=8)).eval()
    ref = reference_stats(tiny, load_mnist("test")[0])
    floors = {}
    for name, stored in {"true": ref, "shifted": {**ref, "mean": ref["mean"] + 1.0},
                         "stale": {**ref, "mean": ref["mean"] + 1.0, "fingerprint": "00000000-10000"}}.items():
        save_classifier(tmp_path / f"{name}.safetensors", tiny, reference=stored)
        loaded, _ = load_classifier(tmp_path / f"{name}.safetensors")
        assert np.array_equal(loaded.reference["mean"], stored["mean"])
        floors[name] = mnist_reference(loaded, 20)["fd_floor"]
    assert floors["shifted"] > floors["true"] + 1  # the stored statistics were used
    assert floors["stale"] == pytest.approx(floors["true"], rel=1e-6)  # a different test set: recomputed


@pytest.mark.slow  # a quality check of the shipped checkpoint (seconds of sampling)
def test_shipped_model_is_read_as_the_requested_digit():
    """With guidance 3 at 20 NFE nearly every sample is the requested digit (the target is 99% over 1,000
    samples; this quick check uses 50 and a looser 94%). A placeholder checkpoint (fewer than 4,000
    training steps) is only checked for shapes and ranges."""
    from diffusion.checkpoints import read_config
    from diffusion.evaluate import evaluate_mnist, load_diffusion

    model, _ = load_diffusion(MNIST_CKPT)
    classifier, _ = load_classifier()
    out = evaluate_mnist(model, classifier, n=50, samplers=["dpmpp_2m"], nfes=[20], guidances=[3.0], batch=50)
    (row,) = out["results"]
    assert 0 <= row["accuracy"] <= 1 and row["fd"] >= 0 and out["fd_floor"] > 0 and row["target_met"] in (True, False)
    if read_config(MNIST_CKPT)["train"]["steps_done"] >= 4000:
        assert row["accuracy"] >= 0.94, row
