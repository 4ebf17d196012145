"""Memorising versus generalising: networks trained on exactly N points, against the ideal denoiser of those N.

For each N in NS the N training points are `ui.memorisation_figures.training_set(dist, N, SEED)`. The ideal
denoiser of that set (`ui.memorisation_figures.memoriser`) can only return its points. A network of the shipped
2-D architecture is trained on the same N points with the shipped recipe (RECIPE) and saved in
checkpoints/memorisation/<dataset>-N<n>.safetensors. Both then sample from one shared noise, and a fresh
sample of the true distribution is the reference for "as far from the training points as new data is".

    python -m checkpoints.build memorisation-nets       # every network of DATASETS x NS (minutes each)
    python -m checkpoints.build memorisation-nets --datasets moons --ns 4 16
    python -m checkpoints.build memorisation-samples    # the page's samples, checkpoints/memorisation/samples.npz

A network for the user's own N or own points (page 6's "Train one yourself") uses USER_RECIPE, the shipped recipe
shortened to seconds, on `user_training_set`, sampled by `compute_one`; its background job is ui/memorisation_live.py.

The samples file stores, per dataset: the weights' fingerprint of every network and a hash of every training
set. The page uses it only when both still match; anything else is sampled live through `ui.workers`. The
file is plain arrays read with allow_pickle=False; a missing or damaged file only means live sampling.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import numpy as np
import torch

from diffusion.nets import MLPConfig
from diffusion.samplers import prior_sample
from diffusion.train import SHIPPED_2D

from . import npz_files
from .energy_maps import weights_fingerprint
from .memorisation_figures import (MEMO_GRID, MEMO_NAMES, MEMO_SAMPLER, MEMO_STEPS, memoriser, nearest_distance,
                                   sample_from, training_set)
from .threads import one_thread

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDER = os.path.join(ROOT, "checkpoints", "memorisation")
PATH = os.path.join(FOLDER, "samples.npz")
FORMAT = "diffusion-lab memorisation samples v1"
DATASETS = ("moons",)
NS = (4, 16, 64, 256, 1000, 2000)
SEED = 0  # the training sets' seed (training_set), as on the page
N_GEN, NOISE_SEED = 1000, 0  # samples per sampler; the shared noise's seed (the true samples use NOISE_SEED + 1)
# The shipped 2-D recipe (diffusion.train SHIPPED_2D, MLPConfig defaults), unconditional: the same network
# that generalises when it sees fresh samples of the whole distribution at every step.
RECIPE = dict(**SHIPPED_2D, width=MLPConfig.width, depth=MLPConfig.depth, seed=0)


def net_path(dataset: str, n: int, folder: str = FOLDER) -> str:
    return os.path.join(folder, f"{dataset}-N{n}.safetensors")


def points_hash(points) -> str:
    """sha256 (16 hex digits) of a training set's float64 coordinates."""
    return hashlib.sha256(np.ascontiguousarray(np.asarray(points, dtype=np.float64)).tobytes()).hexdigest()[:16]


# --- training -----------------------------------------------------------------------------------------------

def train_net(dist, n: int, recipe: dict = RECIPE, callback=None, points=None, should_stop=None):
    """A network of the shipped 2-D architecture trained on the N training points only: (model, TrainResult).
    `points` [N, 2] are the training points (default: training_set(dist, n, SEED)).

    Every batch draws its rows from the N points with replacement (batch 1024 at N = 4: each point ~256 times)."""
    from diffusion.schedules import make_schedule
    from diffusion.models import build_model
    from diffusion.training import TrainConfig, train

    points = (training_set(dist, n, SEED)[0] if points is None else torch.as_tensor(points)).float()  # [N, 2]
    n = len(points)

    def data(b, g):
        return points[torch.randint(n, (b,), generator=g)], None

    config = TrainConfig(steps=recipe["steps"], batch_size=recipe["batch"], lr=recipe["lr"],
                         weighting=recipe["weighting"], ema_decay=recipe["ema"], seed=recipe["seed"], device="cpu")
    model = build_model("points", recipe["parameterization"], make_schedule(recipe["schedule"]), 0,
                        width=recipe["width"], depth=recipe["depth"], dim=dist.dim, seed=recipe["seed"])
    result = train(model, data, config, callback=callback, should_stop=should_stop)
    return result.model.requires_grad_(False), result


