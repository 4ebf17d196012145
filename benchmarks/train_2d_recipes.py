"""Which 2-D training recipe learns fastest: KL gap after a fixed number of steps, for several recipes.

    python benchmarks/train_2d_recipes.py --datasets circles spiral --recipes base b512 b512_lr1e-2

A recipe is a set of overrides of the CLI's 2-D defaults (RECIPES below). Each run trains one set from scratch
on one torch thread and reports its training seconds, seconds per step, and the paired KL gap of the EMA model
on the evaluator's 2,000 held-out points (`diffusion.evaluate.kl_gaps`, 128 Heun steps: the same estimator as
`evaluate_2d`'s kl_gap_nats, without the energy distance, which costs ten times more). The shortlist this finds
is then confirmed with the whole evaluator by benchmarks/train_2d_speed.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

BASE = dict(steps=4000, batch=1024, lr=3e-3, ema=0.995, width=128, depth=4, t_sampling="uniform_t",
            weighting="v", parameterization="v", schedule="cosine")
RECIPES = {
    "base": {},
    "base_1100": dict(steps=1100),
    "b512": dict(steps=2400, batch=512),
    "b256": dict(steps=3700, batch=256),
    "w64_b512": dict(steps=5000, batch=512, width=64),
    "b512_lr1e-2": dict(steps=2400, batch=512, lr=1e-2),
    "b512_logsnr": dict(steps=2400, batch=512, t_sampling="uniform_logsnr"),
    "b512_eps_logsnr": dict(steps=2400, batch=512, t_sampling="uniform_logsnr", weighting="eps"),
    "base_1100_n3": dict(steps=1100, t_sampling="logsnr_normal", logsnr=(3.0, 2.5)),
    "b512_n3": dict(steps=2400, batch=512, t_sampling="logsnr_normal", logsnr=(3.0, 2.5)),
    "b512_n4": dict(steps=2400, batch=512, t_sampling="logsnr_normal", logsnr=(4.0, 2.0)),
    "b512_n2": dict(steps=2400, batch=512, t_sampling="logsnr_normal", logsnr=(2.0, 3.0)),
    "b512_n3_lr6e-3": dict(steps=2400, batch=512, lr=6e-3, t_sampling="logsnr_normal", logsnr=(3.0, 2.5)),
    "b512_n3_lr1e-2": dict(steps=2400, batch=512, lr=1e-2, t_sampling="logsnr_normal", logsnr=(3.0, 2.5)),
    "b512_n3_ema99": dict(steps=2400, batch=512, ema=0.99, t_sampling="logsnr_normal", logsnr=(3.0, 2.5)),
    "b512_n3_lr1e-2_stf": dict(steps=2400, batch=512, lr=1e-2, t_sampling="logsnr_normal", logsnr=(3.0, 2.5),
                               batch_target=True),
    "b1024_n3_lr1e-2_stf": dict(steps=1100, lr=1e-2, t_sampling="logsnr_normal", logsnr=(3.0, 2.5),
                                batch_target=True),
    "b512_lr1e-2_stf": dict(steps=2400, batch=512, lr=1e-2, batch_target=True),
    "b512_n3_lr1e-2_stf_2000": dict(steps=2000, batch=512, lr=1e-2, t_sampling="logsnr_normal", logsnr=(3.0, 2.5),
                                    batch_target=True),
    "b256_n3_lr1e-2_stf": dict(steps=3700, batch=256, lr=1e-2, t_sampling="logsnr_normal", logsnr=(3.0, 2.5),
                               batch_target=True),
    "b512_n3_lr1e-2_stf_d3_3000": dict(steps=3000, batch=512, lr=1e-2, depth=3, t_sampling="logsnr_normal",
                                       logsnr=(3.0, 2.5), batch_target=True),
    "b512_n25_lr1e-2_stf_2000": dict(steps=2000, batch=512, lr=1e-2, t_sampling="logsnr_normal", logsnr=(2.5, 2.5),
                                     batch_target=True),
    "b512_n3_lr1e-2_stf_d3": dict(steps=2400, batch=512, lr=1e-2, depth=3, t_sampling="logsnr_normal",
                                  logsnr=(3.0, 2.5), batch_target=True),
    "d3_2000_n25": dict(steps=2000, batch=512, lr=1e-2, depth=3, t_sampling="logsnr_normal", logsnr=(2.5, 2.5),
                        batch_target=True),
    "w96_2400": dict(steps=2400, batch=512, lr=1e-2, width=96, t_sampling="logsnr_normal", logsnr=(3.0, 2.5),
                     batch_target=True),
    "b256_n3": dict(steps=3700, batch=256, t_sampling="logsnr_normal", logsnr=(3.0, 2.5)),
}


def run(dataset: str, name: str, overrides: dict, seed: int = 0) -> dict:
    import torch

    from diffusion.evaluate import held_out, kl_gaps
    from diffusion.models import build_model
    from diffusion.schedules import make_schedule
    from diffusion import schedules
    from diffusion.training import TrainConfig, train
    from toy_data import get_dataset

    torch.set_num_threads(1)
    r = {**BASE, **overrides}
    schedules.LOGSNR_NORMAL = r.get("logsnr", schedules.LOGSNR_NORMAL)
    dist = get_dataset(dataset)
    torch.manual_seed(seed)
    model = build_model("points", r["parameterization"], make_schedule(r["schedule"]), dist.num_classes,
                        width=r["width"], depth=r["depth"], dim=dist.dim)
    config = TrainConfig(steps=r["steps"], batch_size=r["batch"], lr=r["lr"], weighting=r["weighting"],
                         ema_decay=r["ema"], seed=seed, device="cpu", t_sampling=r["t_sampling"],
                         batch_target=r.get("batch_target", False)).validate()
    result = train(model, lambda n, g: dist.sample(n, generator=g), config)
    gap = kl_gaps(result.model, dist, held_out(dist, 2000, 0), 128)
    return {"dataset": dataset, "recipe": name, "steps": r["steps"], "train_s": result.seconds,
            "ms_per_step": 1000 * result.seconds / r["steps"], "kl": gap.mean().item(),
            "kl_se": gap.std().item() / len(gap) ** 0.5}


def main():
    from toy_data import DATASETS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print("| set | recipe | steps | training s | ms/step | KL gap (se) |\n|---|---|---|---|---|---|", flush=True)
    for name in args.recipes:
        for ds in args.datasets:
            row = run(ds, name, RECIPES[name], args.seed)
            print(f"| {ds} | {name} | {row['steps']} | {row['train_s']:.1f} | {row['ms_per_step']:.1f} | "
                  f"{row['kl']:.4f} ({row['kl_se']:.4f}) |", flush=True)


if __name__ == "__main__":
    main()
