"""Captured against eager MNIST training on a GPU, and the training time to the MNIST quality targets.

    python benchmarks/gpu_train.py --out artifacts/cuda/mnist_captured.safetensors [--json results.json]
        [--batches 64 256 1024] [--batch 512] [--steps 8000] [--eval-every 1000] [--budget 240] [--n 2000]
    python benchmarks/gpu_train.py --smoke --out /tmp/smoke.safetensors      (CPU, seconds: the script runs)

1. Steps per second of the shipped MNIST UNet (diffusion.train.DEFAULTS_MNIST) in the eager loop and with
   each step replayed as a CUDA graph (diffusion.captured), at each of --batches. Each figure is
   (k2 - k1) / (T2 - T1) from runs of k1 = 100 and k2 = 600 steps, so the process start, the data's copy to
   the GPU and the capture itself (all in T1 and T2 alike) drop out; the setup column is what they cost.
2. Time to the targets: a captured run at --batch for --steps (lr and EMA as DEFAULTS_MNIST), its EMA
   model judged every --eval-every steps at 20 NFE (DPM-Solver++) on --n samples: unguided, the Frechet
   distance must be <= 1.3x the floor; guided (w = 1, only for lambda in the app's interval), >= 99.5% of
   samples read as the asked digit by the lab's classifier. The training clock stops while it judges. The
   run ends at both targets, at --steps, or after --budget seconds of training; the model is saved to --out.

On one GPU the defaults take about 6-8 minutes in all (one device run). On a CPU only --smoke is meant:
a tiny network, a few steps, the unrecorded step ("static") in place of the graph, 20 samples.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from diffusion.captured import TensorData  # noqa: E402
from diffusion.checkpoints import save_checkpoint  # noqa: E402
from diffusion.classifier import load_classifier  # noqa: E402
from diffusion.evaluate import evaluate_mnist, mnist_reference  # noqa: E402
from diffusion.models import build_model  # noqa: E402
from diffusion.samplers import GUIDANCE_INTERVAL  # noqa: E402
from diffusion.schedules import make_schedule  # noqa: E402
from diffusion.train import DEFAULTS_MNIST  # noqa: E402
from diffusion.training import TrainConfig, pick_device, train  # noqa: E402
from toy_data.mnist import LABEL_NAMES, load_mnist  # noqa: E402

FD_RATIO, ACCURACY = 1.3, 0.995  # the targets: unguided FD <= 1.3x the floor; guided accuracy >= 99.5%


def build(base: int, seed: int = 0):
    return build_model("images", DEFAULTS_MNIST["parameterization"], make_schedule(DEFAULTS_MNIST["schedule"]), 10,
                       base=base, seed=seed)


def config(steps: int, batch: int, device: str, capture: str) -> TrainConfig:
    d = DEFAULTS_MNIST
    return TrainConfig(steps=steps, batch_size=batch, lr=d["lr"], weighting=d["weighting"], ema_decay=d["ema"],
                       device=device, capture=capture)


def rate(data, base: int, batch: int, device: str, capture: str, k1: int, k2: int) -> dict:
    """Steps per second between step k1 and k2, and the setup (start, copy, capture) that both runs pay."""
    seconds = []
    for k in (k1, k2):
        result = train(build(base), data, config(k, batch, device, capture))
        seconds.append(result.seconds)
    per_s = (k2 - k1) / (seconds[1] - seconds[0]) if seconds[1] > seconds[0] else float("nan")
    return {"mode": result.capture, "batch": batch, "steps_per_s": per_s, "images_per_s": per_s * batch,
            "setup_s": max(0.0, seconds[0] - k1 / per_s)}


def judge(model, classifier, n: int, reference: dict, device, interval) -> dict:
    """Unguided FD ratio and guided accuracy at 20 NFE, DPM-Solver++ (diffusion.evaluate.evaluate_mnist)."""
    plain = evaluate_mnist(model, classifier, n=n, guidances=(0.0,), reference=reference, device=device)
    guided = evaluate_mnist(model, classifier, n=n, guidances=(1.0,), reference=reference, device=device,
                            interval=interval)
    fd_ratio, accuracy = plain["results"][0]["fd_ratio"], guided["results"][0]["accuracy"]
    return {"fd_ratio": fd_ratio, "accuracy": accuracy, "met": fd_ratio <= FD_RATIO and accuracy >= ACCURACY}


def to_targets(data, args, device: str, capture: str) -> dict:
    classifier, _ = load_classifier(None)
    reference = mnist_reference(classifier, args.n)
    model, rows, clock = build(args.base), [], {"eval": 0.0, "met": False, "start": time.perf_counter()}

    def trained_s():
        return time.perf_counter() - clock["start"] - clock["eval"]

    def every(info):
        step = info["step"]
        if step % args.eval_every and step != args.steps:
            return
        t_train, t0 = trained_s(), time.perf_counter()
        row = {"step": step, "train_s": round(t_train, 2), **judge(info["snapshot"](), classifier, args.n,
                                                                     reference, device, args.interval)}
        rows.append(row)
        clock["met"] = row["met"]
        clock["eval"] += time.perf_counter() - t0
        print(f"  step {step}: {t_train:.1f} s of training, unguided FD {row['fd_ratio']:.2f}x floor, guided "
              f"accuracy {row['accuracy'] * 100:.2f}%{'  (both targets)' if row['met'] else ''}", flush=True)

    cfg = config(args.steps, args.batch, device, capture)
    result = train(model, data, cfg, callback=every, should_stop=lambda: clock["met"] or trained_s() > args.budget)
    save_checkpoint(args.out, result.model, dataset="mnist", label_names=list(LABEL_NAMES),
                    train={**cfg.to_dict(), "device": device, "capture": result.capture,
                           "steps_done": result.steps_done, "seconds": round(trained_s(), 1),
                           "torch": torch.__version__, "world_size": 1, "resumed_from": None})
    first = next((r for r in rows if r["met"]), None)
    return {"mode": result.capture, "batch": args.batch, "steps_done": result.steps_done, "evaluations": rows,
            "time_to_targets_s": None if first is None else first["train_s"],
            "steps_to_targets": None if first is None else first["step"], "fd_floor": reference["fd_floor"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="where the trained checkpoint goes (.safetensors)")
    p.add_argument("--json", default=None, help="also write the figures here")
    p.add_argument("--device", default="auto")
    p.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024], help="batch sizes of part 1")
    p.add_argument("--batch", type=int, default=512, help="batch of part 2")
    p.add_argument("--steps", type=int, default=8000, help="part 2's steps (the cosine decay's length)")
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--budget", type=float, default=240.0, help="part 2's seconds of training at most")
    p.add_argument("--n", type=int, default=2000, help="samples per judgement (a multiple of 10)")
    p.add_argument("--interval", type=float, nargs=2, default=list(GUIDANCE_INTERVAL))
    p.add_argument("--smoke", action="store_true", help="a few steps of a tiny network: that the script runs")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    capture = "graph" if device.type == "cuda" else "static"  # static: the same step, unrecorded (no CUDA)
    args.base, (k1, k2) = DEFAULTS_MNIST["base"], (100, 600)
    if args.smoke:
        args.base, (k1, k2), args.batches, args.batch = 8, (3, 9), [8], 8
        args.steps, args.eval_every, args.n = 4, 4, 20
    data = TensorData(*load_mnist("train"))
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'no GPU'}), "
          f"torch {torch.__version__}; MNIST UNet base {args.base}", flush=True)
    t0 = time.perf_counter()  # the first run pays the one-time costs (CUDA's start, kernel loading)
    train(build(args.base), data, config(2, args.batches[0], str(device), "off"))
    print(f"  first 2-step run (one-time start): {time.perf_counter() - t0:.1f} s", flush=True)
    rates = []
    for batch in args.batches:
        for mode in ("off", capture):
            rates.append(rate(data, args.base, batch, str(device), mode, k1, k2))
            r = rates[-1]
            print(f"  batch {batch}, {r['mode']}: {r['steps_per_s']:.1f} steps/s, setup {r['setup_s']:.1f} s",
                  flush=True)
    print(f"\n| batch | eager steps/s | {capture} steps/s | speed-up | {capture} images/s | {capture} setup |")
    print("|---|---|---|---|---|---|")
    for eager, fast in zip(rates[::2], rates[1::2]):
        print(f"| {eager['batch']} | {eager['steps_per_s']:.1f} | {fast['steps_per_s']:.1f} | "
              f"{fast['steps_per_s'] / eager['steps_per_s']:.1f}x | {fast['images_per_s']:,.0f} | "
              f"{fast['setup_s']:.1f} s |")
    print(f"\nTo the targets ({capture}, batch {args.batch}, up to {args.steps} steps or {args.budget:g} s):",
          flush=True)
    targets = to_targets(data, args, str(device), capture)
    got = targets["time_to_targets_s"]
    reached = "not reached" if got is None else f"{got:.1f} s of training ({targets['steps_to_targets']} steps)"
    print(f"time to both targets: {reached}; saved {args.out}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(device), "torch": torch.__version__, "rates": rates, "targets": targets}, f,
                      indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
