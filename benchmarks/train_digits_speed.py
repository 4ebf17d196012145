"""How fast the live digit recipe (page 12) learns: judged accuracy against training steps and seconds.

    python benchmarks/train_digits_speed.py                            # the live recipe, ui/digit_training.LIVE
    python benchmarks/train_digits_speed.py --at 300 600 1000 1500 --n 500
    python benchmarks/train_digits_speed.py --base 16 --batch 32 --lr 3e-3 --steps 1200
    python benchmarks/train_digits_speed.py --smoke                    # a few steps, a tiny net: checks the script

The model is trained with `diffusion.training.train` on one torch thread, as the page trains it (the same
`live_config`, network and grid redraws every --redraw seconds, whose cost counts as training time, as on the
page). At each step of --at (and at the end) the EMA model is judged with the clocks stopped: --n samples
(--n / 10 of each digit) at 20 network evaluations of DPM-Solver++(2M), the digit pages' sampler, guided with
w = 2 and unguided, read by the lab's classifier (checkpoints/mnist_classifier.safetensors). Because the
learning rate decays to 0 at --steps, a row at step k < --steps is a model in the middle of its run, not one
trained for k steps. "training s" is wall-clock time; "CPU s / step" is the process's CPU time per step, what a step
costs on a core of its own however busy the machine is. Prints one table row per checkpoint and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main(argv=None) -> int:
    import torch

    from diffusion.classifier import load_classifier
    from diffusion.training import train
    from toy_data.mnist import mnist_sampler
    from diffusion.schedules import T_SAMPLING
    from ui.digit_training import LIVE, REDRAW_S, build_live_model, grid_noise, grid_samples, judge, live_config

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=LIVE["steps"])
    p.add_argument("--batch", type=int, default=LIVE["batch"])
    p.add_argument("--lr", type=float, default=LIVE["lr"])
    p.add_argument("--ema", type=float, default=LIVE["ema"])
    p.add_argument("--label-dropout", type=float, default=LIVE["label_dropout"])
    p.add_argument("--base", type=int, default=LIVE["base"])
    p.add_argument("--t-sampling", default=LIVE["t_sampling"], choices=T_SAMPLING)
    p.add_argument("--batch-target", action=argparse.BooleanOptionalAction, default=LIVE["batch_target"])
    p.add_argument("--mults", type=int, nargs="+", default=list(LIVE["mults"]))
    p.add_argument("--attention", action=argparse.BooleanOptionalAction, default=LIVE["attention"])
    p.add_argument("--at", type=int, nargs="*", default=None, help="steps at which to judge (default: 5 even points)")
    p.add_argument("--n", type=int, default=500, help="judged samples per setting (a multiple of 10)")
    p.add_argument("--redraw", type=float, default=REDRAW_S, help="seconds between the live grids (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="20 steps of a base-8 net, 20 judged samples: a quick check")
    args = p.parse_args(argv)
    if args.smoke:
        args.steps, args.n, args.at, args.base, args.batch = 20, 20, [10], 8, 8
    at = sorted(set(args.at if args.at is not None else [args.steps * k // 5 for k in range(1, 5)]) | {args.steps})

    torch.set_num_threads(1)
    config = live_config(args.steps, args.seed, args.batch, args.lr, args.ema, args.label_dropout, args.t_sampling,
                         args.batch_target)
    model = build_live_model(args.seed, args.base, args.mults, args.attention)
    classifier = load_classifier()[0]
    data = mnist_sampler("train")
    x_T = grid_noise(model.schedule)
    params = sum(p.numel() for p in model.parameters())
    print(f"# base {args.base}, mults {tuple(args.mults)}, attention {args.attention}, {params:,} parameters; "
          f"batch {args.batch}, lr {args.lr:g}, EMA {args.ema}, label dropout {args.label_dropout}, "
          f"{args.steps} steps; one torch thread; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; judged on {args.n} samples per setting", flush=True)
    print("| step | training s | s / step | CPU s / step | guided w = 2 | unguided | judging s |\n"
          "|---|---|---|---|---|---|---|", flush=True)
    clock = {"paused": 0.0, "paused_cpu": 0.0, "last_draw": None, "grid_s": 0.0, "grids": 0}
    rows = []
    start, start_cpu = time.perf_counter(), time.process_time()

    def measure(step, model):
        t0, c0 = time.perf_counter(), time.process_time()
        trained, cpu = t0 - start - clock["paused"], c0 - start_cpu - clock["paused_cpu"]
        acc = judge(model, classifier, args.n)
        seconds = time.perf_counter() - t0
        clock["paused"] += seconds
        clock["paused_cpu"] += time.process_time() - c0
        (g, g_se), (u, u_se) = acc[2.0], acc[0.0]
        rows.append({"step": step, "train_s": round(trained, 1), "train_cpu_s": round(cpu, 1), "guided": round(g, 4),
                     "guided_se": round(g_se, 4), "unguided": round(u, 4), "unguided_se": round(u_se, 4)})
        print(f"| {step} | {trained:.1f} | {trained / step:.3f} | {cpu / step:.3f} | {100 * g:.1f}% ± {100 * g_se:.1f} | "
              f"{100 * u:.1f}% ± {100 * u_se:.1f} | {seconds:.1f} |", flush=True)

    def callback(info):
        step = info["step"]
        now = time.perf_counter()
        if args.redraw > 0 and (clock["last_draw"] is None or now - clock["last_draw"] >= args.redraw):
            grid_samples(info["snapshot"](), x_T)  # the page's live grid, counted as training time
            clock["last_draw"] = time.perf_counter()
            clock["grid_s"] += clock["last_draw"] - now
            clock["grids"] += 1
            clock.setdefault("first_grid", clock["last_draw"] - start)
        if step in at and step != args.steps:
            measure(step, info["snapshot"]())

    result = train(model, data, config, callback=callback)
    measure(result.steps_done, result.model)
    grid_each = clock["grid_s"] / max(1, clock["grids"])
    print(f"# {clock['grids']} live grids drew in {clock['grid_s']:.1f} s of the training time "
          f"({grid_each:.2f} s each), the first {clock.get('first_grid', float('nan')):.1f} s after the start; final loss {sum(result.losses[-100:]) / max(1, len(result.losses[-100:])):.4f}")
    print(json.dumps({"recipe": {k: getattr(args, k) for k in ("steps", "batch", "lr", "ema", "label_dropout", "base",
                                                                "mults", "attention", "seed", "n")},
                      "parameters": params, "grid_s_each": round(grid_each, 3),
                      "first_grid_s": round(clock.get("first_grid", float("nan")), 2), "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
