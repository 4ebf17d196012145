"""python -m checkpoints.build: rebuild the files shipped in checkpoints/, one target at a time.

    python -m checkpoints.build --list                  # the targets, the files each writes, how long each took
    python -m checkpoints.build NAME [options]          # one target; NAME --help lists its options
    python -m checkpoints.build all                     # every target, each after the targets it reads

Every target writes the shipped files by default; its --out, --save or --folder option writes elsewhere.
The times are those recorded when the shipped files were built (in the files themselves,
docs/measurements.md or docs/memorisation.md); a target whose time was not recorded says so.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as a file or from another folder: the project's packages are beside this one
    sys.path.insert(0, ROOT)

from diffusion import cli  # noqa: E402

FOLDER = os.path.join(ROOT, "checkpoints")
PROG = "python -m checkpoints.build"


@dataclass(frozen=True)
class Target:
    name: str
    what: str
    writes: tuple[str, ...]
    took: str
    run: Callable[[list], int]
    needs: tuple[str, ...] = ()

    @property
    def prog(self) -> str:
        return f"{PROG} {self.name}"

    def epilog(self) -> str:
        lines = [f"writes: {', '.join(self.writes)}"]
        if self.needs:
            lines.append(f"reads what these targets write: {', '.join(self.needs)}")
        lines.append(f"took: {self.took}")
        return "\n".join(lines)

    def parser(self, description: str | None = None) -> cli.ArgumentParser:
        return cli.ArgumentParser(prog=self.prog, description=description or self.what, epilog=self.epilog(),
                                  formatter_class=LineFormatter)


class LineFormatter(argparse.HelpFormatter):
    """Wraps each line of a description or epilog on its own (the default joins them into one paragraph)."""

    def _fill_text(self, text, width, indent):
        return "\n".join(super(LineFormatter, self)._fill_text(line, width, indent) for line in text.splitlines())


# --- the 2-D models ------------------------------------------------------------------------------------------

# The shipped training length per dataset: the `steps` recorded in each shipped checkpoint (docs/training.md,
# "The shipped models").
STEPS_2D = {"moons": 4000, "swiss_roll": 4000, "checkerboard": 4000}
STEPS_2D_OTHERS = 12_000


def models_2d(argv) -> int:
    """Train each toy distribution's model from scratch, time it, measure it against the exact truth
    (evaluate_2d with the exact model's figures beside it) and save it; or measure saved ones again."""
    import torch

    from diffusion.checkpoints import load_checkpoint, rewrite_metrics, save_checkpoint
    from diffusion.evaluate import evaluate_2d
    from diffusion.models import build_model
    from diffusion.schedules import make_schedule
    from diffusion.train import SHIPPED_2D
    from diffusion.training import TrainConfig, pick_device, train
    from toy_data import DATASETS, get_dataset

    p = TARGETS["models-2d"].parser(
        "Train every toy distribution's model from scratch, time it, measure it against the exact truth "
        "(evaluate_2d with reference=True) and save it. Prints one JSON line per dataset and a markdown table "
        "at the end.")
    p.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    p.add_argument("--steps", type=cli.positive_int("--steps", 1, 1_000_000), default=None,
                   help=f"training steps for every dataset (default: the shipped length, {SHIPPED_2D['steps']:,} "
                        f"for {', '.join(STEPS_2D)}, {STEPS_2D_OTHERS:,} for the others)")
    p.add_argument("--batch", type=cli.positive_int("--batch", 1, 65536), default=SHIPPED_2D["batch"])
    p.add_argument("--save", default=FOLDER, help="folder to write <dataset>.safetensors into (default: checkpoints)")
    p.add_argument("--threads", type=cli.positive_int("--threads", 1, 256), default=torch.get_num_threads())
    p.add_argument("--remeasure", default=None, metavar="FOLDER",
                   help="measure the checkpoints in FOLDER again (no training): their stored figures are "
                        "replaced, their weights kept")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.remeasure:
        for name in args.datasets:
            path = os.path.join(args.remeasure, f"{name}.safetensors")
            metrics = evaluate_2d(load_checkpoint(path)[0], get_dataset(name), reference=True)
            rewrite_metrics(path, metrics)
            print(json.dumps({"dataset": name, **metrics}), flush=True)
        return 0
    if not os.path.isdir(args.save):
        raise ValueError(f"--save: folder {args.save!r} does not exist")
    machine = f"{platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}"
    rows = []
    for name in args.datasets:
        dist = get_dataset(name)
        model = build_model("points", SHIPPED_2D["parameterization"], make_schedule(SHIPPED_2D["schedule"]),
                            dist.num_classes, seed=0)
        steps = args.steps or STEPS_2D.get(name, STEPS_2D_OTHERS)
        config = TrainConfig(steps=steps, batch_size=args.batch, lr=SHIPPED_2D["lr"],
                             weighting=SHIPPED_2D["weighting"], device="cpu")
        start = time.perf_counter()
        result = train(model, lambda n, g: dist.sample(n, generator=g), config)
        seconds = time.perf_counter() - start
        t_eval = time.perf_counter()
        metrics = evaluate_2d(result.model, dist, reference=True)
        row = {"dataset": name, "train_steps": steps, "train_seconds": round(seconds, 1),
               "eval_seconds": round(time.perf_counter() - t_eval, 1), **metrics}
        rows.append(row)
        print(json.dumps(row), flush=True)
        save_checkpoint(os.path.join(args.save, f"{name}.safetensors"), result.model, dataset=name,
                        label_names=list(dist.label_names),
                        train={**config.to_dict(), "device": str(pick_device("cpu")), "steps_done": result.steps_done,
                               "seconds": round(seconds, 1), "torch": torch.__version__, "machine": machine},
                        metrics=metrics)
    print(f"\nMachine: {machine}\n")
    print("| dataset | train steps | train s | KL gap (nats) | ED ratio (Heun 50) | cond. accuracy w=0 / 1 / 3 |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        acc = " / ".join(f"{r['conditional'][w]['accuracy']:.3f}" for w in ("0", "1", "3"))
        print(f"| {r['dataset']} | {r['train_steps']:,} | {r['train_seconds']} | {r['kl_gap_nats']:.3f} | "
              f"{r['ed_ratio']:.2f} | {acc} |")
    return 0


# --- the energy heads ------------------------------------------------------------------------------------------

ENERGY_FOLDER = os.path.join(FOLDER, "energy")
ENERGY_DATASETS = ("moons", "8gaussians")
ENERGY_STEPS = STEPS_2D_OTHERS  # 12,000: on moons the ED ratio falls from 3.2 at 4,000 steps to 1.6 (docs/energy.md)
# The 2-D recipe's v weighting leaves an energy head's score far off after 1,000 steps on moons (relative error
# 0.94 at t = 0.25), the eps weighting does not (0.10): docs/energy.md.
ENERGY_WEIGHTING = "eps"


def energy_heads(argv) -> int:
    """Train page 2's energy heads with python -m diffusion.train (the shipped 2-D recipe with --parameterization
    energy and --weighting eps), which records log Z_theta(t) of the EMA weights while it trains
    (config["train"]["log_z_history"])."""
    from diffusion.train import main as train_main
    from toy_data import DATASETS

    p = TARGETS["energy-heads"].parser(
        "Page 2's energy heads: python -m diffusion.train --parameterization energy --weighting eps, otherwise the "
        "shipped 2-D recipe, one per dataset; each checkpoint keeps the log Z_theta(t) its training recorded.")
    p.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(ENERGY_DATASETS))
    p.add_argument("--steps", type=cli.positive_int("--steps", 1, 1_000_000), default=ENERGY_STEPS)
    p.add_argument("--folder", default=ENERGY_FOLDER,
                   help="where <dataset>.safetensors go (default: checkpoints/energy)")
    args = p.parse_args(argv)
    os.makedirs(args.folder, exist_ok=True)
    for name in args.datasets:
        code = train_main(["--dataset", name, "--parameterization", "energy", "--weighting", ENERGY_WEIGHTING,
                           "--steps", str(args.steps), "--device", "cpu", "--seed", "0", "--quiet",
                           "--out", os.path.join(args.folder, f"{name}.safetensors")])
        if code:
            return code
    return 0


# --- the MNIST classifier --------------------------------------------------------------------------------------

def augment(x, g):
    """Random rotation (up to 10 degrees), scale (0.9-1.1) and shift (up to 2 pixels) per image; the
    background (-1) stays -1."""
    import torch
    from torch.nn import functional as F

    b = x.shape[0]
    angle = (torch.rand(b, generator=g) * 2 - 1) * math.radians(10)
    scale = 0.9 + 0.2 * torch.rand(b, generator=g)
    shift = (torch.rand(b, 2, generator=g) * 2 - 1) * (2 / 14)  # 2 pixels in [-1, 1] grid units
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1


def accuracy(model, x, y) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        return (model.predict(x) == y).float().mean().item()


CLASSIFIER_EPOCHS = 3  # the shipped classifier's (recorded in its config)


def classifier(argv) -> int:
    import torch
    from torch.nn import functional as F

    from diffusion.classifier import DEFAULT_PATH, MnistClassifier, reference_stats, save_classifier
    from toy_data.mnist import load_mnist

    p = TARGETS["classifier"].parser(
        "Train diffusion.classifier.MnistClassifier on the 60,000 training digits with light augmentation "
        "(random rotation of up to 10 degrees, scale 0.9-1.1, shift of up to 2 pixels: generated digits are not "
        "all centred like MNIST's), Adam with a one-cycle learning rate; print the accuracy on the 10,000 test "
        "digits and the training time, and store both in the checkpoint's config with the test digits' feature "
        "statistics (the reference of the Frechet distance).")
    p.add_argument("--epochs", type=cli.positive_int("--epochs", 1, 100), default=CLASSIFIER_EPOCHS,
                   help=f"passes over the training digits (default: {CLASSIFIER_EPOCHS}, the shipped classifier's)")
    p.add_argument("--batch", type=cli.positive_int("--batch", 8, 4096), default=128)
    p.add_argument("--lr", type=cli.bounded_float("--lr", 1e-6, 1.0), default=3e-3)
    p.add_argument("--threads", type=cli.positive_int("--threads", 1, 256), default=1)
    p.add_argument("--seed", type=cli.positive_int("--seed", 0, 2**31 - 1), default=0)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--out", default=DEFAULT_PATH)
    args = p.parse_args(argv)
    cli.check_writable(args.out, ".safetensors")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    x_train, y_train = load_mnist("train")
    x_test, y_test = load_mnist("test")
    model = MnistClassifier()
    per_epoch = math.ceil(len(x_train) / args.batch)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * per_epoch,
                                                pct_start=0.15)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=g)
        total, correct, seen = 0.0, 0, 0
        for i in range(per_epoch):
            idx = order[i * args.batch:(i + 1) * args.batch]
            xb, yb = x_train[idx], y_train[idx]
            if not args.no_augment:
                xb = augment(xb, g)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
            seen += len(idx)
            if (i + 1) % 100 == 0:
                print(f"epoch {epoch + 1} batch {i + 1}/{per_epoch} loss {total / seen:.4f} "
                      f"train acc {correct / seen:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
        test_acc = accuracy(model, x_test, y_test)
        print(f"epoch {epoch + 1}: loss {total / seen:.4f}, test accuracy {test_acc:.4f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    seconds = time.perf_counter() - start
    test_acc = accuracy(model, x_test, y_test)
    with torch.no_grad():
        per_class = [round((model.predict(x_test[y_test == c]) == c).float().mean().item(), 4) for c in range(10)]
    save_classifier(args.out, model, reference=reference_stats(model, x_test), dataset="mnist",
                    train={"epochs": args.epochs, "batch": args.batch, "lr": args.lr, "augment": not args.no_augment,
                           "seed": args.seed, "threads": args.threads, "seconds": round(seconds, 1),
                           "torch": torch.__version__},
                    test_accuracy=round(test_acc, 4), test_accuracy_per_class=per_class)
    print(f"test accuracy {test_acc:.4f} (per class {per_class}); trained in {seconds:.0f} s on "
          f"{args.threads} thread(s); wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB)")
    return 0


# --- the MNIST diffusion model ----------------------------------------------------------------------------------

MNIST_PATH = os.path.join(FOLDER, "mnist.safetensors")


def _mnist_parser():
    """diffusion.train's parser (every option of `python -m diffusion.train`), with --dataset mnist and --out
    the shipped file."""
    from diffusion.train import build_parser

    t = TARGETS["mnist"]
    p = build_parser()
    p.prog, p.epilog, p.formatter_class = t.prog, t.epilog(), LineFormatter
    p.description = (f"{t.what}: python -m diffusion.train --dataset mnist with the shipped recipe, its defaults "
                     "for mnist; every option of diffusion.train applies.")
    for action in p._actions:
        if action.dest == "out":
            action.required, action.default = False, MNIST_PATH
            action.help = "checkpoint to write (.safetensors; default: checkpoints/mnist.safetensors)"
        elif action.dest == "dataset":
            action.default, action.help = "mnist", "mnist only (this target trains the digit model)"
    return p


def mnist(argv) -> int:
    from diffusion.train import main as train_main

    p = _mnist_parser()
    args = p.parse_args(argv)
    if args.dataset != "mnist":
        p.error(f"--dataset must be mnist for this target; got {args.dataset!r} (python -m diffusion.train "
                "trains the others)")
    return train_main(["--dataset", "mnist", "--out", args.out, *argv])


# --- files computed ahead for the pages --------------------------------------------------------------------------

def energy_maps(argv) -> int:
    from toy_data import DATASETS
    from ui import energy_maps as em

    p = TARGETS["energy-maps"].parser(
        "The Energy page's learned maps for the shipped 2-D models, every map the page can show under their own "
        "schedule (ui/energy_maps.py says which and how they are used).")
    p.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    p.add_argument("--jobs", type=cli.positive_int("--jobs", 1, 64), default=2, help="processes, one thread each")
    p.add_argument("--out", default=em.PATH)
    args = p.parse_args(argv)
    cli.check_writable(args.out, ".npz", "--out")
    arrays = em.build(args.datasets, jobs=args.jobs,
                      progress=lambda name, secs: sys.stderr.write(f"{name}: done at {secs:.0f} s\n"))
    em.save(args.out, arrays)
    sys.stderr.write(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.1f} MB)\n")
    return 0


def digit_presets(argv) -> int:
    from diffusion.checkpoints import load_checkpoint
    from toy_data.mnist import load_mnist
    from ui import digit_presets as dp
    from ui.energy_maps import weights_fingerprint
    from ui.models import MNIST_CHECKPOINT
    from ui.threads import use_one_thread

    p = TARGETS["digit-presets"].parser(
        "The digit pages' default views and common presets for the shipped MNIST model (ui/digit_presets.py "
        "lists what and why).")
    p.add_argument("--out", default=dp.PATH)
    p.add_argument("--checkpoint", default=MNIST_CHECKPOINT)
    args = p.parse_args(argv)
    cli.check_writable(args.out, ".npz", "--out")
    model, _ = load_checkpoint(args.checkpoint, expect={"net.arch": "unet", "dataset": "mnist"})
    model.requires_grad_(False)
    use_one_thread()
    test_x, test_y = load_mnist("test")
    t0 = time.perf_counter()
    entries = dp.build(model, test_x, test_y, progress=lambda text: sys.stderr.write(text + "\n"))
    dp.save(args.out, entries, weights_fingerprint(model), model.schedule.spec())
    sys.stderr.write(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB) in "
                     f"{time.perf_counter() - t0:.0f} s\n")
    return 0


