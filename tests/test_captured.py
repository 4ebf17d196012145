"""The captured training step (diffusion.captured): on the CPU the same step function, unrecorded, against the
eager loop of diffusion.training.train; on CUDA the recorded graph against the same step unrecorded."""

import copy
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from diffusion import captured
from diffusion.models import build_model
from diffusion.parameterizations import noise_level
from diffusion.schedules import make_schedule, times_of_uniform
from diffusion.train import DEFAULTS_2D, build_parser
from diffusion.training import TrainConfig, TrainResult, train
from toy_data import get_dataset

ROOT = Path(__file__).resolve().parents[1]
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def moons_model(parameterization="v", num_classes=2, seed=0):
    torch.manual_seed(seed)
    return build_model("points", parameterization, make_schedule("cosine"), num_classes, width=64, depth=2, dim=2)


def config(**kw):
    base = dict(steps=30, batch_size=256, lr=3e-3, weighting="v", ema_decay=0.995, device="cpu")
    return TrainConfig(**{**base, **kw})


def eager_draws(data, cfg, conditional=True):
    """The eager loop's own draws, in its order from its generator (diffusion.training.train, diffusion_loss)."""
    b = cfg.batch_size

    def draw(g):
        x0, labels = data(b, g)
        labels = labels if conditional else None
        if labels is not None:
            labels = torch.where(torch.rand(labels.shape, generator=g) < cfg.label_dropout, -1, labels)
        u = torch.rand((), generator=g, dtype=torch.float64).item()
        t = ((torch.arange(b, dtype=torch.float64) + u) / b)[torch.randperm(b, generator=g)]
        t = times_of_uniform(make_schedule("cosine"), t, cfg.t_sampling)  # the tests' models are cosine
        eps = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
        return x0, labels, t, eps

    return draw


def static_with(model, data, cfg, draw, sync_every=7):
    """captured.run in "static" mode from the same start as train(): seeds, EMA copy, generator."""
    torch.manual_seed(cfg.seed)
    model.train()
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    result = TrainResult(ema)
    captured.run(model, ema, data, cfg, torch.device("cpu"), None, result, "static", draw=draw,
                 generator=torch.Generator().manual_seed(cfg.seed), sync_every=sync_every)
    return result


# The two paths do the same float32 arithmetic on the CPU, op for op; the lr and the EMA weight are computed with
# torch instead of math, which may differ in the last bit of a float64. After 30 Adam steps of size <= lr = 3e-3
# that is far below 1e-6 on weights of order one, so 1e-6 separates "the same computation" from any real change.
SAME = dict(atol=1e-6, rtol=0)


@pytest.mark.parametrize("parameterization,num_classes,recipe", [
    ("v", 2, {}), ("eps", 0, {}), ("v", 2, dict(t_sampling="logsnr_normal", batch_target=True))])
def test_static_step_gives_the_eager_loops_weights_for_the_same_draws(parameterization, num_classes, recipe):
    dist = get_dataset("moons")
    data = captured.MixtureData(dist)
    cfg = config(capture="off", **recipe)
    eager = train(moons_model(parameterization, num_classes), data, cfg)
    model = moons_model(parameterization, num_classes)
    static = static_with(model, data, cfg, eager_draws(data, cfg, num_classes > 0))
    assert eager.capture == "off" and static.steps_done == cfg.steps
    torch.testing.assert_close(torch.tensor(static.losses), torch.tensor(eager.losses), **SAME)
    for p, q in zip(model.parameters(), moons_model(parameterization, num_classes).parameters()):
        assert not torch.equal(p, q)  # it trained
    for p, q in zip(static.model.parameters(), eager.model.parameters()):  # the EMA weights
        torch.testing.assert_close(p, q, **SAME)


def test_static_step_gives_the_eager_loops_unet_for_the_same_draws():
    """Images: a tiny UNet on random 'digits' through TensorData, the path MNIST takes."""
    g = torch.Generator().manual_seed(1)
    data = captured.TensorData(torch.rand(50, 1, 28, 28, generator=g) * 2 - 1, torch.randint(0, 10, (50,), generator=g))

    def unet():
        torch.manual_seed(0)
        return build_model("images", "v", make_schedule("cosine"), 10, base=8)

    cfg = config(steps=6, batch_size=16, lr=2e-3, capture="off")
    eager = train(unet(), data, cfg)
    static = static_with(unet(), data, cfg, eager_draws(data, cfg), sync_every=4)
    torch.testing.assert_close(torch.tensor(static.losses), torch.tensor(eager.losses), **SAME)
    for p, q in zip(static.model.parameters(), eager.model.parameters()):
        torch.testing.assert_close(p, q, **SAME)


