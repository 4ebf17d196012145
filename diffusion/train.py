"""python -m diffusion.train: train a diffusion model and save it as a checkpoint.

Examples (class-conditional models; the 2-D one takes about a minute on two CPU cores):

    python -m diffusion.train --dataset moons --out checkpoints/moons.safetensors
    python -m diffusion.train --dataset mnist --out checkpoints/mnist.safetensors
    python -m diffusion.train --dataset mnist --data-path ~/data/MNIST/raw --out my_mnist.safetensors

Several GPUs (or CPU processes): the same command under torchrun trains the same model, faster; --batch is
the global batch and must be divisible by the number of processes. Rank 0 reports and saves:

    torchrun --standalone --nproc_per_node 4 -m diffusion.train --dataset mnist --out my_mnist.safetensors

Defaults depend on the dataset (DEFAULTS_2D, DEFAULTS_MNIST); any flag overrides them.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from toy_data import DATASETS, get_dataset
from toy_data.mnist import LABEL_NAMES as MNIST_LABELS
from toy_data.mnist import load_mnist

from . import cli, distributed
from .captured import CAPTURE_MODES, CUDA_MIN_BATCH, MixtureData, TensorData
from .checkpoints import load_checkpoint, save_checkpoint
from .likelihood import LOG_Z_TIMES, log_z_grid
from .models import build_model
from .parameterizations import PARAMETERIZATIONS, WEIGHTINGS
from .schedules import SCHEDULES, make_schedule
from .training import T_SAMPLING, TrainConfig, pick_device, train

# The 2-D recipe: both quality targets on every toy set in about 30 s on one CPU core (docs/training.md, "The fast
# 2-D recipe"; the search in benchmarks/train_2d_recipes.py). The shipped 2-D models were trained longer with
# SHIPPED_2D (checkpoints/build.py).
DEFAULTS_2D = dict(schedule="cosine", parameterization="v", weighting="v", steps=2400, batch=512, lr=1e-2,
                   ema=0.995, t_sampling="logsnr_normal", batch_target=True, width=96, depth=4)
SHIPPED_2D = dict(schedule="cosine", parameterization="v", weighting="v", steps=4000, batch=1024, lr=3e-3,
                  ema=0.995)  # the shipped 2-D models' recipe (uniform t, each example's own target, MLPConfig's net)
DEFAULTS_MNIST = dict(schedule="cosine", parameterization="v", weighting="v", steps=9000, batch=64, lr=2e-3,
                      ema=0.999, base=24, t_sampling="uniform_t", batch_target=False)  # the shipped MNIST recipe (docs/training.md; its time in docs/measurements.md)
IMAGE_SETS = ("mnist",)
ALL_SETS = (*DATASETS, *IMAGE_SETS)


def defaults(dataset: str) -> dict:
    return DEFAULTS_MNIST if dataset in IMAGE_SETS else DEFAULTS_2D


def log_z_every(steps: int) -> int:
    """How often an energy head's log Z_theta(t) is recorded while it trains: every max(25, steps // 40) steps."""
    return max(25, steps // 40)


def log_z_recorder(steps: int, times=LOG_Z_TIMES):
    """(history, record): `record(info)` adds log Z_theta(t) of the EMA snapshot, for each t in `times`, at every
    `log_z_every(steps)`-th step and at the last (`record(info, last=True)`: also at a run's early end); `history`
    is {"t": [...], "steps": [...], "log_z": [[...], ...]}."""
    history = {"t": [float(t) for t in times], "steps": [], "log_z": []}
    every = log_z_every(steps)

    def record(info, last: bool = False):
        step = info["step"]
        if (step % every and step != steps and not last) or step in history["steps"][-1:]:
            return
        snap = info["snapshot"]()
        history["steps"].append(int(step))
        history["log_z"].append([round(log_z_grid(snap, t), 6) for t in history["t"]])

    return history, record


def build_parser():
    p = cli.ArgumentParser(prog="python -m diffusion.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="moons", help=f"what to learn: {', '.join(ALL_SETS)}")
    p.add_argument("--data-path", default=None,
                   help="mnist only: an MNIST .npz or a folder of IDX files (e.g. torchvision's MNIST/raw); "
                        "default: the copy shipped in toy_data/data")
    p.add_argument("--schedule", default=None,
                   help=f"noise schedule with optional parameters, e.g. 'sigmoid:start=-3,end=3,tau=1' ({', '.join(SCHEDULES)})")
    p.add_argument("--parameterization", default=None, choices=PARAMETERIZATIONS)
    p.add_argument("--weighting", default=None, choices=list(WEIGHTINGS),
                   help="loss weighting w(lambda) on the eps-space error")
    p.add_argument("--steps", type=cli.positive_int("--steps", 1, 1_000_000), default=None)
    p.add_argument("--batch", type=cli.positive_int("--batch", 1, 65536), default=None)
    p.add_argument("--lr", type=cli.bounded_float("--lr", 1e-6, 1.0), default=None)
    p.add_argument("--width", type=cli.positive_int("--width", 8, 2048), default=None, help="MLP width (2-D)")
    p.add_argument("--depth", type=cli.positive_int("--depth", 1, 32), default=None, help="residual blocks (2-D)")
    p.add_argument("--base", type=cli.positive_int("--base", 8, 512), default=None,
                   help="UNet channels at full resolution (mnist)")
    p.add_argument("--label-dropout", type=cli.bounded_float("--label-dropout", 0, 1), default=0.15,
                   help="share of labels dropped, so the model also learns p(x) for guidance")
    p.add_argument("--unconditional", action="store_true", help="ignore labels")
    p.add_argument("--ema", type=cli.bounded_float("--ema", 0, 0.99999), default=None, help="EMA decay")
    p.add_argument("--t-sampling", default=None, choices=T_SAMPLING,
                   help="how t is drawn: uniform_t, uniform_logsnr, or logsnr_normal (lambda from a normal around "
                        "the data's fine scale; the 2-D default)")
    p.add_argument("--batch-target", default=None, action=argparse.BooleanOptionalAction,
                   help="regress on the batch's posterior mean of x0 instead of each example's own (2-D default: "
                        "on; it removes most of the target's noise where the noise level is small)")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    p.add_argument("--amp", action="store_true",
                   help="CUDA only: run the network under bfloat16 autocast (off by default: slower for these "
                        "small networks on an H100, see docs/measurements.md)")
    p.add_argument("--capture", nargs="?", const="graph", default="auto", choices=CAPTURE_MODES,
                   help="auto (default): on one CUDA GPU, each training step recorded once as a CUDA graph and "
                        "replayed, data and losses kept on the GPU, and --batch at least "
                        f"{CUDA_MIN_BATCH} unless given; the eager loop elsewhere. --capture alone = graph "
                        "(an error without CUDA); static: the same step unrecorded; off: the eager loop "
                        "(docs/training.md)")
    p.add_argument("--seed", type=cli.positive_int("--seed", 0, 2**31 - 1), default=0)
    p.add_argument("--resume", default=None,
                   help="continue from this checkpoint: its network, parameterization and schedule are kept "
                        "(--width, --depth, --schedule, --parameterization are then ignored); fresh optimizer")
    p.add_argument("--out", required=True, help="checkpoint to write (.safetensors)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.dataset not in ALL_SETS:
        parser.error(f"unknown dataset {args.dataset!r}; allowed: {', '.join(ALL_SETS)}")
    if args.data_path is not None and args.dataset not in IMAGE_SETS:
        parser.error("--data-path applies to --dataset mnist only")
    batch_given = args.batch is not None
    for key, value in defaults(args.dataset).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    cli.check_writable(args.out, ".safetensors")
    rank, _, world = distributed.env_world()  # under torchrun: this process's place; (0, _, 1) otherwise
    device = pick_device(args.device)
    if (not batch_given and device.type == "cuda" and args.capture in ("auto", "graph") and world == 1
            and args.parameterization != "energy"):
        args.batch = max(CUDA_MIN_BATCH, args.batch)  # captured, a larger batch costs little more per step
    if world > 1:
        distributed.rows_of(args.batch, rank, world)  # fail early when the batch does not split evenly
    main_process = rank == 0
    if args.dataset in IMAGE_SETS:  # held whole, so a captured run can keep it on the GPU
        data, label_names = TensorData(*load_mnist("train", args.data_path)), MNIST_LABELS
    else:
        dist = get_dataset(args.dataset)
        data, label_names = MixtureData(dist), dist.label_names
    config = TrainConfig(steps=args.steps, batch_size=args.batch, lr=args.lr, weighting=args.weighting,
                         ema_decay=args.ema, label_dropout=args.label_dropout, seed=args.seed,
                         t_sampling=args.t_sampling, batch_target=args.batch_target,
                         device=args.device, amp=args.amp, capture=args.capture).validate()
    num_classes = 0 if args.unconditional else len(label_names)
    torch.manual_seed(args.seed)  # the network's initial weights follow --seed too
    if args.resume:
        model, old = load_checkpoint(args.resume, expect={"dataset": args.dataset})
    else:
        model = build_model("images" if args.dataset in IMAGE_SETS else "points", args.parameterization,
                            make_schedule(args.schedule), num_classes, width=args.width, depth=args.depth,
                            base=args.base, dim=2 if args.dataset in IMAGE_SETS else dist.dim)
    bar = cli.ProgressBar(args.steps, f"training {args.dataset}",
                          enabled=False if args.quiet or not main_process else None)

    energy = model.parameterization == "energy" and args.dataset not in IMAGE_SETS
    log_z_history, record_log_z = log_z_recorder(args.steps) if energy else (None, None)

    def progress(info):
        bar(info)
        if info["step"] % 50 == 0:
            bar.bar.set_postfix(loss=f"{info['loss']:.4f}")
        if record_log_z is not None:
            record_log_z(info)

    start = time.perf_counter()
    result = train(model, data, config, callback=progress)
    bar.close()
    if not main_process:  # the other processes hold the same weights: rank 0 saves and reports
        return 0
    save_checkpoint(args.out, result.model, dataset=args.dataset, label_names=list(label_names),
                    train={**config.to_dict(), "device": str(device), "capture": result.capture,
                           "steps_done": result.steps_done,
                           "seconds": round(time.perf_counter() - start, 1), "torch": torch.__version__,
                           "world_size": result.world_size,
                           "resumed_from": args.resume,
                           **({"log_z_history": log_z_history} if log_z_history is not None else {})})
    if result.stopped:
        sys.stderr.write(f"warning: {result.stopped}\n")
    sys.stderr.write(f"saved {args.out} ({result.steps_done} steps, {result.seconds:.1f} s on {device}"
                     f"{f' x {result.world_size} processes' if result.world_size > 1 else ''}, "
                     f"final loss {sum(result.losses[-100:]) / max(1, len(result.losses[-100:])):.4f})\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main, "python -m diffusion.train"))
