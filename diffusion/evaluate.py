"""python -m diffusion.evaluate: measure a checkpoint against the exact ground truth; prints JSON.

    python -m diffusion.evaluate --checkpoint checkpoints/moons.safetensors

Figures (2-D models):
  kl_gap_nats        mean NLL of held-out true points (probability-flow ODE, exact divergence)
                     minus the exact entropy of the data: KL(p_data || p_model) in nats
  ed_ratio           energy distance between model samples and true samples, divided by that between
                     two true samples of the same size (1.0 = as close as a fresh true sample)
  score_rel_error    sqrt(E|s_model - s_true|^2 / E|s_true|^2) on exact p_t samples, per t
  conditional        per guidance weight: share of samples nearest to the requested label, and ed_ratio
"""

from __future__ import annotations

import json
import sys

import torch

from toy_data import get_dataset

from . import cli
from .checkpoints import load_checkpoint
from .likelihood import ode_log_likelihood
from .metrics import energy_distance, energy_distance_floor, relative_score_error
from .samplers import SAMPLERS, guided, prior_sample, sample


def evaluate_2d(model, dist, n: int = 5000, sampler: str = "heun", steps: int = 50, guidances=(0.0, 1.0, 3.0),
                nll_points: int = 2000, nll_steps: int = 48, seed: int = 0, progress=None) -> dict:
    """Every figure of the module docstring for a 2-D model of `dist` (a toy_data GaussianMixture)."""
    progress = progress or (lambda what: None)
    g = torch.Generator().manual_seed(seed)
    schedule = model.schedule
    floor = energy_distance_floor(lambda k: dist.sample(k, generator=g)[0], n)
    refs = [dist.sample(n, generator=g)[0] for _ in range(2)]

    def ratio(x, label=None):
        if label is None:
            return sum(energy_distance(x, r) for r in refs) / len(refs) / floor
        ref = dist.sample(len(x), label=label, generator=g)[0]
        return energy_distance(x, ref) / energy_distance_floor(
            lambda k: dist.sample(k, label=label, generator=g)[0], len(x), pairs=3)

    progress("sampling")
    x = sample(guided(model, None), prior_sample(schedule, (n, dist.dim), generator=g), schedule, sampler, steps,
               generator=g)
    out = {"sampler": sampler, "steps": steps, "n": n, "ed_ratio": round(ratio(x), 3)}
    progress("likelihood")
    held_out = dist.sample(nll_points, generator=torch.Generator().manual_seed(seed + 12345))[0]
    entropy, entropy_se = dist.entropy()
    nll = -ode_log_likelihood(model, held_out, steps=nll_steps).mean().item()
    out.update(nll_nats=round(nll, 4), entropy_nats=round(entropy, 4), entropy_se=round(entropy_se, 4),
               kl_gap_nats=round(nll - entropy, 4))
    progress("score error")
    out["score_rel_error"] = relative_score_error(model, dist, schedule)
    if getattr(model, "num_classes", 0):
        progress("conditional sampling")
        per = max(200, n // dist.num_classes // 2)
        cond = {}
        for w in guidances:
            acc, ratios = [], []
            for c in range(dist.num_classes):
                xc = sample(guided(model, c, w), prior_sample(schedule, (per, dist.dim), generator=g), schedule,
                            sampler, steps, generator=g)
                acc.append((dist.nearest_label(xc) == c).float().mean().item())
                ratios.append(ratio(xc, c))
            cond[f"{w:g}"] = {"accuracy": round(sum(acc) / len(acc), 4),
                              "ed_ratio": round(sum(ratios) / len(ratios), 3)}
        out["conditional"] = cond
    return out


def build_parser():
    p = cli.ArgumentParser(prog="python -m diffusion.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a .safetensors checkpoint written by diffusion.train")
    p.add_argument("--sampler", default="heun", choices=list(SAMPLERS))
    p.add_argument("--steps", type=cli.positive_int("--steps", 1, 2000), default=50)
    p.add_argument("--n", type=cli.positive_int("--n", 100, 20000), default=5000, help="samples to compare")
    p.add_argument("--seed", type=cli.positive_int("--seed", 0, 2**31 - 1), default=0)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    model, config = load_checkpoint(args.checkpoint)
    dataset = config.get("dataset")
    if config["net"]["arch"] != "mlp2d":
        raise ValueError(f"{args.checkpoint} is a {config['net']['arch']} model; this command measures 2-D models")
    result = evaluate_2d(model, get_dataset(dataset), n=args.n, sampler=args.sampler, steps=args.steps,
                         seed=args.seed)
    json.dump({"checkpoint": args.checkpoint, "dataset": dataset, **result}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main, "python -m diffusion.evaluate"))