def test_static_mode_with_device_draws_trains_as_well_as_the_eager_loop():
    """Its own draws (the ones recorded on CUDA) differ from the eager loop's, so compare the loss levels.

    Both runs' last 100 per-step losses are batch noise around a slowly falling mean; the two means may
    differ by the noise of a 100-step mean in each, sqrt(2) * sd / 10, plus what the slope adds. Four
    such standard errors, with sd taken from the runs themselves (slope included, so larger), bound it."""
    dist = get_dataset("moons")
    data = captured.MixtureData(dist)
    eager = train(moons_model(), data, config(steps=400, capture="off"))
    static = train(moons_model(), data, config(steps=400, capture="static"))
    assert static.capture == "static" and static.steps_done == 400 and not static.stopped
    a, b = torch.tensor(eager.losses[-100:]), torch.tensor(static.losses[-100:])
    sd = math.sqrt((a.var() + b.var()) / 2)
    assert abs(a.mean() - b.mean()) <= 4 * math.sqrt(2) * sd / 10
    assert b.mean() < 0.8 * torch.tensor(static.losses[:10]).mean()  # and it learned


def test_lr_factor_is_the_eager_schedule():
    steps = 1000
    warm = max(1, steps // 50)
    s = torch.arange(0, steps + 1, dtype=torch.float64)
    eager = [min(1.0, (k + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, k / steps))) for k in range(steps + 1)]
    torch.testing.assert_close(captured.lr_factor(s, steps), torch.tensor(eager, dtype=torch.float64),
                               atol=1e-15, rtol=0)  # float64 cos against math.cos: a few ulp


