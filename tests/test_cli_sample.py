"""python -m diffusion.sample: writes the oracle's samples; rejects bad arguments with exit code 2."""

import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

from diffusion.metrics import energy_distance
from toy_data import get_dataset


ROOT = pathlib.Path(__file__).resolve().parents[1]


def run(*args):
    return subprocess.run([sys.executable, "-m", "diffusion.sample", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def test_oracle_samples_look_like_the_data(tmp_path):
    out = tmp_path / "moons.npy"
    r = run("--oracle", "--dataset", "moons", "--sampler", "dpmpp_2m", "--steps", "30", "--grid",
            "uniform_logsnr", "--n", "2000", "--seed", "3", "--quiet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    x = np.load(out)
    assert x.shape == (2000, 2) and np.isfinite(x).all()
    d = get_dataset("moons")
    g = torch.Generator().manual_seed(0)
    true_a, true_b = d.sample(2000, generator=g)[0], d.sample(2000, generator=g)[0]
    floor = energy_distance(true_a, true_b)
    assert energy_distance(torch.from_numpy(x), true_a) < 2.0 * floor
    # a different distribution is far away
    assert energy_distance(get_dataset("grid").sample(2000, generator=g)[0], true_a) > 20 * floor


def test_trajectory_and_label(tmp_path):
    out = tmp_path / "g.npy"
    r = run("--oracle", "--dataset", "8gaussians", "--label", "2", "--guidance", "1", "--steps", "10",
            "--n", "300", "--trajectory", "--quiet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    x, traj, x0 = np.load(out), np.load(tmp_path / "g_traj.npy"), np.load(tmp_path / "g_x0.npy")
    assert traj.shape == (11, 300, 2) and x0.shape == (10, 300, 2)
    np.testing.assert_array_equal(traj[-1], x)
    labels = get_dataset("8gaussians").nearest_label(torch.from_numpy(x))
    assert (labels == 2).float().mean() > 0.99


@pytest.mark.parametrize("args, needle", [
    (["--dataset", "nope"], "unknown dataset"),
    (["--schedule", "zigzag"], "unknown schedule"),
    (["--schedule", "cosine:s=-2"], "s=-2"),
    (["--schedule", "cosine:q=1"], "no parameter 'q'"),
    (["--sampler", "magic"], "--sampler"),
    (["--steps", "0"], "--steps"),
    (["--steps", "ten"], "--steps"),
    (["--label", "7"], "label must be in 0..1"),
    (["--checkpoint", "x.safetensors"], "choose one model"),
    (["--guidance", "nan"], "--guidance"),
    (["--eta", "2"], "--eta"),
    (["--grid", "log"], "--grid"),
    (["--n", "-5"], "--n"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, args, needle):
    r = run("--oracle", "--quiet", "--out", str(tmp_path / "x.npy"), *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_missing_model_is_explained(tmp_path):
    r = run("--out", str(tmp_path / "x.npy"))
    assert r.returncode == 2 and "--checkpoint" in r.stderr


@pytest.mark.parametrize("args, needle", [
    (["--out", "/nonexistent-folder/x.npy"], "does not exist"),
    (["--out", "x.txt"], ".npy"),
    (["--guidance", "2", "--out", "x.npy"], "needs a --label"),
    (["--eta", "0.5", "--out", "x.npy"], "ddim sampler only"),
    (["--schedule", "ve:sigma_max=1", "--out", "x.npy"], "does not run from data to noise"),
])
def test_output_and_combination_errors(tmp_path, args, needle):
    args = [str(tmp_path / a) if a in ("x.npy", "x.txt") else a for a in args]
    r = run("--oracle", "--quiet", *args)
    assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
