"""Every sampler's quality at 5, 10, 20, 50 and 200 function evaluations, on the shipped 2-D models.

    python benchmarks/samplers_2d.py [--datasets moons spiral] [--oracle]

Quality is the energy-distance ratio (model samples vs true samples, divided by true vs true; 1.0 is
as good as it gets). With --oracle the exact denoiser replaces the network, isolating sampler error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from diffusion.checkpoints import load_checkpoint  # noqa: E402
from diffusion.metrics import energy_distance, energy_distance_floor  # noqa: E402
from diffusion.models import oracle_model  # noqa: E402
from diffusion.samplers import SAMPLERS, guided, prior_sample, sample, steps_for_nfe  # noqa: E402
from toy_data import get_dataset  # noqa: E402

CHECKPOINTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "checkpoints")
NFES = (5, 10, 20, 50, 200)
GRID = {"dpmpp_2m": "uniform_logsnr"}  # each sampler on the grid it is meant for; the rest uniform in t


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="*", default=["moons", "spiral", "checkerboard"])
    p.add_argument("--oracle", action="store_true")
    p.add_argument("--n", type=int, default=4000)
    args = p.parse_args()
    for name in args.datasets:
        dist = get_dataset(name)
        model, _ = load_checkpoint(os.path.join(CHECKPOINTS, f"{name}.safetensors"))
        if args.oracle:
            model = oracle_model(dist, model.schedule)
        g = torch.Generator().manual_seed(0)
        floor = energy_distance_floor(lambda k: dist.sample(k, generator=g)[0], args.n)
        refs = [dist.sample(args.n, generator=g)[0] for _ in range(2)]
        x_start = prior_sample(model.schedule, (args.n, 2), generator=g)
        print(f"\n{name} ({'oracle' if args.oracle else 'shipped model'}), ED ratio by NFE")
        print("| sampler | " + " | ".join(f"{n} NFE" for n in NFES) + " | s at 50 NFE |")
        print("|---|" + "---|" * (len(NFES) + 1))
        for sampler in SAMPLERS:
            cells, secs = [], 0.0
            for nfe in NFES:
                steps = steps_for_nfe(sampler, nfe)
                start = time.perf_counter()
                x = sample(guided(model, None), x_start, model.schedule, sampler, steps, GRID.get(sampler, "uniform_t"),
                           generator=torch.Generator().manual_seed(1))
                if nfe == 50:
                    secs = time.perf_counter() - start
                ok = torch.isfinite(x).all()
                cells.append(f"{sum(energy_distance(x, r) for r in refs) / len(refs) / floor:.2f}" if ok else "nan")
            print(f"| {sampler} | " + " | ".join(cells) + f" | {secs:.2f} |", flush=True)


if __name__ == "__main__":
    main()
