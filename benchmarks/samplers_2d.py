"""Every sampler's quality at 5, 10, 20, 50 and 200 function evaluations, on the shipped 2-D models.

    python benchmarks/samplers_2d.py [--datasets moons spiral] [--oracle]

Quality is the energy-distance ratio at sample size --n (model samples vs true samples, divided by true
vs true; 1.0 is as good as it gets), estimated from --pool x n points of each so that one draw's luck
does not decide a cell (diffusion.metrics.energy_distance_ratio). With --oracle the exact denoiser
replaces the network, isolating sampler error. DPM-Solver++ runs on two grids: the one this project
uses for it (visible_logsnr) and plain uniform log-SNR.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from diffusion.checkpoints import load_checkpoint  # noqa: E402
from diffusion.metrics import energy_distance_ratio  # noqa: E402
from diffusion.models import oracle_model  # noqa: E402
from diffusion.samplers import SAMPLERS, guided, prior_sample, sample, steps_for_nfe  # noqa: E402
from toy_data import get_dataset  # noqa: E402

CHECKPOINTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "checkpoints")
NFES = (5, 10, 20, 50, 200)
RUNS = [(name, "uniform_t") for name in SAMPLERS if name != "dpmpp_2m"] + [("dpmpp_2m", "visible_logsnr"),
                                                                        ("dpmpp_2m", "uniform_logsnr")]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="*", default=["moons", "spiral", "checkerboard"])
    p.add_argument("--oracle", action="store_true")
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--pool", type=int, default=4)
    args = p.parse_args()
    for name in args.datasets:
        dist = get_dataset(name)
        model, _ = load_checkpoint(os.path.join(CHECKPOINTS, f"{name}.safetensors"))
        if args.oracle:
            model = oracle_model(dist, model.schedule)
        g = torch.Generator().manual_seed(0)
        truth = dist.sample(args.pool * args.n, generator=g)[0]
        x_start = prior_sample(model.schedule, (args.pool * args.n, 2), generator=g)
        print(f"\n{name} ({'oracle' if args.oracle else 'shipped model'}), ED ratio by NFE")
        print("| sampler | grid | " + " | ".join(f"{n} NFE" for n in NFES) + f" | s at 50 NFE ({args.n} points) |")
        print("|---|---|" + "---|" * (len(NFES) + 1))
        for sampler, grid in RUNS:
            cells, secs = [], 0.0
            for nfe in NFES:
                steps = steps_for_nfe(sampler, nfe)
                if nfe == 50:  # the timing: one batch of n points
                    start = time.perf_counter()
                    sample(guided(model, None), x_start[:args.n], model.schedule, sampler, steps, grid,
                           generator=torch.Generator().manual_seed(1))
                    secs = time.perf_counter() - start
                x = sample(guided(model, None), x_start, model.schedule, sampler, steps, grid,
                           generator=torch.Generator().manual_seed(1))
                ok = torch.isfinite(x).all()
                cells.append(f"{energy_distance_ratio(x, truth, args.n):.2f}" if ok else "nan")
            print(f"| {sampler} | {grid} | " + " | ".join(cells) + f" | {secs:.2f} |", flush=True)


if __name__ == "__main__":
    main()