@pytest.mark.parametrize("spec", ["cosine", "linear", "sigmoid:start=-3,end=3,tau=1"])
def test_level_on_device_is_noise_level(spec):
    schedule = make_schedule(spec)
    t = torch.cat([torch.tensor([0.0, 1.0]), torch.rand(100, generator=torch.Generator().manual_seed(0))]).double()
    a, b = captured.level_on_device(schedule, t), noise_level(schedule, t)
    for name in ("alpha", "sigma", "d_alpha", "d_sigma", "logsnr"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_mixture_draws_on_the_device_follow_the_mixture():
    """Component shares within 5 binomial standard errors; labels are the components' labels."""
    dist = get_dataset("pinwheel")
    data = captured.MixtureData(dist).on("cpu")
    n = 200_000
    x, labels = data.draw(n, torch.Generator().manual_seed(0))
    assert x.dtype == torch.float32 and x.shape == (n, 2)
    shares = torch.bincount(labels, minlength=dist.num_classes).double() / n
    expect = torch.zeros(dist.num_classes, dtype=torch.float64).index_add_(0, dist.labels, dist.weights)
    se = torch.sqrt(expect * (1 - expect) / n)
    assert ((shares - expect).abs() <= 5 * se).all()
    assert (dist.nearest_label(x[:2000]) == labels[:2000]).float().mean() > 0.9  # points near their own arm


def test_tensor_draws_are_rows_of_the_set_and_host_draws_match_mnist_sampler():
    x = torch.arange(20, dtype=torch.float32).reshape(10, 2)
    labels = torch.arange(10)
    data = captured.TensorData(x, labels)
    xb, lb = data.on("cpu").draw(64, torch.Generator().manual_seed(0))
    assert torch.equal(xb[:, 0], 2 * lb.float())  # each row keeps its label
    idx = torch.randint(10, (5,), generator=torch.Generator().manual_seed(3))
    xh, lh = data(5, torch.Generator().manual_seed(3))
    assert torch.equal(xh, x[idx]) and torch.equal(lh, labels[idx])


def test_stratified_t_has_one_draw_per_stratum():
    cfg = config(batch_size=64)
    data = captured.MixtureData(get_dataset("moons")).on("cpu")
    draw = captured.make_draw(data, cfg, make_schedule("cosine"), 64)
    _, _, t, eps = draw(torch.Generator().manual_seed(0))
    assert torch.equal(torch.sort((t * 64).floor().long()).values, torch.arange(64)) and eps.shape == (64, 2)


def test_capture_modes_resolve_and_refuse_clearly():
    cpu, data = torch.device("cpu"), captured.MixtureData(get_dataset("moons"))
    assert captured.resolve("auto", cpu, 1, "v", data) == "off"  # the eager loop on a CPU
    assert captured.resolve("static", cpu, 1, "v", data) == "static"
    with pytest.raises(ValueError, match="capture='graph' cannot be used: CUDA graphs need a CUDA device"):
        train(moons_model(), data, config(capture="graph"))
    with pytest.raises(ValueError, match="TensorData or MixtureData"):
        captured.resolve("static", cpu, 1, "v", lambda n, g: None)
    with pytest.raises(ValueError, match="energy head"):
        captured.resolve("static", cpu, 1, "energy", data)
    with pytest.raises(ValueError, match="one process"):
        captured.resolve("static", cpu, 2, "v", data)
    with pytest.raises(ValueError, match="capture='sometimes' is invalid; allowed: auto, graph, static, off"):
        config(capture="sometimes").validate()
    if torch.cuda.is_available():
        assert captured.resolve("auto", torch.device("cuda"), 1, "v", data) == "graph"
        assert captured.resolve("auto", torch.device("cuda"), 1, "v", lambda n, g: None) == "off"


def test_a_bad_loss_stops_at_the_next_read_with_the_last_read_weights():
    dist = get_dataset("moons")
    data = captured.MixtureData(dist)
    cfg = config(steps=20, capture="static")
    inner = eager_draws(data, cfg)
    calls = []

    def draw(g):
        x0, labels, t, eps = inner(g)
        calls.append(1)
        return (x0 * float("nan") if len(calls) == 12 else x0), labels, t, eps

    model = moons_model()
    ref = static_with(moons_model(), data, cfg, eager_draws(data, cfg), sync_every=5)
    result = static_with(model, data, cfg, draw, sync_every=5)
    assert result.stopped == ("the loss became nan at step 12; training stopped and kept the weights of step 10 "
                              "(the last read of the loss)")
    assert result.steps_done == 10 and len(result.losses) == 10
    assert all(math.isfinite(p.abs().sum().item()) for p in [*model.parameters(), *result.model.parameters()])
    assert ref.losses[:10] == result.losses


def test_callbacks_and_stop_requests_come_at_each_read():
    data = captured.MixtureData(get_dataset("moons"))
    seen = []
    result = train(moons_model(), data, config(steps=250, capture="static"), callback=seen.append,
                   should_stop=lambda: len(seen) >= 200)
    assert [i["step"] for i in seen] == list(range(1, 201))  # one call per step, in bursts of SYNC_EVERY = 100
    assert result.stopped == "stopped by request after 200 steps" and result.steps_done == 200
    assert seen[-1]["snapshot"]().num_classes == 2


def test_cli_capture_flag():
    parse = build_parser().parse_args
    assert parse(["--out", "x.safetensors"]).capture == "auto"
    assert parse(["--out", "x.safetensors", "--capture"]).capture == "graph"
    assert parse(["--out", "x.safetensors", "--capture", "static"]).capture == "static"
    with pytest.raises(SystemExit):
        parse(["--out", "x.safetensors", "--capture", "always"])


def test_cli_auto_trains_eagerly_on_the_cpu_and_records_it(tmp_path):
    from diffusion.checkpoints import read_config
    from diffusion.cli import run
    from diffusion.train import main

    out = tmp_path / "m.safetensors"
    assert main(["--dataset", "moons", "--steps", "5", "--device", "cpu", "--quiet", "--out", str(out)]) == 0
    train_info = read_config(out)["train"]
    assert train_info["capture"] == "off" and train_info["batch_size"] == DEFAULTS_2D["batch"]  # no larger batch off CUDA
    # --capture alone means graph: refused without CUDA, in one line naming the setting
    assert run(main, "train", ["--dataset", "moons", "--steps", "5", "--device", "cpu", "--capture", "--out",
                               str(out)]) == 2


def test_gpu_benchmark_smoke_runs_on_the_cpu(tmp_path):
    """benchmarks/gpu_train.py --smoke: the whole script, tiny, so it cannot rot while no GPU runs it."""
    out = tmp_path / "bench.safetensors"
    proc = subprocess.run([sys.executable, "benchmarks/gpu_train.py", "--smoke", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "steps/s" in proc.stdout and "static" in proc.stdout and out.exists()


@CUDA
def test_graph_replay_trains_like_the_unrecorded_step_on_cuda():
    data = captured.MixtureData(get_dataset("moons"))
    cfg = dict(steps=400, device="cuda")
    static = train(moons_model(), data, config(capture="static", **cfg))
    graph = train(moons_model(), data, config(capture="graph", **cfg))
    assert graph.capture == "graph" and graph.steps_done == 400 and not graph.stopped
    a, b = torch.tensor(static.losses[-100:]), torch.tensor(graph.losses[-100:])
    sd = math.sqrt((a.var() + b.var()) / 2)  # as in the CPU comparison above: four standard errors
    assert abs(a.mean() - b.mean()) <= 4 * math.sqrt(2) * sd / 10


@CUDA
def test_graph_replay_does_not_synchronise_every_step():
    """torch's sync debug mode warns at each host synchronisation: a read every 100 steps and a few at the
    start (the capture itself synchronises), never one a step: fewer than steps / 10 in all."""
    data = captured.MixtureData(get_dataset("moons"))
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = train(moons_model(), data, config(steps=1000, device="cuda", capture="graph"))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert result.steps_done == 1000
    syncs = [w for w in caught if "synchroniz" in str(w.message).lower()]
    assert len(syncs) < 1000 / 10
