"""The Train page's live measurements: KL(p_data || p_theta) within its time share, and an energy head's log Z."""

from __future__ import annotations

import math

import pytest

from diffusion.checkpoints import load_checkpoint
from diffusion.likelihood import LOG_Z_TIMES, log_z_grid
from diffusion.schedules import make_schedule
from toy_data import get_dataset
from ui import live_metrics
from ui.live_metrics import CALIBRATION_POINTS, FINAL_POINTS, KL_FLOOR, LIVE_POINTS, SHARE, LiveKL, kl_range, kl_text
from ui.training import DEFAULTS, TrainingJob, make_config


def test_final_kl_is_the_figure_evaluate_reports():
    """The shipped moons model's metrics hold `python -m diffusion.evaluate`'s kl_gap_nats +- kl_gap_se (2,000
    held-out points, 128 ODE steps). The page's final estimate uses the same points and 48 steps: the only
    difference is the ODE's discretisation (measured 0.0022 +- 0.0002 nats on moons), deterministic, and the issue
    asks for agreement within evaluate's standard error."""
    model, config = load_checkpoint("checkpoints/moons.safetensors")
    metrics = config["metrics"]
    kl = LiveKL(get_dataset("moons"))
    estimate, se = kl.finish(model)
    assert len(kl.x) == FINAL_POINTS and kl.final == (estimate, se)
    assert abs(estimate - metrics["kl_gap_nats"]) <= metrics["kl_gap_se"]
    assert se == pytest.approx(metrics["kl_gap_se"], rel=0.1)  # the same points' spread; the ODEs differ slightly


class _Timed(LiveKL):
    """A LiveKL whose estimate takes a fixed time on a fake clock, to test the budget alone."""

    def __init__(self, cost: float):
        super().__init__(get_dataset("moons"), live_points=10, final_points=10)
        self.cost, self.now = cost, 0.0

    def clock(self) -> float:
        return self.now

    def measure(self, model, n=None):
        self.now += self.cost * (len(self.x) if n is None else n) / self.live_points
        return 0.0, 0.0


def test_live_estimates_keep_within_their_share_of_training_time(monkeypatch):
    kl = _Timed(0.02)
    kl.live_points = 2 * CALIBRATION_POINTS  # the calibration: half an estimate's cost
    monkeypatch.setattr(live_metrics.time, "perf_counter", kl.clock)
    asked = []
    train = 0.0
    for step in range(1, 2001):  # 2,000 steps of 5 ms of training
        train += 0.005
        kl.update(step, lambda: asked.append(step), train)
    # the calibration (0.01 s) forecasts the first estimate's cost exactly: it comes once the training has paid
    # for both, (0.01 + 0.02) / SHARE = 0.375 s, at step 75; the model is asked for once more per estimate
    assert kl.curve[0][0] == round(0.03 / SHARE / 0.005) and len(asked) == len(kl.curve) + 1 >= 10
    assert kl.seconds <= SHARE * train + 1e-9  # each estimate waited for its share of training
    gaps = [b[0] - a[0] for a, b in zip(kl.curve, kl.curve[1:])]
    pay = round(0.02 / SHARE / 0.005)  # steps of training that pay for one estimate
    assert set(gaps) <= {pay, pay + 1}  # evenly spaced (+1: the float sum of the step times)


def test_job_draws_kl_live_and_keeps_the_final_figure():
    dist = get_dataset("moons")
    job = TrainingJob(dist, "moons", "moons", "v", make_schedule("cosine"), make_config(300, 128, 3e-3, "v", "cpu"))
    job.kl = LiveKL(dist, live_points=100, final_points=200, share=1.0)  # a short run pays for several estimates
    job.start().join(120)
    assert job.state == "done", job.error
    pr = job.progress()
    assert len(pr["kl"]) >= 2 and all(math.isfinite(k) and e > 0 for _, k, e in pr["kl"])
    assert [s for s, _, _ in pr["kl"]] == sorted({s for s, _, _ in pr["kl"]})
    assert pr["kl_final"] == job.kl_final and job.kl_final[1] > 0
    info = job.info()
    assert info["metrics"]["kl_gap_nats"] == pytest.approx(job.kl_final[0], abs=1e-4)
    assert info["train"]["kl_seconds"] >= 0 and "log_z_history" not in info["train"]
    assert info["metrics"]["kl_ode_steps"] == 48  # not evaluate's 128: said beside the figure
    assert kl_text(pr["kl"], pr["kl_final"]).startswith("Final KL")
    lo, hi = kl_range(pr["kl"], pr["kl_final"])  # log10 units
    assert 10**lo == pytest.approx(KL_FLOOR) and 10**hi >= max(1.0, pr["kl"][0][1])


def test_energy_head_job_records_log_z_while_it_trains():
    dist = get_dataset("8gaussians")
    job = TrainingJob(dist, "8gaussians", "8gaussians", "energy", make_schedule("cosine"),
                      make_config(50, 128, 3e-3, "v", "cpu"))
    job.kl = LiveKL(dist, live_points=50, final_points=50, share=0.0)  # the KL is tested above; keep this one quick
    job.start().join(120)
    assert job.state == "done", job.error
    hist = job.info()["train"]["log_z_history"]
    assert hist["t"] == list(LOG_Z_TIMES) and hist["steps"] == [25, 50]
    assert all(len(row) == len(LOG_Z_TIMES) and all(math.isfinite(z) for z in row) for row in hist["log_z"])
    # the last row is the finished (EMA) model's own log Z, as page 2 computes it
    assert hist["log_z"][-1][0] == pytest.approx(log_z_grid(job.result.model, LOG_Z_TIMES[0]), abs=1e-4)


@pytest.mark.slow
def test_a_moons_run_with_the_pages_defaults_reaches_the_target():
    """The issue's target: the KL curve of a moons run reaches <= 0.05 nats (the page's default recipe)."""
    dist = get_dataset("moons")
    job = TrainingJob(dist, "moons", "moons", DEFAULTS["parameterization"], make_schedule("cosine"),
                      make_config(DEFAULTS["steps"], DEFAULTS["batch"], DEFAULTS["lr"], DEFAULTS["weighting"], "cpu"))
    job.start().join(600)
    assert job.state == "done", job.error
    assert job.kl_final[0] <= 0.05
    assert min(k for _, k, _ in job.kl.curve) <= 0.05 + 3 * 0.01  # live points: ~0.007 s.e. on LIVE_POINTS
    assert LIVE_POINTS < FINAL_POINTS
    assert job.kl.seconds <= 0.10 * (job.result.seconds - job.kl.seconds)
