"""Every sampler at 10, 20 and 50 function evaluations on the shipped MNIST model: a markdown table.

    python benchmarks/samplers_mnist.py [--n 1000] [--samplers heun dpmpp_2m ddim euler] [--nfe 10 20 50]
                                        [--guidance 0 1 3 5] [--interval LO HI] [--device auto] [--threads N]
                                        [--json results.json]

For each sampler, NFE and guidance weight w: the share of class-conditional samples that the separate
classifier (checkpoints/mnist_classifier.safetensors) reads as the requested digit, and the Frechet
distance to the test set in that classifier's feature space, beside the floor (real training digits of
the same number against the test set). The figures are diffusion.evaluate.evaluate_mnist's, the same as
`python -m diffusion.evaluate --checkpoint checkpoints/mnist.safetensors --samplers ... --nfe ...`.

Cost: the full default table is 4 samplers x 80 NFE x (1 + 2 + 2 + 2) network calls on --n images:
about 4-5 ms per image per call on one CPU core, so ~3 hours on one core for n = 1000 (more threads help
on an idle machine; on a busy one --threads 1 is fastest), and minutes on a GPU (--device cuda).
"""

from __future__ import annotations

import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from diffusion import cli  # noqa: E402
from diffusion.classifier import load_classifier  # noqa: E402
from diffusion.evaluate import (MNIST_GUIDANCES, MNIST_NFES, MNIST_SAMPLERS, TARGET, evaluate_mnist,  # noqa: E402
                                kind_of, load_diffusion)
from diffusion.samplers import SAMPLERS  # noqa: E402
from diffusion.training import pick_device  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def markdown(result: dict, guidances) -> str:
    """The table: one row per (sampler, NFE); per w the accuracy and the FD (x floor)."""
    rows = result["results"]
    lines = [f"MNIST, {result['n']} samples per setting ({result['per_digit']} of each digit); FD floor "
             f"(real training digits vs test) = {result['fd_floor']:.3f}; classifier accuracy on those real "
             f"digits = {result['real_accuracy']:.4f}. Cells: accuracy / FD (FD / floor); bold: meets the "
             f"target.", "",
             "| sampler | NFE | " + " | ".join(f"w={w:g}" for w in guidances) + " |",
             "|---|---|" + "---|" * len(guidances)]
    keys = []
    for r in rows:
        if (r["sampler"], r["nfe"]) not in keys:
            keys.append((r["sampler"], r["nfe"]))
    for sampler, nfe in keys:
        cells = []
        for w in guidances:
            r = next(r for r in rows if r["sampler"] == sampler and r["nfe"] == nfe and r["guidance"] == w)
            cell = f"{r['accuracy'] * 100:.1f}% / {r['fd']:.2f} ({r['fd_ratio']:.1f}x)"
            cells.append(f"**{cell}**" if r.get("target_met") else cell)
        lines.append(f"| {sampler} | {nfe} | " + " | ".join(cells) + " |")
    target = [r for r in rows if "target_met" in r]
    if target:
        met = [f"{r['sampler']} w={r['guidance']:g}" for r in target if r["target_met"]]
        lines += ["", f"Target at {TARGET['nfe']} NFE, {TARGET['guidance'][0]:g} <= w <= {TARGET['guidance'][1]:g}: "
                      f"accuracy >= {TARGET['accuracy'] * 100:g}% and FD <= {TARGET['fd_ratio']:g}x floor. "
                      f"Met by {len(met)} of {len(target)} settings" + (f": {', '.join(met)}." if met else ".")]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = cli.ArgumentParser(prog="benchmarks/samplers_mnist.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=os.path.join(ROOT, "checkpoints", "mnist.safetensors"))
    p.add_argument("--classifier", default=None)
    p.add_argument("--n", type=cli.positive_int("--n", 20, 20000), default=1000)
    p.add_argument("--samplers", nargs="+", choices=list(SAMPLERS), default=list(MNIST_SAMPLERS))
    p.add_argument("--nfe", nargs="+", type=cli.positive_int("--nfe", 1, 1000), default=list(MNIST_NFES))
    p.add_argument("--guidance", nargs="+", type=cli.bounded_float("--guidance", 0, 20), default=list(MNIST_GUIDANCES))
    p.add_argument("--interval", nargs=2, type=cli.bounded_float("--interval", -30, 30), default=None,
                   metavar=("LO", "HI"), help="guide only where the log-SNR is in [LO, HI] (default: everywhere)")
    p.add_argument("--batch", type=cli.positive_int("--batch", 1, 100000), default=500)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=cli.positive_int("--seed", 0, 2**31 - 1), default=0)
    p.add_argument("--threads", type=cli.positive_int("--threads", 1, 1024), default=None,
                   help="CPU threads for torch (default: torch's own; on a busy machine 1 can be much faster)")
    p.add_argument("--json", default=None, help="also write the raw results here")
    args = p.parse_args(argv)
    if args.interval is not None and args.interval[0] > args.interval[1]:
        p.error(f"--interval LO HI needs LO <= HI; got {args.interval[0]:g} {args.interval[1]:g}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.json:
        cli.check_writable(args.json, ".json", "--json")
    device = pick_device(args.device)
    model, config = load_diffusion(args.checkpoint)
    if kind_of(config, args.checkpoint) != "mnist":
        raise ValueError(f"{args.checkpoint} is not an MNIST model")
    classifier, _ = load_classifier(args.classifier)
    start = time.perf_counter()

    def say(row):
        sys.stderr.write(f"{row['sampler']} {row['nfe']} NFE w={row['guidance']:g}: {row['accuracy']:.4f}, "
                         f"fd {row['fd']:.3f} ({row['fd_ratio']:.2f}x), {row['seconds']:.1f} s\n")

    result = evaluate_mnist(model, classifier, n=args.n, samplers=args.samplers, nfes=args.nfe,
                            guidances=args.guidance, seed=args.seed, batch=args.batch, device=device, progress=say,
                            interval=args.interval)
    steps_done = config.get("train", {}).get("steps_done")
    where = ("over the whole journey" if args.interval is None
             else f"only where the log-SNR is in [{args.interval[0]:g}, {args.interval[1]:g}]")
    print(f"Checkpoint {os.path.relpath(args.checkpoint, ROOT)} ({steps_done} training steps), on {device}, "
          f"{time.perf_counter() - start:.0f} s; guidance {where}.\n")
    print(markdown(result, args.guidance), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"checkpoint": args.checkpoint, "steps_done": steps_done, "device": str(device),
                       "interval": args.interval,
                       "torch": torch.__version__, **result}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main, "benchmarks/samplers_mnist.py"))
