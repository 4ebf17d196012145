"""Several processes (torchrun / DistributedDataParallel, gloo on the CPU) train the one-process model."""

import os
import pathlib
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from diffusion import distributed
from diffusion.checkpoints import load_checkpoint
from diffusion.models import DiffusionModel
from diffusion.nets import MLP2D, MLPConfig
from diffusion.schedules import make_schedule
from diffusion.training import TrainConfig, diffusion_loss, train
from toy_data import get_dataset

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = pathlib.Path(__file__).resolve().parents[1]
WORLD = 2


def make(kind="v", dtype=torch.float32):
    torch.manual_seed(3)
    net = MLP2D(MLPConfig(width=32, depth=2, num_classes=2, scalar_out=kind == "energy"))
    return DiffusionModel(net, kind, make_schedule("cosine"), 2).to(dtype)


def moons_data(n, g):
    return get_dataset("moons").sample(n, generator=g)


def moons_data64(n, g):
    x, y = moons_data(n, g)
    return x.double(), y


def nan_in_row_40_at_call_6():
    """Data whose 6th batch has one bad row, in the second half (the second process's block only)."""
    calls = {"n": 0}

    def data(n, g):
        calls["n"] += 1
        x, y = moons_data(n, g)
        if calls["n"] == 6:
            x[40] = float("nan")
        return x, y
    return data


def stop_after(k, only_rank=None):
    calls = {"n": 0}

    def should_stop():
        calls["n"] += 1
        return calls["n"] > k and (only_rank is None or dist.get_rank() == only_rank)
    return should_stop


def scenarios(rank=None):
    """The same training runs, in one process (rank None) or in each of several.

    The two runs whose weights are compared train in float64 (see test_two_gloo_processes_...)."""
    out = {}
    seen = []
    cfg = dict(batch_size=64, seed=5, device="cpu")
    res = train(make("v", torch.float64), moons_data64, TrainConfig(steps=20, **cfg),
                callback=lambda info: seen.append(info["step"]))
    out["v"] = (res.losses, [p.detach().clone() for p in res.model.parameters()], res.world_size, list(seen))
    res = train(make("energy", torch.float64), moons_data64, TrainConfig(steps=8, t_sampling="uniform_logsnr", **cfg))
    out["energy"] = (res.losses, [p.detach().clone() for p in res.model.parameters()])
    stop = stop_after(3, only_rank=1) if rank is not None else stop_after(3)
    res = train(make("v"), moons_data, TrainConfig(steps=20, **cfg), should_stop=stop)
    out["stop"] = (res.steps_done, res.stopped)
    res = train(make("v"), nan_in_row_40_at_call_6(), TrainConfig(steps=20, **cfg))
    out["nan"] = (res.steps_done, res.stopped, all(torch.isfinite(p).all() for p in res.model.parameters()))
    return out


