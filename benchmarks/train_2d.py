"""Train every toy distribution from scratch, time it, and measure it against the exact truth.

    python benchmarks/train_2d.py                       # print the figures
    python benchmarks/train_2d.py --save checkpoints    # also write the shipped checkpoints
    python benchmarks/train_2d.py --remeasure checkpoints  # measure the shipped ones again, store the figures

Prints one JSON line per dataset and a markdown table at the end (the README's table).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from diffusion.checkpoints import load_checkpoint, rewrite_metrics, save_checkpoint  # noqa: E402
from diffusion.evaluate import evaluate_2d  # noqa: E402
from diffusion.models import DiffusionModel  # noqa: E402
from diffusion.nets import MLP2D, MLPConfig  # noqa: E402
from diffusion.schedules import make_schedule  # noqa: E402
from diffusion.train import DEFAULTS_2D  # noqa: E402
from diffusion.training import TrainConfig, pick_device, train  # noqa: E402
from toy_data import DATASETS, get_dataset  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="*", default=list(DATASETS))
    p.add_argument("--steps", type=int, default=DEFAULTS_2D["steps"])
    p.add_argument("--batch", type=int, default=DEFAULTS_2D["batch"])
    p.add_argument("--save", default=None, help="folder to write <dataset>.safetensors into")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--remeasure", default=None, help="folder of checkpoints to evaluate again (no training); "
                                                      "their stored figures are replaced, their weights kept")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.remeasure:
        for name in args.datasets:
            path = os.path.join(args.remeasure, f"{name}.safetensors")
            metrics = evaluate_2d(load_checkpoint(path)[0], get_dataset(name), reference=True)
            rewrite_metrics(path, metrics)
            print(json.dumps({"dataset": name, **metrics}), flush=True)
        return
    machine = f"{platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}"
    rows = []
    for name in args.datasets:
        dist = get_dataset(name)
        torch.manual_seed(0)
        net = MLP2D(MLPConfig(num_classes=dist.num_classes))
        model = DiffusionModel(net, DEFAULTS_2D["parameterization"], make_schedule(DEFAULTS_2D["schedule"]),
                               dist.num_classes)
        config = TrainConfig(steps=args.steps, batch_size=args.batch, lr=DEFAULTS_2D["lr"],
                             weighting=DEFAULTS_2D["weighting"], device="cpu")
        start = time.perf_counter()
        result = train(model, lambda n, g: dist.sample(n, generator=g), config)
        seconds = time.perf_counter() - start
        t_eval = time.perf_counter()
        metrics = evaluate_2d(result.model, dist)
        row = {"dataset": name, "train_seconds": round(seconds, 1), "eval_seconds": round(time.perf_counter() - t_eval, 1),
               **metrics}
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.save:
            save_checkpoint(os.path.join(args.save, f"{name}.safetensors"), result.model, dataset=name,
                            label_names=list(dist.label_names),
                            train={**config.to_dict(), "device": str(pick_device("cpu")), "steps_done": result.steps_done,
                                   "seconds": round(seconds, 1), "torch": torch.__version__, "machine": machine},
                            metrics=metrics)
    print(f"\nMachine: {machine}\n")
    print("| dataset | train s | KL gap (nats) | ED ratio (Heun 50) | cond. accuracy w=0 / 1 / 3 |")
    print("|---|---|---|---|---|")
    for r in rows:
        acc = " / ".join(f"{r['conditional'][w]['accuracy']:.3f}" for w in ("0", "1", "3"))
        print(f"| {r['dataset']} | {r['train_seconds']} | {r['kl_gap_nats']:.3f} | {r['ed_ratio']:.2f} | {acc} |")


if __name__ == "__main__":
    main()
