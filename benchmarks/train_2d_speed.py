"""How long 2-D training takes to reach the quality targets: KL gap <= 0.05 nats and energy-distance ratio <= 1.5.

    python benchmarks/train_2d_speed.py                          # every toy set, the CLI's 2-D defaults
    python benchmarks/train_2d_speed.py --datasets moons circles --eval-every 500
    python benchmarks/train_2d_speed.py --steps 2000 --batch 512 --lr 5e-3 --width 256 --depth 3

Each set is trained with `diffusion.training.train` (the recipe of `python -m diffusion.train`, any part of it
overridden by a flag). Every `--eval-every` steps, and at the end, the EMA model is measured with the evaluator's
own estimators (`diffusion.evaluate.evaluate_2d`: Heun 50, the pooled energy-distance ratio and the paired KL
gap on held-out points). The training clock stops while a model is measured, so "s to target" is training time
only: the first measurement at which both targets hold. One torch thread per set; `--jobs 2` trains two sets
at once, one per core.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

KL_TARGET, ED_TARGET = 0.05, 1.5


def run(dataset: str, args) -> dict:
    import torch

    from diffusion.evaluate import evaluate_2d
    from diffusion.models import build_model
    from diffusion.schedules import make_schedule
    from diffusion.train import DEFAULTS_2D
    from diffusion.training import TrainConfig, train
    from toy_data import get_dataset

    torch.set_num_threads(1)
    recipe = {**DEFAULTS_2D, **{k: v for k, v in vars(args).items() if k in DEFAULTS_2D and v is not None}}
    dist = get_dataset(dataset)
    torch.manual_seed(args.seed)
    model = build_model("points", recipe["parameterization"], make_schedule(recipe["schedule"]), dist.num_classes,
                        width=recipe["width"], depth=recipe["depth"], dim=dist.dim)
    config = TrainConfig(steps=recipe["steps"], batch_size=recipe["batch"], lr=recipe["lr"],
                         weighting=recipe["weighting"], ema_decay=recipe["ema"], seed=args.seed, device="cpu",
                         t_sampling=recipe["t_sampling"], batch_target=recipe["batch_target"]).validate()
    rows, paused = [], [0.0]
    start = time.perf_counter()

    def measure(step, snapshot):
        t0 = time.perf_counter()
        m = evaluate_2d(snapshot, dist, guidances=(), seed=1)
        rows.append({"step": step, "train_s": round(t0 - start - paused[0], 1), "kl": m["kl_gap_nats"],
                     "kl_se": m["kl_gap_se"], "ed": m["ed_ratio"]})
        paused[0] += time.perf_counter() - t0

    def callback(info):
        if info["step"] % args.eval_every == 0 and info["step"] < recipe["steps"]:
            measure(info["step"], info["snapshot"]())

    result = train(model, lambda n, g: dist.sample(n, generator=g), config, callback=callback)
    measure(result.steps_done, result.model)
    hit = next((r for r in rows if r["kl"] <= KL_TARGET and r["ed"] <= ED_TARGET), None)
    return {"dataset": dataset, "rows": rows, "hit": hit, "recipe": recipe}


def main():
    from diffusion.schedules import T_SAMPLING
    from toy_data import DATASETS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--steps", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--ema", type=float)
    p.add_argument("--width", type=int)
    p.add_argument("--depth", type=int)
    p.add_argument("--t-sampling", default=None, choices=T_SAMPLING)
    p.add_argument("--batch-target", default=None, action=argparse.BooleanOptionalAction)
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="sets trained at once, one torch thread each")
    args = p.parse_args()
    import torch

    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
          f"{args.jobs} set(s) at a time, one thread each", flush=True)
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(run, args.datasets, [args] * len(args.datasets)))
    print(f"\nrecipe: {results[0]['recipe']}\n")
    print("| set | s to target (step) | at the end: steps, training s, KL gap (se), ED ratio | every measurement "
          "(step: KL, ED) |\n|---|---|---|---|")
    for r in results:
        last, hit = r["rows"][-1], r["hit"]
        reached = "not reached" if hit is None else f"{hit['train_s']} ({hit['step']})"
        print(f"| {r['dataset']} | {reached} | "
              f"{last['step']}, {last['train_s']}, {last['kl']} ({last['kl_se']}), {last['ed']} | "
              + "; ".join(f"{x['step']}: {x['kl']}, {x['ed']}" for x in r["rows"]) + " |", flush=True)


if __name__ == "__main__":
    main()