def _worker(rank, port, folder):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        torch.save(scenarios(rank), os.path.join(folder, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Why the weights are compared in float64, and how close they must be.
# Two processes and one compute the same gradient up to summation order, so per step the gradients differ
# by round-off: |dg| <= n u |g|_1-ish, with u the unit round-off and n the length of the longest sum. Adam
# then divides each element by sqrt(v) + eps, so an element whose true gradient is near zero (a sum that
# cancels) turns its round-off into an update of up to lr |dg| / eps. In float32 that is visible: on some
# CPUs one element of the energy model's first block (gradient -2.6e-8, 14% of it round-off, at step 1)
# moved by 2e-5, 1.1x what a fixed relative tolerance allowed, while every other weight agreed to 1e-7.
# In float64 (u = 1.1e-16) the same bound is tiny: |dg| <= 2e3 * 1.1e-16 * |g| <= 2.5e-13 after clipping
# to norm 1 (the longest sums here are batch 64 x width 34 ~ 2e3 terms), so one step moves any weight by
# at most lr |dg| / eps = 3e-3 * 2.5e-13 / 1e-8 = 7.5e-8, and 20 steps by at most 1.5e-6 (the EMA is an
# average of these weights, so it obeys the same bound). A process that trained on the wrong rows or
# skipped the averaging differs by ~lr = 3e-3 after the first step: three orders of magnitude more.
FLOAT64_WEIGHT_TOL = 20 * 3e-3 * 2.5e-13 / 1e-8


def assert_same_training(a, b, tol=FLOAT64_WEIGHT_TOL):
    for pa, pb in zip(a, b):
        assert pa.dtype == pb.dtype == torch.float64
        assert (pa - pb).abs().max().item() <= tol


def test_two_gloo_processes_train_the_one_process_model(tmp_path):
    """train() in 2 processes (a process group the caller set up) vs train() alone: same losses, same weights
    (float64, within the round-off bound above), identical weights in both processes; callback only on
    rank 0; a stop request or a NaN in one process's rows stops both at the same step."""
    old = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    finally:
        if old is None:
            os.environ.pop("OMP_NUM_THREADS")
        else:
            os.environ["OMP_NUM_THREADS"] = old
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    one = scenarios()
    assert not dist.is_initialized()
    for kind in ("v", "energy"):
        losses, params = one[kind][:2]
        for got in ranks:
            assert got[kind][0] == pytest.approx(losses, rel=1e-6)
            assert_same_training(got[kind][1], params)
        assert all(torch.equal(p, q) for p, q in zip(ranks[0][kind][1], ranks[1][kind][1]))
    assert one["v"][2:] == (1, list(range(1, 21)))
    assert ranks[0]["v"][2:] == (WORLD, list(range(1, 21))) and ranks[1]["v"][2:] == (WORLD, [])
    assert one["stop"][0] == 3 and all(r["stop"] == one["stop"] for r in ranks)
    assert one["nan"][0] == 5 and "nan" in one["nan"][1] and one["nan"][2]
    assert all(r["nan"] == one["nan"] for r in ranks)


def test_row_blocks_average_to_the_whole_batch_loss():
    """The identity the equality rests on: same draws, then each block's mean; blocks average to the whole."""
    x0, labels = moons_data(64, torch.Generator().manual_seed(0))
    for kind in ("v", "energy"):
        model = make(kind)

        def loss(rows=None):
            return diffusion_loss(model, x0, labels, "v", generator=torch.Generator().manual_seed(1), rows=rows)

        parts = [loss(distributed.rows_of(64, r, 4)) for r in range(4)]
        torch.testing.assert_close(sum(parts) / 4, loss(), rtol=1e-6, atol=0)


def test_rows_and_batches_that_do_not_split():
    assert distributed.rows_of(64, 1, 2) == slice(32, 64)
    assert distributed.rows_of(12, 2, 3) == slice(8, 12)
    with pytest.raises(ValueError, match="batch size 63 must be divisible by the number of processes 2"):
        distributed.rows_of(63, 0, 2)


def test_one_process_path_is_unchanged():
    """Losses recorded with the code before the distributed change (same seeds): the draws are the same."""
    res = train(make("v"), moons_data, TrainConfig(steps=8, batch_size=64, seed=5, device="cpu"))
    before = [0.455605477, 0.550049305, 0.626274168, 0.365713239, 0.48987025, 0.350511581, 0.429541349,
              0.516746461]
    assert res.losses == pytest.approx(before, rel=1e-3)
    assert res.world_size == 1 and not dist.is_initialized()


def test_bf16_autocast_keeps_a_float32_loss():
    """The mixed-precision path (used on CUDA) runs on the CPU too: the loss stays float32 and near the fp32 one."""
    x0, labels = moons_data(256, torch.Generator().manual_seed(0))
    model = make("v")
    full = diffusion_loss(model, x0, labels, "v", generator=torch.Generator().manual_seed(1))
    half = diffusion_loss(model, x0, labels, "v", generator=torch.Generator().manual_seed(1),
                          autocast_dtype=torch.bfloat16)
    assert half.dtype == torch.float32 and abs(half.item() - full.item()) < 0.05 * full.item()
    with pytest.raises(ValueError, match="amp"):
        TrainConfig(amp="yes").validate()


def torchrun(*args, nproc=WORLD):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if nproc else []
    return subprocess.run([sys.executable, *launcher, "-m", "diffusion.train", *args], capture_output=True,
                          text=True, timeout=180, cwd=ROOT, env=env)


@pytest.mark.slow  # three real training processes; test_torchrun_with_a_batch_that_does_not_split starts torchrun once
def test_torchrun_command_saves_the_one_process_checkpoint(tmp_path):
    """The user's command: the same `python -m diffusion.train` flags under torchrun, two CPU processes."""
    args = ["--dataset", "moons", "--steps", "30", "--batch", "64", "--width", "32", "--depth", "2", "--quiet"]
    r = torchrun(*args, "--out", str(tmp_path / "two.safetensors"))
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("saved ") == 1 and "x 2 processes" in r.stderr  # rank 0 alone reports
    r = torchrun(*args, "--out", str(tmp_path / "one.safetensors"), nproc=0)
    assert r.returncode == 0, r.stderr
    half = args[:args.index("--batch") + 1] + ["32"] + args[args.index("--batch") + 2:]  # another batch of rows
    r = torchrun(*half, "--out", str(tmp_path / "half.safetensors"), nproc=0)
    assert r.returncode == 0, r.stderr
    two, c2 = load_checkpoint(tmp_path / "two.safetensors")
    one, c1 = load_checkpoint(tmp_path / "one.safetensors")
    half, _ = load_checkpoint(tmp_path / "half.safetensors")
    assert c2["train"]["world_size"] == 2 and c1["train"]["world_size"] == 1
    assert c2["train"]["steps_done"] == c1["train"]["steps_done"] == 30
    # float32 here (the CLI's precision), so Adam may amplify round-off in the few elements whose gradient
    # is near zero (see FLOAT64_WEIGHT_TOL above), each by at most about lr a step. Training on other rows
    # moves every element by about that much, so with k such elements of N the norm ratio below is about
    # sqrt(k / N); 1e-3 allows less than one element of these ~10,000 moved as far as another batch moves
    # all of them. Measured: 5e-7.
    flat = {k: torch.cat([p.detach().flatten() for p in m.parameters()]) for k, m in
            (("two", two), ("one", one), ("half", half))}
    assert (flat["two"] - flat["one"]).norm() <= 1e-3 * (flat["half"] - flat["one"]).norm()


@pytest.mark.slow  # a real torchrun of two processes; the fast run checks DDP in the gloo test above
def test_torchrun_with_a_batch_that_does_not_split(tmp_path):
    r = torchrun("--dataset", "moons", "--steps", "5", "--batch", "63", "--quiet",
                 "--out", str(tmp_path / "m.safetensors"))
    assert r.returncode != 0
    assert "batch size 63 must be divisible by the number of processes 2" in r.stderr
    assert not (tmp_path / "m.safetensors").exists()