def _memorisation_parser(name: str, description: str):
    from toy_data import DATASETS as ALL
    from ui import memorisation

    p = TARGETS[name].parser(description)
    p.add_argument("--datasets", nargs="+", choices=list(ALL), default=list(memorisation.DATASETS))
    p.add_argument("--ns", nargs="+", type=cli.positive_int("--ns", 1, 100_000), default=list(memorisation.NS))
    p.add_argument("--folder", default=memorisation.FOLDER, help="where the networks are (and the samples file goes)")
    return p


def memorisation_nets(argv) -> int:
    import numpy as np

    from toy_data import get_dataset
    from ui import memorisation

    p = _memorisation_parser("memorisation-nets", "Page 6's networks: one per dataset and N, trained on exactly "
                             "the page's N training points with the shipped 2-D recipe (ui.memorisation.RECIPE).")
    p.add_argument("--steps", type=cli.positive_int("--steps", 1, 1_000_000), default=memorisation.RECIPE["steps"])
    args = p.parse_args(argv)
    os.makedirs(args.folder, exist_ok=True)
    recipe = {**memorisation.RECIPE, "steps": args.steps}
    for name in args.datasets:
        for n in args.ns:
            dist = get_dataset(name)
            model, result = memorisation.train_net(dist, n, recipe)
            path = memorisation.net_path(name, n, args.folder)
            memorisation.save_net(path, model, dist, name, n, result, recipe)
            sys.stderr.write(f"{path}: {result.steps_done} steps in {result.seconds:.0f} s, "
                             f"final loss {np.mean(result.losses[-100:]):.4f}\n")
    return 0