def save_net(path, model, dist, dataset: str, n: int, result, recipe: dict = RECIPE) -> dict:
    """Write the network with its training set's size, seed and hash, the recipe and how long it took."""
    import platform

    from diffusion.checkpoints import save_checkpoint

    points = training_set(dist, n, SEED)[0]
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    return save_checkpoint(path, model, dataset=dataset, label_names=[],
                           memorisation={"n": n, "seed": SEED, "points_sha": points_hash(points)},
                           train={**recipe, "steps_done": result.steps_done, "seconds": round(result.seconds, 1),
                                  "final_loss": float(np.mean(result.losses[-100:])), "machine": machine})


def load_nets(dataset: str, ns=NS, folder: str = FOLDER) -> tuple[dict, str | None]:
    """({n: model} of the shipped networks of `dataset`, None) or ({...the ones that loaded}, what is wrong)."""
    from diffusion.checkpoints import CheckpointError, load_checkpoint

    nets, problems = {}, []
    for n in ns:
        path = net_path(dataset, n, folder)
        if not os.path.exists(path):
            continue
        try:
            model, config = load_checkpoint(path, expect={"net.arch": "mlp2d", "dataset": dataset,
                                                          "memorisation.n": n})
        except CheckpointError as e:
            problems.append(str(e))
            continue
        nets[n] = model.requires_grad_(False)
    return nets, "; ".join(problems) or None


# --- sampling -------------------------------------------------------------------------------------------------

def compute(dist, nets: dict, ns=NS, n_gen: int = N_GEN, seed: int = NOISE_SEED, schedule_spec: str = "cosine"):
    """Everything the page shows, unconditional, from one shared noise under the nets' schedule:
    {'true' [n_gen, 2], 'train_<n>' [n, 2], 'ideal_<n>' [n_gen, 2], 'net_<n>' [n_gen, 2] where a net exists}."""
    from diffusion.models import oracle_model
    from diffusion.schedules import make_schedule

    schedule = make_schedule(schedule_spec)
    out = {}
    with one_thread():
        noise = prior_sample(schedule, (n_gen, 2), seed=seed)
        out["true"] = dist.sample(n_gen, generator=torch.Generator().manual_seed(seed + 1))[0].double().numpy()
        for n in ns:
            points, labels = training_set(dist, n, SEED)
            out[f"train_{n}"] = points.numpy()
            out[f"ideal_{n}"] = sample_from(oracle_model(memoriser(dist, points, labels), schedule),
                                                  schedule, noise)
            if n in nets:
                if nets[n].schedule.spec() != schedule.spec():
                    raise ValueError(f"the N = {n} network uses schedule {nets[n].schedule.spec()}, "
                                     f"not {schedule.spec()}")
                out[f"net_{n}"] = sample_from(nets[n], schedule, noise)
    return out


def distances(arrays: dict, ns) -> dict:
    """{sampler: [B] distances to the nearest training point} per n: {n: {...}} (network only where sampled)."""
    out = {}
    for n in ns:
        train = arrays[f"train_{n}"]
        d = {"ideal": nearest_distance(arrays[f"ideal_{n}"], train)}
        if f"net_{n}" in arrays:
            d["net"] = nearest_distance(arrays[f"net_{n}"], train)
        d["true"] = nearest_distance(arrays["true"], train)
        out[n] = d
    return out


