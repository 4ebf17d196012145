"""python -m checkpoints.build: the one command that rebuilds the shipped files, target by target.

A real build takes minutes to an hour, so these tests check the wiring: the listing, the errors, every
target's --help, and tiny builds into a temporary folder (a few training steps; the slow parts of
models-2d, energy-maps and digit-presets replaced by stand-ins), never over the shipped files."""

import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

from checkpoints import build

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHIPPED = {"classifier": ["mnist_classifier.safetensors"], "mnist": ["mnist.safetensors"],
           "digit-presets": ["digit_presets.npz"], "models-2d": ["<dataset>.safetensors"],
           "energy-maps": ["energy_maps.npz"], "energy-heads": ["energy/<dataset>.safetensors"],
           "memorisation-nets": ["memorisation/<dataset>-N<N>.safetensors"],
           "memorisation-samples": ["memorisation/samples.npz"]}


@pytest.fixture
def run(capsys):
    """run(*args): `python -m checkpoints.build ARGS` in this process: (exit code, stdout, stderr)."""
    def call(*args):
        capsys.readouterr()
        with torch.random.fork_rng(devices=[]):
            try:
                code = build.main([str(a) for a in args])
            except SystemExit as e:  # argparse: --help (0) or a bad option (2)
                code = 0 if e.code is None else e.code
        out = capsys.readouterr()
        return code, out.out, out.err
    return call


def test_the_command_lists_every_target_with_its_files_and_time_and_rejects_unknown_names():
    def command(*args):
        return subprocess.run([sys.executable, "-m", "checkpoints.build", *args], capture_output=True, text=True,
                              timeout=120, cwd=ROOT)

    r = command("--list")
    assert r.returncode == 0, r.stderr
    for name, files in SHIPPED.items():
        assert f"\n{name}: " in "\n" + r.stdout
        for f in files:
            assert f"checkpoints/{f}" in r.stdout
    assert r.stdout.count("took ") == len(SHIPPED)
    r = command("nonsense")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == ("python -m checkpoints.build: error: unknown target 'nonsense'; allowed: "
                                + ", ".join([*SHIPPED, "all"]))


def test_all_builds_each_target_after_those_it_reads():
    order = list(build.TARGETS)
    assert set(order) == set(SHIPPED)
    for i, t in enumerate(build.TARGETS.values()):
        assert set(t.needs) <= set(order[:i]), t.name


@pytest.mark.parametrize("name", [*SHIPPED, "all"])
def test_every_target_has_help(run, name):
    code, out, _ = run(name, "--help")
    assert code == 0 and out.startswith(f"usage: python -m checkpoints.build {name}")
    if name != "all":
        assert "writes: checkpoints/" in out and "took: " in out


def test_no_target_and_bad_options_are_one_line_errors_with_code_2(run, tmp_path):
    assert run()[0] == 2
    for args in (["all", "--jobs", "2"], ["energy-maps", "--jobs", "0"], ["energy-maps", "--out", tmp_path / "x.txt"],
                 ["mnist", "--dataset", "moons", "--out", tmp_path / "m.safetensors"],
                 ["models-2d", "--save", tmp_path / "missing"],
                 ["classifier", "--out", tmp_path / "x" / "c.safetensors"]):
        code, _, err = run(*args)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "error" in err, (args, err)
    assert not any(tmp_path.iterdir())


def test_mnist_trains_the_digit_model_with_the_options_of_diffusion_train(run, tmp_path):
    from diffusion.checkpoints import load_checkpoint

    out = tmp_path / "m.safetensors"
    code, _, err = run("mnist", "--steps", 2, "--batch", 8, "--base", 8, "--device", "cpu", "--quiet", "--out", out)
    assert code == 0, err
    _, config = load_checkpoint(out)
    assert config["dataset"] == "mnist" and config["net"]["arch"] == "unet" and config["train"]["steps_done"] == 2


def test_models_2d_trains_measures_and_saves_or_measures_again(run, tmp_path, monkeypatch):
    from diffusion import evaluate
    from diffusion.checkpoints import load_checkpoint

    calls = []

    def measured(model, dist, reference=False):
        calls.append(reference)
        return {"ed_ratio": 1.0, "kl_gap_nats": 0.0, "conditional": {w: {"accuracy": 1.0} for w in "013"}}

    monkeypatch.setattr(evaluate, "evaluate_2d", measured)
    code, out, err = run("models-2d", "--datasets", "moons", "--steps", 3, "--batch", 16, "--threads", 1,
                         "--save", tmp_path)
    assert code == 0, err
    assert '"dataset": "moons"' in out and "| moons | 3 |" in out
    _, config = load_checkpoint(tmp_path / "moons.safetensors")
    assert config["train"]["steps_done"] == 3 and config["metrics"]["ed_ratio"] == 1.0
    assert run("models-2d", "--datasets", "moons", "--remeasure", tmp_path)[0] == 0
    assert calls == [True, True]


def test_energy_maps_and_digit_presets_write_where_asked(run, tmp_path, monkeypatch):
    from ui import digit_presets, energy_maps

    seen = {}

    def maps(datasets, jobs, progress):
        seen["maps"] = (datasets, jobs)
        return {"meta": np.array("{}")}

    monkeypatch.setattr(energy_maps, "build", maps)
    code, _, err = run("energy-maps", "--datasets", "moons", "grid", "--jobs", 1, "--out", tmp_path / "e.npz")
    assert code == 0, err
    assert seen["maps"] == (["moons", "grid"], 1) and (tmp_path / "e.npz").exists()

    monkeypatch.setattr(digit_presets, "build", lambda model, x, y, progress: {})
    code, _, err = run("digit-presets", "--out", tmp_path / "d.npz")
    assert code == 0, err
    store, problem = digit_presets.load(tmp_path / "d.npz")
    assert problem is None and store.meta["spec"] == "cosine:s=0.008"


def test_energy_heads_train_energy_networks_that_keep_their_log_z_history(run, tmp_path):
    from diffusion.checkpoints import load_checkpoint
    from diffusion.likelihood import LOG_Z_TIMES

    code, _, err = run("energy-heads", "--datasets", "moons", "--steps", 3, "--folder", tmp_path / "heads")
    assert code == 0, err
    model, config = load_checkpoint(tmp_path / "heads" / "moons.safetensors")
    assert model.parameterization == "energy" and config["train"]["steps_done"] == 3
    history = config["train"]["log_z_history"]
    assert history["t"] == list(LOG_Z_TIMES) and history["steps"] == [3]  # fewer steps than one interval: the last
    assert len(history["log_z"]) == 1 and len(history["log_z"][0]) == len(LOG_Z_TIMES)


def test_memorisation_trains_the_networks_then_samples_them(run, tmp_path):
    from ui import memorisation

    folder = tmp_path / "memo"
    code, _, err = run("memorisation-samples", "--ns", 4, "--folder", folder)
    assert code == 2 and "memorisation-nets" in err
    code, _, err = run("memorisation-nets", "--ns", 4, "--steps", 3, "--folder", folder)
    assert code == 0, err
    code, _, err = run("memorisation-samples", "--ns", 4, "--folder", folder)
    assert code == 0, err
    store, problem = memorisation.load(str(folder / "samples.npz"))
    assert problem is None and store["moons"]["net_4"].shape == (memorisation.N_GEN, 2)