def memorisation_samples(argv) -> int:
    import numpy as np

    from ui import memorisation

    p = _memorisation_parser("memorisation-samples", "Page 6's samples from the networks in --folder: the ideal "
                             "denoiser's, the networks' and fresh ones, from one shared noise.")
    args = p.parse_args(argv)
    os.makedirs(args.folder, exist_ok=True)
    out = os.path.join(args.folder, os.path.basename(memorisation.PATH))
    arrays = memorisation.build_file(args.datasets, tuple(args.ns), args.folder,
                             progress=lambda name, secs: sys.stderr.write(f"{name}: sampled in {secs:.0f} s\n"))
    memorisation.save(out, arrays)
    store, _ = memorisation.load(out)
    for name in args.datasets:
        for n, d in memorisation.distances(store[name], args.ns).items():
            sys.stderr.write(f"{name} N={n}: median distance to the nearest training point: "
                             + ", ".join(f"{k} {np.median(v):.4f} (se {memorisation.median_se(v):.4f})"
                                         for k, v in d.items()) + "\n")
    sys.stderr.write(f"wrote {out} ({os.path.getsize(out) / 1e6:.2f} MB)\n")
    return 0


# --- the targets ----------------------------------------------------------------------------------------------

# In the order `all` builds them: each after the targets it reads.
TARGETS = {t.name: t for t in (
    Target("classifier", "the MNIST classifier that python -m diffusion.evaluate measures digit models with",
           ("checkpoints/mnist_classifier.safetensors",),
           "409 s: 3 epochs on one thread (recorded in the file)", classifier),
    Target("mnist", "the MNIST diffusion model (class-conditional UNet) of the digit pages",
           ("checkpoints/mnist.safetensors",),
           "56 min, 3,377 s of it training: 9,000 steps on the 2-core development CPU, two threads "
           "(docs/measurements.md, \"The MNIST model\")", mnist),
    Target("digit-presets", "the digit pages' views computed ahead", ("checkpoints/digit_presets.npz",),
           "about 28 min: 1,664 s, the sum of its entries' times recorded in the file, one thread", digit_presets,
           needs=("mnist",)),
    Target("models-2d", "one class-conditional model per toy distribution, measured against the exact truth",
           ("checkpoints/<dataset>.safetensors for the eight toy distributions",),
           "training 55-668 s each, 1,633 s (27 min) for all eight, two threads (recorded in the files); the "
           "measuring after each training was not recorded", models_2d),
    Target("energy-maps", "the Energy page's learned maps computed ahead", ("checkpoints/energy_maps.npz",),
           "6 min 5 s with two processes (docs/measurements.md, \"Energy maps computed ahead\")",
           energy_maps, needs=("models-2d",)),
    Target("energy-heads", "page 2's energy heads (the network outputs E_theta) with the log Z_theta(t) of training",
           ("checkpoints/energy/<dataset>.safetensors: moons, 8gaussians",),
           "training 456 s (moons) and 459 s (8gaussians), one thread on the shared 2-core development machine "
           "(recorded in the files; docs/energy.md)", energy_heads),
    Target("memorisation-nets", "page 6's networks trained on exactly N points",
           ("checkpoints/memorisation/<dataset>-N<N>.safetensors: moons, N = 4, 16, 64, 256, 1000, 2000",),
           "136-250 s each, about 20 min for the six, one thread on a shared machine (docs/memorisation.md)",
           memorisation_nets),
    Target("memorisation-samples", "page 6's samples computed ahead", ("checkpoints/memorisation/samples.npz",),
           "14-19 s for moons (docs/memorisation.md)", memorisation_samples, needs=("memorisation-nets",)),
)}


