"""ui/digit_training.py: the live digit recipe, its grid, its judge and the background job (tiny nets, a few steps)."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
import torch

from diffusion.schedules import make_schedule
from toy_data import get_dataset
from ui import digit_training as dt
from ui.training import MAX_CONCURRENT, TrainingJob, make_config


class Oracle:
    """A stand-in for the lab's classifier that reads every image as the digit `answer(i)` for row i."""

    def __init__(self, answer):
        self.answer, self.seen = answer, 0

    def predict(self, x):
        out = torch.tensor([self.answer(self.seen + i) for i in range(len(x))])
        self.seen += len(x)
        return out


def tiny(seed: int = 0):
    return dt.build_live_model(seed, base=8, mults=(1, 2), attention=False)


def fake_digits(n, generator):
    """Random images in [-1, 1] with labels 0..9: enough to run the loop without reading MNIST."""
    return torch.rand((n, 1, 28, 28), generator=generator) * 2 - 1, torch.randint(10, (n,), generator=generator)


def wait_for(predicate, limit: float = 60.0):
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"not reached in {limit} s")


@pytest.fixture(autouse=True)
def full_priority(monkeypatch):
    """The job's thread keeps the test's priority: at niceness +10 on a machine shared with other busy processes it
    gets a few percent of a core (ui/threads.py tests the lowering itself)."""
    monkeypatch.setattr(dt, "lower_this_threads_priority", lambda: False)


def test_live_config_checks_its_settings():
    config = dt.live_config()
    assert (config.steps, config.batch_size, config.lr, config.ema_decay, config.label_dropout) == (
        dt.LIVE["steps"], dt.LIVE["batch"], dt.LIVE["lr"], dt.LIVE["ema"], dt.LIVE["label_dropout"])
    assert config.device == "cpu" and config.weighting == dt.LIVE["weighting"]
    for bad in (5, 0, 20_001, 1.5, True, "100"):
        with pytest.raises(ValueError, match=r"training steps must be a whole number in 20\.\.20000"):
            dt.live_config(bad)
    with pytest.raises(ValueError, match="lr"):
        dt.live_config(100, lr=0.0)
    with pytest.raises(ValueError, match="ema_decay"):
        dt.live_config(100, ema=1.0)


def test_the_live_network_is_the_small_unet_of_the_recipe():
    model = dt.build_live_model()
    cfg = model.net.cfg
    assert (cfg.base, cfg.mults, cfg.attention, cfg.num_classes) == (8, (1, 2, 2), False, 10)
    assert model.parameterization == "v" and model.schedule.spec() == make_schedule("cosine").spec()
    assert sum(p.numel() for p in model.parameters()) == 72_689  # a ninth of the shipped base-24 model's 0.64 M
    a, b = dt.build_live_model(3), dt.build_live_model(3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))  # the seed fixes the weights


def test_the_grid_starts_every_digit_from_the_same_noise_every_time():
    model = tiny()
    x_T = dt.grid_noise(model.schedule, per_digit=3)
    assert x_T.shape == (30, 1, 28, 28)
    for d in range(10):  # column j is one noise, shared by every digit's row
        assert torch.equal(x_T[3 * d:3 * d + 3], x_T[:3])
    assert torch.equal(x_T, dt.grid_noise(model.schedule, per_digit=3))  # and the same at every redraw
    first = dt.grid_samples(model, x_T, steps=2)
    assert first.shape == (10, 3, 28, 28) and first.min() >= -1 and first.max() <= 1
    assert (first == dt.grid_samples(model, x_T, steps=2)).all()  # the same model redraws the same picture
    assert torch.equal(x_T, dt.grid_noise(model.schedule, per_digit=3))  # the sampler did not write into the noise


