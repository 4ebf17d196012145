"""python -m diffusion.evaluate: measure a checkpoint (2-D: against the exact ground truth; MNIST: with a classifier); prints JSON.

    python -m diffusion.evaluate --checkpoint checkpoints/moons.safetensors

Figures (2-D models):
  kl_gap_nats        KL(p_data || p_model) in nats: the mean over held-out true points of
                     log p_data(x) - log p_model(x) (exact mixture density; model density through the
                     probability-flow ODE with the exact divergence), with its standard error kl_gap_se;
                     nll_minus_entropy is the unpaired figure, mean NLL minus the exact entropy
  ed_ratio           energy distance between model samples and true samples, divided by that between
                     two true samples of the same size n (1.0 = as close as a fresh true sample), in
                     expectation over draws: estimated from --pool x n points of each
  score_rel_error    sqrt(E|s_model - s_true|^2 / E|s_true|^2) on exact p_t samples, per t
  conditional        per guidance weight: share of samples nearest to the requested label, and ed_ratio

Figures (MNIST UNets: a checkpoint with net.arch "unet" and dataset "mnist"), measured with the separate
classifier checkpoints/mnist_classifier.safetensors (python -m checkpoints.build classifier; ~99% test accuracy):

    python -m diffusion.evaluate --checkpoint checkpoints/mnist.safetensors \
        [--samplers heun dpmpp_2m ddim euler] [--nfe 10 20 50] [--guidance 0 1 3 5] [--n 1000] \
        [--interval -2 4]

  for each sampler, number of function evaluations (NFE) and guidance weight w, --n class-conditional
  samples (the same number of each digit, from the same starting noise in every setting), clipped to
  [-1, 1]:
  accuracy           share classified as the requested digit
  fd                 Frechet distance between the samples and the 10,000 test digits in the classifier's
                     128-d feature space (FID's formula, a different network)
  fd_ratio           fd / fd_floor, where fd_floor is the same distance for --n real training digits
                     (mean of 3 draws): what a perfect generator scores at this sample size
  target_met         at 20 NFE and 1 <= w <= 3 the target is accuracy >= 0.99 and fd <= 2 fd_floor
The defaults (one sampler, 20 NFE, w = 0, 1, 3, 5, 500 samples) take a few minutes on a CPU;
benchmarks/samplers_mnist.py runs the full table. The NFE of a setting is the model evaluations per
sample of the sampler; guidance w > 0 makes each cost two network calls (conditional and unconditional).
--interval LO HI guides only where the log-SNR lies in [LO, HI) (plain conditional elsewhere, one call);
every row records the interval it used (null: guidance over the whole journey).
"""

from __future__ import annotations

import json
import sys
import time

import torch

from toy_data import get_dataset

from . import cli
from .checkpoints import CheckpointError, load_checkpoint
from .likelihood import ode_log_likelihood
from .models import oracle_model
from .metrics import energy_distance_ratio, relative_score_error
from .samplers import SAMPLERS, guided, prior_sample, sample, steps_for_nfe


HELD_OUT_SEED = 12345  # the held-out points' seed, added to the run's own


def held_out(dist, n: int = 2000, seed: int = 0) -> torch.Tensor:
    """The held-out true points [n, dim] the KL gap is measured on: a fixed draw, apart from any training batch."""
    return dist.sample(n, generator=torch.Generator().manual_seed(seed + HELD_OUT_SEED))[0]


def kl_gaps(model, dist, x: torch.Tensor, steps: int = 128, log_p_data: torch.Tensor | None = None) -> torch.Tensor:
    """log p_data(x_i) - log p_model(x_i) for each true point x_i [n], float64: their mean is the paired estimate
    of KL(p_data || p_model) (exact mixture density; the model's through the probability-flow ODE, `steps`
    Heun steps, exact divergence; unconditional). `log_p_data` may be passed when it is already known."""
    log_p = dist.log_prob(x.double()).cpu() if log_p_data is None else log_p_data
    return log_p - ode_log_likelihood(model, x, steps=steps).cpu()