def median_se(d) -> float:
    """Standard error of a sample median: sqrt(q (1 - q) / B) / density at the median, the density read from
    the spacing of the order statistics around it (B = len(d); a +-sqrt(B) window)."""
    d = np.sort(np.asarray(d))
    b = len(d)
    k = max(1, int(np.sqrt(b)))
    lo, hi = d[max(0, b // 2 - k)], d[min(b - 1, b // 2 + k)]
    density = (2 * k / b) / max(hi - lo, 1e-12)
    return float(0.5 / np.sqrt(b) / density)


def switch(ns, curves: dict) -> tuple[int | None, int | None]:
    """(the largest N at which the network still copies, the smallest N from which it generalises), from the
    median distances `curves` ({'ideal' | 'net' | 'true': [len(ns)]}); None where there is no such N.

    Copies: the network's median is within 1.5x the ideal denoiser's (whose samples are copies, up to the
    sampler's final noise). Generalises: its median is at least 0.8x that of fresh samples of the data."""
    copies = [n for n, net, ideal in zip(ns, curves["net"], curves["ideal"]) if net < 1.5 * ideal]
    fresh = [n for n, net, true in zip(ns, curves["net"], curves["true"]) if net >= 0.8 * true]
    return (max(copies) if copies else None), (min(fresh) if fresh else None)


def distance_table(d: dict):
    """The page's table for one training set, from its distances ({sampler: [B]}, as `distances` gives per n)."""
    import pandas as pd

    return pd.DataFrame({"sampler": [MEMO_NAMES[k] for k in d],
                         "median distance to nearest": [float(np.median(x)) for x in d.values()],
                         "share closer than 0.02": [float((x < 0.02).mean()) for x in d.values()]})


def verdict(n: int, d: dict) -> str:
    """What one training set's distances ({'ideal' | 'net' | 'true': [B]}) say, in words, by `switch`'s rule."""
    med = {k: float(np.median(x)) for k, x in d.items()}
    copies, fresh = switch([n], {k: [m] for k, m in med.items()})
    if copies and fresh:
        return (f"At N = {n:,} the points are so dense that copies and new points cannot be told apart: the "
                "network's samples are as close to them as the ideal denoiser's and as fresh data's.")
    if copies:
        return (f"At N = {n:,} this network copies its training points: its samples lie as close to them as the "
                "ideal denoiser's (median distance within 1.5 times).")
    if fresh:
        return (f"At N = {n:,} this network generalises: its samples are about as far from the training points as "
                "fresh samples of the data are (median distance at least 0.8 times theirs).")
    return (f"At N = {n:,} this network is in between: its samples are closer to the training points than fresh "
            f"data (median distance {med['net'] / med['true']:.0%} of theirs), but most are not copies.")


# --- a network for the user's own N, or the user's own points (page 6) ------------------------------------------

# The shipped recipe with 1,000 steps at batch 256 instead of 4,000 at 1,024: 16x fewer training rows, 6-8 s on
# the idle 2-core machine and 18-25 s at load average 8-10 (docs/memorisation.md), against 136-250 s. Trained
# less, a network fits its N points less closely, so it copies them only at smaller N than the shipped ones do.
USER_RECIPE = {**RECIPE, "steps": 1000, "batch": 256}
USER_NS = (2, 2000)  # the N a user may ask for; the user's own points (page 8) count as many as they are


def check_n(n) -> int:
    """N as an int, or ValueError naming the parameter and its range."""
    lo, hi = USER_NS
    try:
        ok = not isinstance(n, bool) and float(n).is_integer() and lo <= int(n) <= hi
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(f"training set size N must be a whole number in {lo}..{hi}; got {n!r}")
    return int(n)


def user_training_set(dist, n: int | None, own: bool):
    """(points [N, 2] float64, labels [N]): the user's own points when `own` (dist is page 8's mixture, whose
    components sit on them; N is their number), else N draws of the dataset with seed SEED (training_set)."""
    if own:
        return dist.means.clone(), dist.labels.clone()
    return training_set(dist, check_n(n), SEED)


def compute_one(dist, points, labels, net, n_gen: int = N_GEN, seed: int = NOISE_SEED) -> dict:
    """`compute` for one training set and its network (noise, sampler and seeds as there):
    {'train_<N>', 'ideal_<N>', 'net_<N>', 'true'}; 'true' are fresh samples of `dist`."""
    from diffusion.models import oracle_model

    schedule, n = net.schedule, len(points)
    with one_thread():
        noise = prior_sample(schedule, (n_gen, 2), seed=seed)
        true = dist.sample(n_gen, generator=torch.Generator().manual_seed(seed + 1))[0].double().numpy()
        ideal = sample_from(oracle_model(memoriser(dist, points, labels), schedule), schedule, noise)
        return {f"train_{n}": np.asarray(points, dtype=np.float64), f"ideal_{n}": ideal,
                f"net_{n}": sample_from(net, schedule, noise), "true": true}


# --- the shipped samples file ----------------------------------------------------------------------------------

def build_file(datasets=DATASETS, ns=NS, folder: str = FOLDER, progress=None) -> dict:
    """The arrays of a samples file from the shipped networks in `folder`."""
    from toy_data import get_dataset

    arrays, meta = {}, {"format": FORMAT, "sampler": MEMO_SAMPLER, "steps": MEMO_STEPS,
                        "grid": MEMO_GRID, "n_gen": N_GEN,
                        "noise_seed": NOISE_SEED, "seed": SEED, "datasets": {}}
    for name in datasets:
        dist = get_dataset(name)
        nets, problem = load_nets(name, ns, folder)
        if problem or set(nets) != set(ns):
            raise ValueError(f"{name}: networks missing or unreadable ({problem or sorted(set(ns) - set(nets))}); "
                             "run python -m checkpoints.build memorisation-nets first")
        spec = nets[ns[0]].schedule.spec()
        start = time.perf_counter()
        out = compute(dist, nets, ns, schedule_spec=spec)
        for key, value in out.items():
            arrays[f"{name}/{key}"] = value.astype(np.float32)
        meta["datasets"][name] = {"ns": list(ns), "spec": spec,
                                  "fingerprints": {str(n): weights_fingerprint(nets[n]) for n in ns},
                                  "points_sha": {str(n): points_hash(out[f"train_{n}"]) for n in ns},
                                  "seconds": round(time.perf_counter() - start, 1)}
        if progress is not None:
            progress(name, time.perf_counter() - start)
    arrays["meta"] = np.array(json.dumps(meta))
    return arrays


save = npz_files.save  # atomically, read back by load()


def load(path=PATH) -> tuple[dict | None, str | None]:
    """({'meta': {...}, dataset: {key: float64 array}}, None), or (None, why) when the file is unusable;
    (None, None) when there is no file."""
    name = os.path.basename(path)
    raw, meta, problem = npz_files.read(path, FORMAT, "a memorisation samples file")
    if raw is None:
        return None, problem
    try:
        if not (isinstance(meta.get("n_gen"), int) and isinstance(meta.get("datasets"), dict)
                and isinstance(meta.get("sampler"), str) and isinstance(meta.get("steps"), int)):
            return None, f"{name}: its description lacks the sampler, steps, sample count or datasets"
        out = {"meta": meta}
        for ds, d in meta["datasets"].items():
            ok = (isinstance(d, dict) and isinstance(d.get("ns"), list) and isinstance(d.get("spec"), str)
                  and all(isinstance(n, int) and n >= 1 for n in d["ns"])
                  and all(isinstance(d.get(k), dict) and set(d[k]) == {str(n) for n in d["ns"]}
                          for k in ("fingerprints", "points_sha")))
            if not ok:
                return None, f"{name}: the description of {ds} is incomplete"
            want = {"true": (meta["n_gen"], 2)}
            for n in d["ns"]:
                want.update({f"train_{n}": (n, 2), f"ideal_{n}": (meta["n_gen"], 2), f"net_{n}": (meta["n_gen"], 2)})
            arrays = {}
            for key, shape in want.items():
                a = raw.get(f"{ds}/{key}")
                if a is None or a.shape != shape or a.dtype.kind != "f" or not np.isfinite(a).all():
                    return None, f"{name}: the {key} samples of {ds} are missing or not as described"
                arrays[key] = a.astype(np.float64)
            out[ds] = arrays
    except Exception as e:  # noqa: BLE001 - any damage means: sample live, and say why
        return None, f"{name} could not be read ({type(e).__name__}: {e})"
    return out, None


def stored(store: dict | None, dataset: str, nets: dict, ns=NS) -> dict | None:
    """The stored arrays of `dataset` when they were made by these very networks on these very training sets
    with this code's sampler settings, else None."""
    from toy_data import get_dataset

    if store is None or dataset not in store:
        return None
    meta, d = store["meta"], store["meta"]["datasets"][dataset]
    if (d["ns"] != list(ns) or set(nets) != set(ns) or meta["sampler"] != MEMO_SAMPLER
            or meta["steps"] != MEMO_STEPS or meta.get("grid") != MEMO_GRID
            or meta.get("seed") != SEED or meta.get("n_gen") != N_GEN or meta.get("noise_seed") != NOISE_SEED):
        return None
    dist = get_dataset(dataset)
    for n in ns:
        if (d["fingerprints"][str(n)] != weights_fingerprint(nets[n]) or nets[n].schedule.spec() != d["spec"]
                or d["points_sha"][str(n)] != points_hash(training_set(dist, n, SEED)[0])):
            return None
    return store[dataset]
