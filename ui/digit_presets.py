"""The digit pages' default views, computed ahead of time and shipped in checkpoints/digit_presets.npz.

Sampling MNIST digits takes seconds of CPU even when the machine is idle, and many times that beside a
class. So every view a student sees first, and the common presets next to it, is computed once, here:

    python -m checkpoints.build digit-presets    # the shipped MNIST model; about 28 min on one thread

* page 9: one row of GEN_N samples for each digit and 'no label' at the page's recommended setting
  (DPM-Solver++(2M), STEPS steps, seed SEED) for w = 0, 1 and 3, each guided in INTERVAL or over the whole
  journey, and w = 6 over the whole journey (the guidance sweep). Column j of a row starts from the same
  noise whatever the batch, so any choice of digits and up to GEN_N samples per digit is read from here;
* page 11: each row of the composition presets (every prompt alone and all together, COMPOSE_N samples)
  and the label scores of the first test digit for every number of draws;
* page 10: the sidebar's defaults (Heun, 25 steps, w = 0, t = 0.3): the film strip of every digit choice,
  the first test digit noised to t and back and its survival sweep, and the hundred PCA journeys.

An entry is named by the builder's arguments (`key`). The pages use it only when everything that made it
still holds: the same network weights (`weights_fingerprint`), the same schedule, and the same arguments;
anything else is computed live. Images are stored as uint8 (-1 .. 1 in 255 steps: 0.008 apart, below what a
heat map of 28 x 28 pixels shows), trajectories as float16 and the rest as float32. The file holds plain
arrays read with allow_pickle=False; a missing, damaged or stale file only means live computation.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from diffusion.samplers import GUIDANCE_INTERVAL

from . import npz_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH = os.path.join(ROOT, "checkpoints", "digit_presets.npz")
FORMAT = "diffusion-lab digit presets v1"

# Page 9's recommended setting: DPM-Solver++, 20 steps, w = 1 guided in the core's GUIDANCE_INTERVAL
# (diffusion/samplers.py says what it measured).
SAMPLER, STEPS, SEED = "dpmpp_2m", 20, 0
INTERVAL = GUIDANCE_INTERVAL
GEN_N = 4  # samples per digit stored (the page offers up to 16; more are sampled live)
GEN_SETTINGS = ((0.0, None), (1.0, INTERVAL), (1.0, None), (3.0, INTERVAL), (3.0, None), (6.0, None))
SWEEP_WS = (0.0, 1.0, 3.0, 6.0)  # page 9's guidance sweep, over the whole journey

# Page 11
COMPOSE_PRESETS = {
    "a 3 and an 8": [(3, 2.0), (8, 2.0), (0, 0.0)],
    "a 7 but not a 1": [(7, 3.0), (1, -2.0), (0, 0.0)],
    "a 4 and a 9 but not a 1": [(4, 2.0), (9, 2.0), (1, -1.5)],
}
COMPOSE_N = 8
SCORE_DRAWS = (8, 16, 24, 32)
SCORE_INDEXES = (0,)

# Page 10: the sidebar's defaults (ui/state.py)
JOURNEY_SAMPLER, JOURNEY_STEPS, JOURNEY_T = "heun", 25, 0.3
FILM_DIGITS = (None, *range(10))
PCA_N_PER_DIGIT, PCA_STEPS, PCA_FIT = 10, 20, 2000


def key(kind: str, **args) -> str:
    """The entry's name: its kind and its arguments as canonical JSON (tuples as lists, keys sorted)."""
    return kind + ":" + json.dumps(args, sort_keys=True, separators=(",", ":"))


def gen_args(label, w: float, interval, sampler: str, steps: int, seed: int) -> dict:
    """Page 9's row arguments, normalised: without a label or with w = 0 the interval and w change nothing."""
    if label is None or float(w) == 0:
        w, interval = 0.0, None
    return dict(label=label, w=float(w), interval=None if interval is None else [float(v) for v in interval],
                sampler=sampler, steps=int(steps), seed=int(seed))


