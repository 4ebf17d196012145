"""python -m diffusion.train: train a diffusion model and save it as a checkpoint.

Example (a class-conditional moons model, about a minute on two CPU cores):

    python -m diffusion.train --dataset moons --out checkpoints/moons.safetensors
"""

from __future__ import annotations

import sys
import time

import torch

from toy_data import DATASETS, get_dataset

from . import cli
from .checkpoints import load_checkpoint, save_checkpoint
from .models import DiffusionModel
from .nets import MLP2D, MLPConfig
from .parameterizations import PARAMETERIZATIONS, WEIGHTINGS
from .schedules import SCHEDULES, make_schedule
from .training import TrainConfig, pick_device, train

DEFAULTS_2D = dict(schedule="cosine", parameterization="v", weighting="v", steps=4000, batch=1024, lr=3e-3)  # the shipped recipe


def build_parser():
    p = cli.ArgumentParser(prog="python -m diffusion.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="moons", help=f"what to learn: {', '.join(DATASETS)}")
    p.add_argument("--schedule", default=DEFAULTS_2D["schedule"],
                   help=f"noise schedule with optional parameters, e.g. 'sigmoid:start=-3,end=3,tau=1' ({', '.join(SCHEDULES)})")
    p.add_argument("--parameterization", default=DEFAULTS_2D["parameterization"], choices=PARAMETERIZATIONS)
    p.add_argument("--weighting", default=DEFAULTS_2D["weighting"], choices=list(WEIGHTINGS),
                   help="loss weighting w(lambda) on the eps-space error")
    p.add_argument("--steps", type=cli.positive_int("--steps", 1, 1_000_000), default=DEFAULTS_2D["steps"])
    p.add_argument("--batch", type=cli.positive_int("--batch", 1, 65536), default=DEFAULTS_2D["batch"])
    p.add_argument("--lr", type=cli.bounded_float("--lr", 1e-6, 1.0), default=DEFAULTS_2D["lr"])
    p.add_argument("--width", type=cli.positive_int("--width", 8, 2048), default=128, help="MLP width")
    p.add_argument("--depth", type=cli.positive_int("--depth", 1, 32), default=4, help="residual blocks")
    p.add_argument("--label-dropout", type=cli.bounded_float("--label-dropout", 0, 1), default=0.15,
                   help="share of labels dropped, so the model also learns p(x) for guidance")
    p.add_argument("--unconditional", action="store_true", help="ignore labels")
    p.add_argument("--ema", type=cli.bounded_float("--ema", 0, 0.99999), default=0.995, help="EMA decay")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    p.add_argument("--seed", type=cli.positive_int("--seed", 0, 2**31 - 1), default=0)
    p.add_argument("--resume", default=None,
                   help="continue from this checkpoint: its network, parameterization and schedule are kept "
                        "(--width, --depth, --schedule, --parameterization are then ignored); fresh optimizer")
    p.add_argument("--out", required=True, help="checkpoint to write (.safetensors)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    cli.check_writable(args.out, ".safetensors")
    dist = get_dataset(args.dataset)
    config = TrainConfig(steps=args.steps, batch_size=args.batch, lr=args.lr, weighting=args.weighting,
                         ema_decay=args.ema, label_dropout=args.label_dropout, seed=args.seed,
                         device=args.device).validate()
    device = pick_device(args.device)
    num_classes = 0 if args.unconditional else dist.num_classes
    torch.manual_seed(args.seed)  # the network's initial weights follow --seed too
    if args.resume:
        model, old = load_checkpoint(args.resume, expect={"dataset": args.dataset})
    else:
        net = MLP2D(MLPConfig(dim=dist.dim, width=args.width, depth=args.depth, num_classes=num_classes,
                              scalar_out=args.parameterization == "energy"))
        model = DiffusionModel(net, args.parameterization, make_schedule(args.schedule), num_classes)
    bar = cli.ProgressBar(args.steps, f"training {args.dataset}", enabled=False if args.quiet else None)

    def progress(info):
        bar(info)
        if info["step"] % 50 == 0:
            bar.bar.set_postfix(loss=f"{info['loss']:.4f}")

    start = time.perf_counter()
    result = train(model, lambda n, g: dist.sample(n, generator=g), config, callback=progress)
    bar.close()
    save_checkpoint(args.out, result.model, dataset=args.dataset, label_names=list(dist.label_names),
                    train={**config.to_dict(), "device": str(device), "steps_done": result.steps_done,
                           "seconds": round(time.perf_counter() - start, 1), "torch": torch.__version__,
                           "resumed_from": args.resume})
    if result.stopped:
        sys.stderr.write(f"warning: {result.stopped}\n")
    sys.stderr.write(f"saved {args.out} ({result.steps_done} steps, {result.seconds:.1f} s on {device}, "
                     f"final loss {sum(result.losses[-100:]) / max(1, len(result.losses[-100:])):.4f})\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main, "python -m diffusion.train"))