def test_judge_counts_what_the_classifier_reads_as_the_asked_digit():
    model = tiny()
    n = 40
    labels = torch.arange(10).repeat_interleave(n // 10)  # the order judge() asks for digits in
    right = dt.judge(model, Oracle(lambda i: int(labels[i % n])), n=n, ws=(2.0, 0.0), nfe=2, batch=15)
    assert right == {2.0: (1.0, 0.0), 0.0: (1.0, 0.0)}
    zeros = dt.judge(model, Oracle(lambda i: 0), n=n, ws=(0.0,), nfe=2)
    p, se = zeros[0.0]
    assert p == pytest.approx(0.1) and se == pytest.approx((0.1 * 0.9 / n) ** 0.5)  # binomial standard error
    with pytest.raises(ValueError, match="multiple of 10"):
        dt.judge(model, Oracle(lambda i: 0), n=25)


def test_a_short_job_trains_redraws_and_is_judged():
    labels = torch.arange(10).repeat_interleave(2)
    job = dt.DigitTrainingJob(dt.live_config(20, batch=8), Oracle(lambda i: int(labels[i % 20])), data=fake_digits,
                              model=tiny(), redraw_s=1e9, judge_n=20)
    job.start().join(120)
    pr = job.progress()
    assert job.state == "done" and not job.error
    assert pr["step"] == 20 and pr["steps"] == list(range(1, 21)) and len(pr["losses"]) == 20
    assert pr["grid"][0] == 20 and pr["grid"][1].shape == (10, dt.PER_DIGIT, 28, 28)
    assert pr["grids"] == 2  # after the first step (at once, whatever redraw_s), and from the final EMA model
    assert pr["first_grid_s"] is not None and pr["first_grid_s"] <= pr["seconds"]
    assert pr["accuracy"] == {2.0: (1.0, 0.0), 0.0: (1.0, 0.0)}
    info = job.info()
    assert info["dataset"] == "mnist" and info["net"]["arch"] == "unet" and info["net"]["base"] == 8
    assert info["train"]["steps_done"] == 20 and info["metrics"]["accuracy_w2"] == 1.0
    # the final grid is the trained EMA model's, from the grid's noise
    again = dt.grid_samples(job.result.model, job.x_T)
    assert (again == pr["grid"][1]).all()


def test_stop_keeps_the_model_trained_so_far():
    job = dt.DigitTrainingJob(dt.live_config(20_000, batch=8), None, data=fake_digits, model=tiny(), redraw_s=60)
    job.start()
    wait_for(lambda: job.progress()["step"] >= 3)
    job.request_stop()
    job.join(60)
    assert job.state == "done" and 3 <= job.result.steps_done < 20_000
    assert "stopped by request" in job.result.stopped and job.progress()["accuracy"] is None  # no classifier given


def test_digit_and_2d_trainings_share_the_servers_slots(monkeypatch):
    """While every slot is held, a digit job and a 2-D job both wait; Stop while waiting ends them."""
    monkeypatch.setattr("ui.training.lower_this_threads_priority", lambda: False)  # as for the digit job above
    held = threading.Event()
    with contextlib.ExitStack() as stack:
        for _ in range(MAX_CONCURRENT):
            assert stack.enter_context(dt.training_slot(held))
        digits = dt.DigitTrainingJob(dt.live_config(20, batch=8), None, data=fake_digits, model=tiny()).start()
        points = TrainingJob(get_dataset("moons"), "moons", "moons", "v", make_schedule("cosine"),
                             make_config(10, 32, 1e-3, "v", "cpu")).start()
        time.sleep(0.6)  # three of the jobs' 0.2 s waits for a slot
        assert digits.state == "queued" and points.state == "queued"
        digits.request_stop()
        digits.join(10)
        assert digits.state == "failed" and "waiting for a free training slot" in digits.error
    wait_for(lambda: points.state != "queued")  # the slots are free again: the 2-D job takes one
    points.request_stop()
    points.join(120)
    assert points.state in ("running", "evaluating", "done") and not points.error


def test_a_failure_in_the_thread_is_reported():
    def broken(n, generator):
        raise RuntimeError("no digits here")

    job = dt.DigitTrainingJob(dt.live_config(20, batch=8), None, data=broken, model=tiny())
    job.start().join(60)
    assert job.state == "failed" and "RuntimeError: no digits here" in job.error


@pytest.mark.slow
def test_the_benchmark_runs_in_smoke_mode():
    """benchmarks/train_digits_speed.py --smoke: the live loop and the judge end to end, with a table and a JSON line."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(root / "benchmarks" / "train_digits_speed.py"), "--smoke"],
                         capture_output=True, text=True, timeout=600, cwd=root, env={"OMP_NUM_THREADS": "1",
                                                                                    "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert [r["step"] for r in result["rows"]] == [10, 20] and result["parameters"] == 72_689
    for r in result["rows"]:
        for key in ("guided", "unguided"):  # 20 samples: a share in steps of 1/20 and its binomial standard error
            p = r[key]
            assert 0 <= p <= 1 and round(20 * p) == pytest.approx(20 * p)
            assert r[f"{key}_se"] == pytest.approx((p * (1 - p) / 20) ** 0.5, abs=1e-4)
    assert result["first_grid_s"] >= 0
    assert out.stdout.count("\n| 10 |") == 1 and out.stdout.count("\n| 20 |") == 1


def test_a_gpu_trains_the_shipped_network_and_a_cpu_the_small_one():
    from diffusion.train import DEFAULTS_MNIST
    from ui.digit_training import LIVE, ON_GPU, recipe_for

    assert recipe_for("cpu") is LIVE and recipe_for("mps") is LIVE
    assert recipe_for("cuda") is ON_GPU and recipe_for("cuda:1") is ON_GPU
    assert ON_GPU["base"] == DEFAULTS_MNIST["base"] and ON_GPU["attention"]
    assert ON_GPU["steps"] == DEFAULTS_MNIST["steps"] and ON_GPU["lr"] == DEFAULTS_MNIST["lr"]
    job = dt.DigitTrainingJob(dt.live_config(100, device="cpu"))
    assert job.model.net.cfg.base == LIVE["base"]  # the CPU's small network