def compose_rows(prompts) -> list[list]:
    """The rows page 11 can show for `prompts` [(digit, w)]: each active prompt alone, then all together."""
    active = [[int(c), float(w)] for c, w in prompts if float(w) != 0]
    return ([[p] for p in active] if len(active) > 1 else []) + [active]


# --- encoding ---------------------------------------------------------------------------------------

def to_uint8(images) -> np.ndarray:
    return np.round((np.clip(np.asarray(images, dtype=np.float32), -1, 1) + 1) * 127.5).astype(np.uint8)


def from_uint8(q) -> np.ndarray:
    return np.asarray(q, dtype=np.float32) / 127.5 - 1


def _encode(value: np.ndarray, how: str) -> np.ndarray:
    value = np.asarray(value)
    return {"image": to_uint8, "f16": lambda v: v.astype(np.float16),
            "f32": lambda v: v.astype(np.float32)}[how](value)


DTYPES = {"image": np.uint8, "f16": np.float16, "f32": np.float32}


# --- the file ----------------------------------------------------------------------------------------

class Store:
    """Read-only entries of a digit-presets file."""

    def __init__(self, arrays: dict, meta: dict):
        self.arrays, self.meta = arrays, meta

    def matches(self, fingerprint: str, spec: str) -> bool:
        return self.meta["fingerprint"] == fingerprint and self.meta["spec"] == spec

    def get(self, kind: str, **args) -> dict | None:
        """{field: float32 array, ..., 'seconds': what it took when built}, or None when there is no such entry."""
        e = self.meta["entries"].get(key(kind, **args))
        if e is None:
            return None
        out = {f: (from_uint8(self.arrays[f"{e['id']}.{f}"]) if how == "image"
                   else self.arrays[f"{e['id']}.{f}"].astype(np.float32))
               for f, (how, _) in e["fields"].items()}
        out["seconds"] = float(e["seconds"])
        return out


def load(path=PATH) -> tuple[Store | None, str | None]:
    """(store, None), or (None, why) when the file is unreadable or not a digit-presets file; (None, None) when
    there is no file."""
    name = os.path.basename(str(path))
    arrays, meta, problem = npz_files.read(path, FORMAT, "a digit-presets file")
    if arrays is None:
        return None, problem
    try:
        if not (isinstance(meta.get("fingerprint"), str) and isinstance(meta.get("spec"), str)
                and isinstance(meta.get("entries"), dict)):
            return None, f"{name}: its description lacks the fingerprint, the schedule or the entries"
        for k, e in meta["entries"].items():
            ok = (isinstance(e, dict) and isinstance(e.get("id"), int) and isinstance(e.get("fields"), dict)
                  and isinstance(e.get("seconds"), (int, float)))
            for f, spec in (e.get("fields") or {}).items() if ok else ():
                a = arrays.get(f"{e['id']}.{f}")
                ok = ok and (isinstance(spec, list) and len(spec) == 2 and spec[0] in DTYPES and a is not None
                             and a.dtype == DTYPES[spec[0]] and list(a.shape) == spec[1]
                             and (spec[0] == "image" or bool(np.isfinite(a).all())))
            if not ok:
                return None, f"{name}: the entry {k} is not as described"
    except Exception as e:  # noqa: BLE001 - any damage means: compute live, and say why
        return None, f"{name} could not be read ({type(e).__name__}: {e})"
    return Store(arrays, meta), None


def save(path, entries: dict, fingerprint: str, spec: str) -> None:
    """Write `entries` {key: ({field: (how, array)}, seconds)} atomically."""
    arrays, meta = {}, {"format": FORMAT, "fingerprint": fingerprint, "spec": spec, "entries": {}}
    for i, (k, (fields, seconds)) in enumerate(entries.items()):
        meta["entries"][k] = {"id": i, "seconds": round(float(seconds), 3), "fields": {}}
        for f, (how, value) in fields.items():
            a = _encode(value, how)
            arrays[f"{i}.{f}"] = a
            meta["entries"][k]["fields"][f] = [how, list(a.shape)]
    arrays["meta"] = np.array(json.dumps(meta))
    npz_files.save(path, arrays)


# --- building -----------------------------------------------------------------------------------------