def build_all(argv) -> int:
    p = cli.ArgumentParser(prog=f"{PROG} all", formatter_class=LineFormatter,
                           description="Rebuild every target with its defaults, in this order (each after the "
                                       "targets it reads), stopping at the first that fails:\n  "
                                       + " ".join(TARGETS))
    p.parse_args(argv)
    for name, target in TARGETS.items():
        sys.stderr.write(f"== {PROG} {name}\n")
        code = cli.run(target.run, target.prog, [])
        if code:
            return code
    return 0


def listing() -> str:
    lines = []
    for t in TARGETS.values():
        lines.append(f"{t.name}: {t.what}")
        lines.extend(f"    writes  {f}" for f in t.writes)
        if t.needs:
            lines.append(f"    reads   what {', '.join(t.needs)} writes")
        lines.append(f"    took    {t.took}")
    lines.append("all: every target above, in this order")
    return "\n".join(lines)


def usage() -> str:
    return (f"usage: {PROG} [-h] [--list] {{{','.join(TARGETS)},all}} [target options]\n\n"
            + _first_upper(__doc__.split(": ", 1)[1].rstrip()) + "\n")


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["-h"], ["--help"]):
        sys.stdout.write(usage())
        return 0
    if argv[:1] == ["--list"]:
        print(listing())
        return 0
    allowed = ", ".join([*TARGETS, "all"])
    if not argv:
        sys.stderr.write(f"{PROG}: error: name a target ({allowed}), or --list\n")
        return 2
    name, rest = argv[0], argv[1:]
    if name == "all":
        return build_all(rest)
    if name not in TARGETS:
        sys.stderr.write(f"{PROG}: error: unknown target {name!r}; allowed: {allowed}\n")
        return 2
    return cli.run(TARGETS[name].run, TARGETS[name].prog, rest)


if __name__ == "__main__":
    raise SystemExit(main())
