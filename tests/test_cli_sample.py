"""python -m diffusion.sample: writes the oracle's samples; rejects bad arguments with exit code 2.

The command runs in this process, through main(argv) as its entry point calls it (conftest's run_cli);
test_cli_train_evaluate.py starts the real `python -m diffusion.sample` once."""

import numpy as np
import pytest
import torch

from diffusion.metrics import energy_distance
from toy_data import get_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def run(run_cli):
    """run(*args): `python -m diffusion.sample ARGS` in this process; .returncode, .stdout, .stderr."""
    return lambda *args: run_cli("diffusion.sample", *args)


def test_oracle_samples_look_like_the_data(run, tmp_path):
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


def test_trajectory_and_label(run, tmp_path):
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
    (["--label", "1", "--guidance", "1", "--interval", "4", "-1.5"], "--interval LO HI needs LO <= HI; got 4 -1.5"),
    (["--label", "1", "--guidance", "1", "--interval", "0", "nan"], "--interval must be a number in [-30, 30]"),
    (["--label", "1", "--guidance", "1", "--interval", "-40", "4"], "--interval must be a number in [-30, 30]"),
    (["--label", "1", "--guidance", "1", "--interval", "1"], "argument --interval: expected 2 arguments"),
])
def test_bad_arguments_exit_2_with_one_line(run, tmp_path, args, needle):
    r = run("--oracle", "--quiet", "--out", str(tmp_path / "x.npy"), *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_missing_model_is_explained(run, tmp_path):
    r = run("--out", str(tmp_path / "x.npy"))
    assert r.returncode == 2 and "--checkpoint" in r.stderr


@pytest.mark.parametrize("args, needle", [
    (["--out", "/nonexistent-folder/x.npy"], "does not exist"),
    (["--out", "x.txt"], ".npy"),
    (["--guidance", "2", "--out", "x.npy"], "needs a --label"),
    (["--eta", "0.5", "--out", "x.npy"], "ddim sampler only"),
    (["--label", "1", "--interval", "-1.5", "4", "--out", "x.npy"], "--interval limits guidance"),
    (["--schedule", "ve:sigma_max=1", "--out", "x.npy"], "does not run from data to noise"),
])
def test_output_and_combination_errors(run, tmp_path, args, needle):
    args = [str(tmp_path / a) if a in ("x.npy", "x.txt") else a for a in args]
    r = run("--oracle", "--quiet", *args)
    assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_guidance_interval_changes_the_samples_as_the_core_says(run, tmp_path):
    """--interval LO HI guides only where lambda is in [LO, HI): over the whole range it is whole-run
    guidance, over a range the schedule never reaches it is plain conditional sampling, and in between
    it is neither. Same seed and noise in every run, so the comparisons are exact."""
    common = ["--oracle", "--dataset", "8gaussians", "--label", "2", "--steps", "10", "--n", "300", "--quiet"]
    out = {}
    for key, extra in [("w0", ["--guidance", "0"]), ("w1", ["--guidance", "1"]),
                       ("all", ["--guidance", "1", "--interval", "-30", "30"]),
                       ("none", ["--guidance", "1", "--interval", "20", "30"]),
                       ("mid", ["--guidance", "1", "--interval", "-1.5", "4"])]:
        r = run(*common, *extra, "--out", str(tmp_path / f"{key}.npy"))
        assert r.returncode == 0, r.stderr
        out[key] = np.load(tmp_path / f"{key}.npy")
    np.testing.assert_array_equal(out["all"], out["w1"])
    np.testing.assert_array_equal(out["none"], out["w0"])
    assert np.abs(out["mid"] - out["w1"]).max() > 1e-3 and np.abs(out["mid"] - out["w0"]).max() > 1e-3


@pytest.mark.parametrize("sampler, grid", [("heun", "uniform_t"), ("dpmpp_2m", "uniform_logsnr")])
def test_guidance_interval_skips_the_unconditional_calls_outside_it(tmp_path, monkeypatch, sampler, grid):
    """The network calls a run spends: the sampler's NFE conditional calls, plus one unconditional call at
    each evaluation time whose log-SNR is in [lo, hi) (the interval's ends are off the grid's lambdas)."""
    import diffusion.sample as cli_sample
    from diffusion.models import oracle_model
    from diffusion.grids import time_grid
    from diffusion.samplers import nfe_of
    from diffusion.schedules import make_schedule

    calls = []

    class Counted:
        def __init__(self, dist, schedule):
            self.model, self.schedule = oracle_model(dist, schedule), schedule

        def __call__(self, x, t, label=None):
            calls.append((float(t), label is None))
            return self.model(x, t, label)

    monkeypatch.setattr(cli_sample, "oracle_model", Counted)
    steps, (lo, hi) = 12, (-1.3, 3.7)
    ts = time_grid(make_schedule("cosine"), steps, grid)
    evaluated = ts[:-1].tolist() + (ts[1:-1].tolist() if sampler == "heun" else [])  # Heun's corrections
    lams = make_schedule("cosine").logsnr(torch.tensor(evaluated, dtype=torch.float64))
    inside = int(((lams >= lo) & (lams < hi)).sum())
    assert 0 < inside < len(evaluated)
    base = ["--oracle", "--dataset", "moons", "--label", "1", "--guidance", "1", "--sampler", sampler,
            "--grid", grid, "--steps", str(steps), "--n", "20", "--quiet"]
    for extra, unconditional in ((["--interval", str(lo), str(hi)], inside), ([], nfe_of(sampler, steps))):
        calls.clear()
        assert cli_sample.main([*base, *extra, "--out", str(tmp_path / "x.npy")]) == 0
        assert sum(not u for _, u in calls) == nfe_of(sampler, steps)
        assert sum(u for _, u in calls) == unconditional