def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def build(model, test_x, test_y, progress=None, pages=("generate", "prompts", "journey")) -> dict:
    """Every entry for `model` (the shipped MNIST model, under its own schedule): {key: (fields, seconds)}.
    `progress(text)` is called after each entry."""
    from . import digit_runs, digits
    from .pca import fit_pca, project, project_trajectory

    sched = model.schedule
    entries = {}

    def keep(k, fields, seconds):
        entries[k] = (fields, seconds)
        if progress is not None:
            progress(f"{len(entries):3d}  {seconds:6.2f} s  {k}")

    if "generate" in pages:
        for w, interval in GEN_SETTINGS:
            labels = [None] if w == 0 else []
            labels += list(range(10))
            for label in labels:
                args = gen_args(label, w, interval, SAMPLER, STEPS, SEED)
                rows, secs = _timed(digits.generate, model, sched, [label], GEN_N, w, SAMPLER, STEPS, SEED, "cpu",
                                    interval)
                keep(key("gen", **args), {"images": ("image", rows[0])}, secs)
    if "prompts" in pages:
        done = set()
        for prompts in COMPOSE_PRESETS.values():
            for row in compose_rows(prompts):
                k = key("compose", prompts=row, sampler=SAMPLER, steps=STEPS, seed=SEED)
                if k in done:
                    continue
                done.add(k)
                (images, _), secs = _timed(digits.compose_grid, model, sched, [tuple(p) for p in row], COMPOSE_N,
                                           SAMPLER, STEPS, SEED, False, "cpu")
                keep(k, {"images": ("image", images[0])}, secs)
        for index in SCORE_INDEXES:
            for draws in SCORE_DRAWS:
                s, secs = _timed(digits.label_scores, model, sched, test_x[index, 0], draws, 0, "cpu")
                keep(key("scores", index=index, draws=draws),
                     {"t": ("f32", s["t"]), "x0": ("f32", s["x0"]), "eps": ("f32", s["eps"]),
                      "mid": ("image", s["mid"]), "mid_t": ("f32", np.array([s["mid_t"]]))}, secs)
    if "journey" in pages:
        sampler, steps, t = JOURNEY_SAMPLER, JOURNEY_STEPS, JOURNEY_T
        for digit in FILM_DIGITS:
            traj, secs = _timed(digit_runs.film_trajectory, model, sched, sampler, steps, digit, 0.0, SEED)
            keep(key("film", digit=digit, w=0.0, sampler=sampler, steps=steps, seed=SEED),
                 {"ts": ("f32", traj.ts), "xs": ("f16", traj.xs), "x0_hats": ("f16", traj.x0_hats)}, secs)
        x0 = test_x[0:1]
        for label in (None, int(test_y[0])):
            r, secs = _timed(digit_runs.noise_and_back, model, sched, x0, t, sampler, steps, label, 0.0)
            keep(key("back", index=0, label=label, w=0.0, t=t, sampler=sampler, steps=steps),
                 {f: ("f32", r[f]) for f in ("x_t", "x0_hat", "back")}, secs)
            sw, secs = _timed(digit_runs.survival, model, sched, x0, sampler, steps, label, 0.0)
            keep(key("survival", index=0, label=label, w=0.0, sampler=sampler, steps=steps),
                 {f: ("f32", v) for f, v in sw.items()}, secs)
        pca = fit_pca(test_x[:PCA_FIT])
        (traj, labels), secs = _timed(digit_runs.many_trajectories, model, sched, 0.0, PCA_N_PER_DIGIT, PCA_STEPS, SEED)
        keep(key("pca", w=0.0, per_digit=PCA_N_PER_DIGIT, steps=PCA_STEPS, seed=SEED, fit=PCA_FIT),
             {"cloud": ("f32", project(pca, test_x[:PCA_FIT])), "ts": ("f32", traj.ts),
              "x_t": ("f32", project_trajectory(pca, traj, sched, "x_t")),
              "x0_hat": ("f32", project_trajectory(pca, traj, sched, "x0_hat")), "labels": ("f32", labels)},
             secs)
    return entries
