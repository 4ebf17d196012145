"""Euler and Heun in t against Euler and Heun in sigma: distance to the converged ODE solution, every schedule.

    python benchmarks/sigma_time.py [--dataset moons] [--n 1000] [--grids uniform_t uniform_logsnr]

The exact denoiser of a toy set drives every run, in float64, from the same starting noise. Each sampler is
measured against its own limit: the 400-step Heun-in-t solution for the samplers in t, and that solution's
x0_hat at t_min for the samplers in sigma (they end at sigma = 0 by taking x0_hat; the two limits are printed,
a few 1e-4 apart). Cells: the mean distance |x - x_ref| over the points at 10 / 20 / 40 steps, and the ratio
error(20) / error(40) (2 for a first-order method, 4 for a second-order one).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from diffusion.models import oracle_model  # noqa: E402
from diffusion.samplers import guided, prior_sample, sample  # noqa: E402
from diffusion.schedules import SCHEDULES, make_schedule  # noqa: E402
from toy_data import get_dataset  # noqa: E402

SAMPLERS = ("euler", "euler_sigma", "heun", "heun_sigma")
STEPS = (10, 20, 40)
REFERENCE_STEPS = 400


def distances(dataset: str, schedule: str, grid: str, n: int, seed: int = 0) -> dict:
    """{sampler: [mean distance at each of STEPS]}, and under "limits" the distance between the two limits."""
    sched = make_schedule(schedule)
    den = guided(oracle_model(get_dataset(dataset), sched), None)
    x = prior_sample(sched, (n, 2), dtype=torch.float64, seed=seed)
    in_t = sample(den, x, sched, "heun", REFERENCE_STEPS, grid)
    t_min = torch.tensor(sched.t_range[0], dtype=torch.float64)
    in_sigma = den(sched.alpha_sigma(t_min)[0] * in_t, t_min)

    def dist(a, b):
        return (a - b).norm(dim=-1).mean().item()

    out = {"limits": dist(in_t, in_sigma)}
    for name in SAMPLERS:
        ref = in_sigma if name.endswith("_sigma") else in_t
        out[name] = [dist(sample(den, x, sched, name, steps, grid), ref) for steps in STEPS]
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="moons")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--grids", nargs="+", default=["uniform_t", "uniform_logsnr"])
    p.add_argument("--schedules", nargs="+", default=list(SCHEDULES))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for grid in args.grids:
        print(f"\n{args.dataset}, {args.n} points, grid {grid}: mean distance at {' / '.join(map(str, STEPS))} "
              f"steps (error ratio 20 -> 40 steps)")
        print("| schedule | " + " | ".join(SAMPLERS) + " | limits apart |")
        print("|---|" + "---|" * (len(SAMPLERS) + 1))
        for schedule in args.schedules:
            d = distances(args.dataset, schedule, grid, args.n)
            cells = [" / ".join(f"{e:.3g}" for e in d[name]) + f" ({d[name][1] / d[name][2]:.1f})" for name in SAMPLERS]
            print(f"| {schedule} | " + " | ".join(cells) + f" | {d['limits']:.1e} |", flush=True)


if __name__ == "__main__":
    main()