def evaluate_2d(model, dist, n: int = 5000, sampler: str = "heun", steps: int = 50, guidances=(0.0, 1.0, 3.0),
                nll_points: int = 2000, nll_steps: int = 128, pool: int = 8, seed: int = 0,
                reference: bool = False, progress=None) -> dict:
    """Every figure of the module docstring for a 2-D model of `dist` (a toy_data GaussianMixture).

    Both headline figures are estimated so that the exact model scores what it should, not what one
    lucky or unlucky draw gives (with well-separated modes one draw is far off; see docs/design.md):
    - kl_gap_nats is the paired estimate mean_i [log p(x_i) - log q(x_i)] over held-out true points x_i,
      with the exact log p of the mixture: the same expectation as "mean NLL minus entropy" but with the
      point-to-point spread of log p cancelled (that spread alone moves the unpaired figure by +-0.02
      nats at 2,000 points). The unpaired figure is kept as nll_minus_entropy.
    - ed_ratio is the expected energy distance between n model and n true points over that between two
      sets of n true points, both from `pool` x n points of each (metrics.energy_distance_ratio).
    `reference=True` adds the exact model's figures under the same sampler and steps (ed_ratio_exact,
    kl_gap_exact): what a perfect network scores here.
    """
    progress = progress or (lambda what: None)
    if not (isinstance(pool, int) and 1 <= pool <= 20):
        raise ValueError(f"pool must be an integer in [1, 20]; got {pool!r}")
    g = torch.Generator().manual_seed(seed)
    schedule = model.schedule

    def ed_ratio(denoiser, size, label=None):
        """(the ED ratio at sample size `size`, the pool of model samples it used)."""
        x = sample(denoiser, prior_sample(schedule, (pool * size, dist.dim), generator=g), schedule, sampler,
                   steps, generator=g)
        truth = dist.sample(pool * size, label=label, generator=g)[0]
        return energy_distance_ratio(x, truth, size), x

    progress("sampling")
    out = {"sampler": sampler, "steps": steps, "n": n, "ed_ratio": round(ed_ratio(guided(model, None), n)[0], 3)}
    progress("likelihood")
    points = held_out(dist, nll_points, seed)
    entropy, entropy_se = dist.entropy()
    nll_true = -dist.log_prob(points.double()).cpu()
    gap = kl_gaps(model, dist, points, nll_steps, -nll_true)
    nll_model = gap + nll_true
    out.update(kl_gap_nats=round(gap.mean().item(), 4), kl_gap_se=round(gap.std().item() / len(gap) ** 0.5, 4),
               nll_nats=round(nll_model.mean().item(), 4), entropy_nats=round(entropy, 4),
               entropy_se=round(entropy_se, 4), nll_minus_entropy=round(nll_model.mean().item() - entropy, 4))
    if reference:
        progress("the exact model, for reference")
        exact = oracle_model(dist, schedule)
        out["ed_ratio_exact"] = round(ed_ratio(guided(exact, None), n)[0], 3)
        gap_exact = kl_gaps(exact, dist, points, nll_steps, -nll_true)
        out["kl_gap_exact"] = round(gap_exact.mean().item(), 4)
    progress("score error")
    out["score_rel_error"] = relative_score_error(model, dist, schedule)
    if getattr(model, "num_classes", 0):
        progress("conditional sampling")
        per = max(200, n // dist.num_classes // 2)
        cond = {}
        for w in guidances:
            acc, ratios = [], []
            for c in range(dist.num_classes):
                r, xc = ed_ratio(guided(model, c, w), per, label=c)
                acc.append((dist.nearest_label(xc) == c).float().mean().item())
                ratios.append(r)
            cond[f"{w:g}"] = {"accuracy": round(sum(acc) / len(acc), 4),
                              "ed_ratio": round(sum(ratios) / len(ratios), 3)}
        out["conditional"] = cond
    return out


MNIST_SAMPLERS = ("heun", "dpmpp_2m", "ddim", "euler")  # the deterministic samplers compared in docs/measurements.md
MNIST_NFES = (10, 20, 50)
MNIST_GUIDANCES = (0.0, 1.0, 3.0, 5.0)
GRID = {"dpmpp_2m": "uniform_logsnr"}  # each sampler on the grid it is meant for; the rest uniform in t
TARGET = {"nfe": 20, "guidance": (1.0, 3.0), "accuracy": 0.99, "fd_ratio": 2.0}  # the MNIST quality target


def _real_subset(images, labels, per_digit: int, generator) -> torch.Tensor:
    """per_digit random images of each digit 0..9 (without replacement), digit by digit."""
    picks = []
    for c in range(10):
        pool = torch.nonzero(labels == c)[:, 0]
        picks.append(pool[torch.randperm(len(pool), generator=generator)[:per_digit]])
    return images[torch.cat(picks)]


def mnist_reference(classifier, n: int, seed: int = 0, floor_draws: int = 3) -> dict:
    """The real-data side of the MNIST figures: test-set feature statistics and the floor at sample size n.

    Returns {"test_stats": (mu, cov), "fd_floor", "fd_floor_draws", "real_accuracy"}: fd_floor is the mean
    Frechet distance between n training digits (n / 10 of each) and the test set over `floor_draws` draws;
    real_accuracy is the classifier's accuracy on those training digits (what real digits score).
    """
    from toy_data.mnist import load_mnist

    from .classifier import fingerprint, frechet_from_stats, gaussian_stats

    if n % 10 or n < 20:
        raise ValueError(f"--n must be a multiple of 10 (the same number of each digit), at least 20; got {n}")
    x_test, _ = load_mnist("test")
    stored = getattr(classifier, "reference", None)
    if stored is not None and stored["fingerprint"] == fingerprint(x_test):
        test_stats = (stored["mean"], stored["cov"])  # computed on this very test set when it was saved
    else:
        test_stats = gaussian_stats(classifier.embed(x_test))
    x_train, y_train = load_mnist("train")
    per = n // 10
    if per > 5421:  # the rarest training digit (5) has 5,421 images
        raise ValueError(f"--n must be at most 54210 for MNIST (5,421 images of the rarest digit); got {n}")
    g = torch.Generator().manual_seed(seed + 777)
    draws, accs = [], []
    want = torch.arange(10).repeat_interleave(per)
    for _ in range(floor_draws):
        real = _real_subset(x_train, y_train, per, g)
        draws.append(frechet_from_stats(*gaussian_stats(classifier.embed(real)), *test_stats))
        accs.append((classifier.predict(real) == want).float().mean().item())
    return {"test_stats": test_stats, "fd_floor": sum(draws) / len(draws),
            "fd_floor_draws": [round(d, 4) for d in draws], "real_accuracy": sum(accs) / len(accs)}


@torch.no_grad()
def mnist_samples(model, labels: torch.Tensor, x_start: torch.Tensor, sampler: str, nfe: int, guidance: float,
                  batch: int = 500, device="cpu", interval=None) -> torch.Tensor:
    """Class-conditional samples [N, 1, 28, 28] on the CPU, clipped to [-1, 1], from the starting noise x_start."""
    steps = steps_for_nfe(sampler, nfe)
    out = []
    for i in range(0, len(labels), batch):
        lab = labels[i:i + batch].to(device)
        x = sample(guided(model, lab, guidance, interval), x_start[i:i + batch].to(device), model.schedule, sampler, steps,
                   GRID.get(sampler, "uniform_t"), generator=torch.Generator().manual_seed(i))
        out.append(x.clamp(-1, 1).cpu())
    return torch.cat(out)


def evaluate_mnist(model, classifier, n: int = 500, samplers=("dpmpp_2m",), nfes=(20,),
                   guidances=MNIST_GUIDANCES, seed: int = 0, batch: int = 500, device="cpu",
                   progress=None, reference: dict | None = None, interval=None) -> dict:
    """Every MNIST figure of the module docstring: accuracy and Frechet distance per (sampler, NFE, w).

    `model` is a class-conditional MNIST DiffusionModel, `classifier` a diffusion.classifier.MnistClassifier.
    `progress(row)` is called after each setting with its result row. `reference` (from mnist_reference
    with the same n and seed) may be passed to reuse the real-data statistics. `interval` (lam_lo, lam_hi)
    limits guidance to the log-SNR range [lam_lo, lam_hi) (diffusion.samplers.guided).
    """
    from .classifier import frechet_from_stats, gaussian_stats

    if getattr(model, "num_classes", 0) != 10:
        raise ValueError(f"an MNIST model must be class-conditional with 10 classes; this one has "
                         f"{getattr(model, 'num_classes', 0)}")
    ref = reference or mnist_reference(classifier, n, seed)
    per = n // 10
    labels = torch.arange(10).repeat_interleave(per)
    x_start = prior_sample(model.schedule, (n, 1, 28, 28), seed=seed)
    model = model.to(device)
    rows = []
    for sampler in samplers:
        for nfe in nfes:
            for w in guidances:
                start = time.perf_counter()
                x = mnist_samples(model, labels, x_start, sampler, nfe, w, batch=batch, device=device,
                                  interval=interval)
                seconds = time.perf_counter() - start
                pred = classifier.predict(x)
                per_digit = [(pred[labels == c] == c).float().mean().item() for c in range(10)]
                fd = frechet_from_stats(*gaussian_stats(classifier.embed(x)), *ref["test_stats"])
                row = {"sampler": sampler, "nfe": nfe, "steps": steps_for_nfe(sampler, nfe), "guidance": float(w),
                       "interval": None if interval is None else [float(v) for v in interval],
                       "accuracy": round((pred == labels).float().mean().item(), 4),
                       "worst_digit": int(min(range(10), key=lambda c: per_digit[c])),
                       "worst_digit_accuracy": round(min(per_digit), 4),
                       "fd": round(fd, 4), "fd_ratio": round(fd / ref["fd_floor"], 3),
                       "seconds": round(seconds, 2)}
                if nfe == TARGET["nfe"] and TARGET["guidance"][0] <= w <= TARGET["guidance"][1]:
                    row["target_met"] = bool(row["accuracy"] >= TARGET["accuracy"]
                                             and fd <= TARGET["fd_ratio"] * ref["fd_floor"])
                rows.append(row)
                if progress is not None:
                    progress(row)
    return {"n": n, "per_digit": per, "seed": seed, "fd_floor": round(ref["fd_floor"], 4),
            "fd_floor_draws": ref["fd_floor_draws"], "real_accuracy": round(ref["real_accuracy"], 4),
            "target": {"nfe": TARGET["nfe"], "guidance": list(TARGET["guidance"]),
                       "accuracy": TARGET["accuracy"], "fd_ratio": TARGET["fd_ratio"]},
            "results": rows}


def load_diffusion(path) -> tuple:
    """load_checkpoint, with a plain message when the file is the evaluation classifier instead."""
    from .classifier import CLASSIFIER_FORMAT

    try:
        return load_checkpoint(path)
    except CheckpointError as e:
        if CLASSIFIER_FORMAT in e.problem:
            raise CheckpointError(path, "is the MNIST evaluation classifier, not a diffusion model checkpoint; "
                                        "pass it as --classifier") from None
        raise


def kind_of(config: dict, path) -> str:
    """'2d' or 'mnist', from a checkpoint's config; anything else is refused."""
    arch, dataset = config["net"]["arch"], config.get("dataset")
    if arch == "mlp2d":
        return "2d"
    if arch == "unet" and dataset == "mnist":
        return "mnist"
    raise ValueError(f"{path} is a {arch} model of dataset {dataset!r}; this command measures 2-D models "
                     f"and MNIST models")


def build_parser():
    p = cli.ArgumentParser(prog="python -m diffusion.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a .safetensors checkpoint written by diffusion.train")
    p.add_argument("--n", type=cli.positive_int("--n", 20, 20000), default=None,
                   help="samples to compare (2-D: at least 100, default 5000; MNIST: per setting, a multiple "
                        "of 10, default 500)")
    p.add_argument("--seed", type=cli.positive_int("--seed", 0, 2**31 - 1), default=0)
    p.add_argument("--threads", type=cli.positive_int("--threads", 1, 1024), default=None,
                   help="CPU threads for torch (default: torch's own choice; on a busy machine 1 can be much faster)")
    two = p.add_argument_group("2-D models")
    two.add_argument("--sampler", default=None, choices=list(SAMPLERS), help="default heun")
    two.add_argument("--steps", type=cli.positive_int("--steps", 1, 2000), default=None, help="default 50")
    two.add_argument("--pool", type=cli.positive_int("--pool", 1, 20), default=None,
                     help="ed_ratio is estimated from pool x n samples of the model and of the truth, default 8")
    two.add_argument("--reference", action="store_true", default=None,
                     help="also score the exact model the same way (ed_ratio_exact, kl_gap_exact)")
    mn = p.add_argument_group("MNIST models")
    mn.add_argument("--samplers", nargs="+", choices=list(SAMPLERS), default=None,
                    help=f"default dpmpp_2m; docs/measurements.md's table uses {' '.join(MNIST_SAMPLERS)}")
    mn.add_argument("--nfe", nargs="+", type=cli.positive_int("--nfe", 1, 1000), default=None,
                    help="function evaluations per sample, default 20; docs/measurements.md's table uses 10 20 50")
    mn.add_argument("--guidance", nargs="+", type=cli.bounded_float("--guidance", 0, 20), default=None,
                    help="classifier-free guidance weights, default 0 1 3 5")
    cli.add_interval(mn)
    mn.add_argument("--classifier", default=None, help="default checkpoints/mnist_classifier.safetensors")
    mn.add_argument("--batch", type=cli.positive_int("--batch", 1, 100000), default=None,
                    help="images per sampling batch, default 500")
    mn.add_argument("--device", default=None, help="auto (CUDA, then MPS, then CPU; the default), cpu, cuda, "
                                                   "cuda:N, mps")
    mn.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


MNIST_ONLY = ("samplers", "nfe", "guidance", "interval", "classifier", "batch", "device")
TWO_D_ONLY = ("sampler", "steps", "pool", "reference")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    model, config = load_diffusion(args.checkpoint)
    dataset = config.get("dataset")
    kind = kind_of(config, args.checkpoint)
    if kind == "2d":
        extra = [f"--{k}" for k in MNIST_ONLY if getattr(args, k) is not None]
        if extra:
            raise ValueError(f"{' '.join(extra)} only apply to MNIST checkpoints; {args.checkpoint} is a 2-D "
                             f"model (use --sampler and --steps)")
        n = 5000 if args.n is None else args.n
        if n < 100:
            raise ValueError(f"--n must be an integer in [100, 20000] for a 2-D model; got {n}")
        result = evaluate_2d(model, get_dataset(dataset), n=n, sampler=args.sampler or "heun",
                             steps=args.steps or 50, pool=args.pool or 8, reference=bool(args.reference),
                             seed=args.seed)
        json.dump({"checkpoint": args.checkpoint, "dataset": dataset, **result}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    extra = [f"--{k}" for k in TWO_D_ONLY if getattr(args, k) is not None]
    if extra:
        raise ValueError(f"{' '.join(extra)} only apply to 2-D checkpoints; {args.checkpoint} is an MNIST model "
                         f"(use --samplers and --nfe)")
    from .classifier import load_classifier
    from .training import pick_device

    n = 500 if args.n is None else args.n
    device = pick_device(args.device or "auto")
    classifier, clf_config = load_classifier(args.classifier)
    reference = mnist_reference(classifier, n, args.seed)  # checks n before any sampling
    say = (lambda row: None) if args.quiet else (lambda row: sys.stderr.write(
        f"{row['sampler']} {row['nfe']} NFE w={row['guidance']:g}: accuracy {row['accuracy']:.4f}, "
        f"fd {row['fd']:.3f} ({row['fd_ratio']:.2f}x floor), {row['seconds']:.1f} s\n"))
    result = evaluate_mnist(model, classifier, n=n, samplers=args.samplers or ["dpmpp_2m"], nfes=args.nfe or [20],
                            guidances=args.guidance or list(MNIST_GUIDANCES), seed=args.seed,
                            batch=args.batch or 500, device=device, progress=say, reference=reference,
                            interval=args.interval)
    json.dump({"checkpoint": args.checkpoint, "dataset": dataset, "kind": "mnist",
               "steps_done": config.get("train", {}).get("steps_done"), "device": str(device),
               "classifier": args.classifier or "checkpoints/mnist_classifier.safetensors",
               "classifier_test_accuracy": clf_config.get("test_accuracy"), **result}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli.run(main, "python -m diffusion.evaluate"))
