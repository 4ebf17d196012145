"""The Train page's live KL curve: what it costs the training, and whether its last value is evaluate's figure.

    python benchmarks/live_kl.py [--dataset moons] [--steps 3000]

Trains the page's default recipe (ui.training.DEFAULTS, one torch thread, as the page does) twice through
ui.training.TrainingJob: once with the live KL estimates and once with them off (the share set to 0). Prints the training time of each, the time the live estimates took, their number,
the KL curve, the final KL on 2,000 held-out points, and `python -m diffusion.evaluate`'s kl_gap_nats +- kl_gap_se
for the same model saved as a checkpoint (run as a separate process, as a user would).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from diffusion.checkpoints import save_checkpoint  # noqa: E402
from diffusion.schedules import make_schedule  # noqa: E402
from toy_data import get_dataset  # noqa: E402
from ui.training import DEFAULTS, TrainingJob, make_config  # noqa: E402


def run(dataset: str, steps: int, share: float | None):
    dist = get_dataset(dataset)
    job = TrainingJob(dist, dataset, dataset, DEFAULTS["parameterization"], make_schedule("cosine"),
                      make_config(steps, DEFAULTS["batch"], DEFAULTS["lr"], DEFAULTS["weighting"], "cpu"))
    if share is not None:
        job.kl.share = share
    start = time.perf_counter()
    job.start().join()
    assert job.state == "done", job.error
    return job, time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="moons")
    p.add_argument("--steps", type=int, default=DEFAULTS["steps"])
    p.add_argument("--skip-baseline", action="store_true", help="only the run with live KL")
    args = p.parse_args()
    torch.set_num_threads(1)
    print(f"{args.dataset}, {args.steps} steps, batch {DEFAULTS['batch']}, one torch thread, "
          f"{os.cpu_count()} cores, torch {torch.__version__}")
    job, wall = run(args.dataset, args.steps, None)
    r = job.result
    print(f"with live KL: training {r.seconds:.1f} s (wall {wall:.1f} s), {len(job.kl.curve)} estimates taking "
          f"{job.kl.seconds:.2f} s = {job.kl.seconds / (r.seconds - job.kl.seconds):.1%} of the rest of training")
    for step, k, e in job.kl.curve:
        print(f"  step {step:5d}: KL {k:.4f} +- {e:.4f}")
    print(f"final KL ({len(job.kl.x)} points, {job.kl.steps} steps): {job.kl_final[0]:.4f} +- {job.kl_final[1]:.4f}")
    if not args.skip_baseline:
        base, wall0 = run(args.dataset, args.steps, 0.0)
        print(f"without live KL: training {base.result.seconds:.1f} s (wall {wall0:.1f} s); "
              f"slow-down {r.seconds / base.result.seconds - 1:+.1%}")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.safetensors")
        save_checkpoint(path, r.model, dataset=args.dataset, label_names=list(job.dist.label_names))
        out = subprocess.run([sys.executable, "-m", "diffusion.evaluate", "--checkpoint", path, "--n", "500",
                              "--pool", "1"], cwd=ROOT, capture_output=True, text=True, check=True)
        ev = json.loads(out.stdout)
    diff = job.kl_final[0] - ev["kl_gap_nats"]
    print(f"python -m diffusion.evaluate: kl_gap_nats {ev['kl_gap_nats']:.4f} +- {ev['kl_gap_se']:.4f}; "
          f"final KL minus it: {diff:+.4f} ({abs(diff) / ev['kl_gap_se']:.2f} of its standard error)")


if __name__ == "__main__":
    main()
