"""python -m diffusion.sample: draw samples through the reverse process and write them to .npy.

The model is a trained checkpoint (--checkpoint) or the exact ground truth of a toy distribution
(--oracle), whose samples show the sampler alone, with no learned error. Examples:

    python -m diffusion.sample --oracle --dataset moons --sampler heun --steps 50 --out moons.npy
    python -m diffusion.sample --checkpoint checkpoints/moons.safetensors --label 1 --guidance 2 --out m.npy
    python -m diffusion.sample --checkpoint checkpoints/mnist.safetensors --label 3 --guidance 1 \
        --interval -1.5 4 --sampler dpmpp_2m --steps 20 --grid uniform_logsnr --n 16 --out threes.npy
"""

from __future__ import annotations

import io

import numpy as np
import torch

from toy_data import DATASETS, get_dataset

from . import cli
from .checkpoints import atomic_write, load_checkpoint
from .models import oracle_model
from .grids import GRIDS
from .samplers import SAMPLERS, guided, prior_sample, sample
from .schedules import SCHEDULES, make_schedule


def build_parser():
    p = cli.ArgumentParser(prog="python -m diffusion.sample", description=__doc__.split("\n\n")[0])
    src = p.add_argument_group("model")
    src.add_argument("--checkpoint", default=None, help="a .safetensors checkpoint written by diffusion.train")
    src.add_argument("--oracle", action="store_true", help="use the exact denoiser of --dataset as the model")
    src.add_argument("--dataset", default="moons", help=f"toy distribution for --oracle: {', '.join(DATASETS)}")
    src.add_argument("--schedule", default="cosine",
                     help=f"noise schedule for --oracle, optionally with parameters, e.g. 'cosine:s=0.008' "
                          f"({', '.join(SCHEDULES)}); a checkpoint uses its own")
    s = p.add_argument_group("sampling")
    s.add_argument("--sampler", default="heun", choices=list(SAMPLERS),
                   help="euler and heun step in the schedule's own t; euler_sigma and heun_sigma in "
                        "sigma/alpha, as EDM and k-diffusion do, and end at sigma = 0")
    s.add_argument("--steps", type=cli.positive_int("--steps", 1, 2000), default=50)
    s.add_argument("--grid", default="uniform_t", choices=list(GRIDS), help="time grid")
    s.add_argument("--eta", type=cli.bounded_float("--eta", 0, 1), default=0.0, help="DDIM noise (0..1)")
    s.add_argument("--label", type=cli.positive_int("--label", 0, 1000), default=None,
                   help="class label to condition on (default: unconditional)")
    s.add_argument("--guidance", type=cli.bounded_float("--guidance", -1, 20), default=0.0,
                   help="classifier-free guidance weight w (0 = plain conditional)")
    cli.add_interval(s)
    s.add_argument("--n", type=cli.positive_int("--n", 1, 1_000_000), default=2000, help="number of samples")
    s.add_argument("--seed", type=cli.positive_int("--seed", 0, 2**31 - 1), default=0)
    o = p.add_argument_group("output")
    o.add_argument("--out", required=True, help="output .npy file: the samples, shape [n, 2]")
    o.add_argument("--trajectory", action="store_true",
                   help="also write OUT_traj.npy (x_t at every step, [steps+1, n, 2]) and OUT_x0.npy "
                        "(the predicted x0 at every step, [steps, n, 2])")
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _save(path: str, array: np.ndarray) -> None:
    """Atomic .npy write (see checkpoints.atomic_write)."""
    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write(path, buf.getvalue())


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.oracle == (args.checkpoint is not None):
        raise ValueError("choose one model: --checkpoint PATH, or --oracle for the exact denoiser of --dataset")
    cli.check_writable(args.out, ".npy")
    if args.guidance != 0 and args.label is None:
        raise ValueError("--guidance needs a --label to guide towards")
    if args.interval is not None and args.guidance == 0:
        raise ValueError("--interval limits guidance: it needs a --guidance weight other than 0")
    if args.eta != 0 and args.sampler != "ddim":
        raise ValueError(f"--eta applies to the ddim sampler only (got --sampler {args.sampler})")
    if args.oracle:
        dist = get_dataset(args.dataset)
        schedule = make_schedule(args.schedule)
        model, shape, num_classes = oracle_model(dist, schedule), (dist.dim,), dist.num_classes
    else:
        model, config = load_checkpoint(args.checkpoint)
        schedule, num_classes = model.schedule, model.num_classes
        shape = (config["net"]["dim"],) if config["net"]["arch"] == "mlp2d" else (1, 28, 28)
    if args.label is not None and not args.label < num_classes:
        raise ValueError(f"label must be in 0..{num_classes - 1}; got {args.label}" if num_classes
                         else "this model is unconditional: it takes no --label")
    denoise = guided(model, args.label, args.guidance, args.interval)
    g = torch.Generator().manual_seed(args.seed)
    x = prior_sample(schedule, (args.n, *shape), generator=g)
    bar = cli.ProgressBar(args.steps, "sampling", enabled=False if args.quiet else None)
    result = sample(denoise, x, schedule, args.sampler, args.steps, args.grid, eta=args.eta, generator=g,
                    callback=bar, return_trajectory=args.trajectory)
    bar.close()
    stem = args.out[:-4]
    if args.trajectory:
        _save(stem + "_traj.npy", result.xs.numpy())
        _save(stem + "_x0.npy", result.x0_hats.numpy())
        result = result.xs[-1]
    _save(args.out, result.numpy())
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main, "python -m diffusion.sample"))
