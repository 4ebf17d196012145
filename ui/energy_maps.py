"""The Energy page's learned maps for the shipped 2-D models, computed ahead of time.

A learned energy map is LEARNED_GRID^2 probability-flow ODE solves (`ui.energy.learned_energy`), a second
or more of CPU for each (dataset, label, t). A class moving the t slider asks for many of them at once, so
for the shipped models under their own schedule every map the page can show (t on the page's 0.05 grid,
every label and "none") is computed once, here, and shipped in checkpoints/energy_maps.npz:

    python -m checkpoints.build energy-maps                # all shipped 2-D models, two processes; 6 min
    python -m checkpoints.build energy-maps --datasets moons --jobs 1

The page uses a stored map only when everything that made it still holds: the same network weights (a
fingerprint of the tensors, so a retrained checkpoint is never shown stale maps), schedule, grid, ODE steps,
box and t. Anything else (a model trained in the session, another schedule) is computed live as before.
The file is plain arrays read with allow_pickle=False; a missing or unreadable file only means live maps.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from . import npz_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH = os.path.join(ROOT, "checkpoints", "energy_maps.npz")
FORMAT = "diffusion-lab energy maps v1"
GRID, STEPS, T_STEP = 40, 16, 0.05  # the Energy page's LEARNED_GRID, ODE_STEPS and MAP_T_STEP


def t_values(t_step: float = T_STEP) -> list[float]:
    k = int(round(1 / t_step))
    return [round(i * t_step, 4) for i in range(k + 1)]


def weights_fingerprint(model) -> str:
    """sha256 (16 hex digits) over the network's tensors, names and shapes: equal weights, equal fingerprint."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.net.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _half(schedule, t: float) -> float:
    from .figures import view_half_width

    alpha, sigma = (float(a) for a in schedule.alpha_sigma(t))
    return view_half_width(alpha, sigma)


def _one_dataset(name: str, grid: int, steps: int, t_step: float) -> dict:
    """Every map of one shipped model: {'E' [labels + 1, T, grid, grid] float16, 'seconds', meta...}."""
    from diffusion.checkpoints import load_checkpoint

    from .energy import learned_energy

    torch.set_num_threads(1)
    model, _ = load_checkpoint(os.path.join(ROOT, "checkpoints", f"{name}.safetensors"), expect={"net.arch": "mlp2d"})
    model.requires_grad_(False)
    ts = t_values(t_step)
    labels = [None, *range(model.num_classes)]
    maps = np.zeros((len(labels), len(ts), grid, grid), dtype=np.float16)
    seconds = np.zeros((len(labels), len(ts)))
    for i, label in enumerate(labels):
        for j, t in enumerate(ts):
            _, e, secs = learned_energy(model, t, label, grid, _half(model.schedule, t), steps)
            maps[i, j] = np.clip(e, -6e4, 6e4)  # float16's range; the page caps its colours far below
            seconds[i, j] = secs
    return {"E": maps, "seconds": seconds, "fingerprint": weights_fingerprint(model), "spec": model.schedule.spec(),
            "t": ts, "half": [_half(model.schedule, t) for t in ts], "labels": len(labels) - 1}


def build(datasets, grid: int = GRID, steps: int = STEPS, t_step: float = T_STEP, jobs: int = 2,
          progress=None) -> dict[str, np.ndarray]:
    """The arrays of an energy-maps file for `datasets` (shipped checkpoint names). `progress(name, seconds)`
    is called as each dataset finishes."""
    arrays, meta = {}, {"format": FORMAT, "grid": grid, "steps": steps, "t_step": t_step, "datasets": {}}
    start = time.perf_counter()

    def keep(name, out):
        arrays[f"E_{name}"] = out.pop("E")
        arrays[f"seconds_{name}"] = out.pop("seconds")
        meta["datasets"][name] = out
        if progress is not None:
            progress(name, time.perf_counter() - start)

    if jobs <= 1:  # in this process (torch threads restored afterwards)
        threads = torch.get_num_threads()
        try:
            for name in datasets:
                keep(name, _one_dataset(name, grid, steps, t_step))
        finally:
            torch.set_num_threads(threads)
    else:  # fresh processes (spawn: no fork of a process that already runs threads)
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
        try:
            futures = {name: pool.submit(_one_dataset, name, grid, steps, t_step) for name in datasets}
            for name, future in futures.items():
                keep(name, future.result())
        finally:
            pool.shutdown(cancel_futures=True)
    arrays["meta"] = np.array(json.dumps(meta))
    return arrays


save = npz_files.save  # atomically, read back by load()


class Store:
    """Read-only maps from an energy-maps file; `lookup` answers only when every condition matches."""

    def __init__(self, arrays: dict, meta: dict):
        self.arrays, self.meta = arrays, meta

    def lookup(self, dataset: str, fingerprint: str, spec: str, label, t: float, grid: int, steps: int,
               half: float):
        """(xs [grid], E [grid, grid] float64, seconds it took when computed) or None."""
        d = self.meta["datasets"].get(dataset)
        if (d is None or d["fingerprint"] != fingerprint or d["spec"] != spec or self.meta["grid"] != grid
                or self.meta["steps"] != steps):
            return None
        t = round(float(t), 4)
        if t not in d["t"]:
            return None
        j = d["t"].index(t)
        i = 0 if label is None else int(label) + 1
        if not (0 <= i <= d["labels"]) or abs(d["half"][j] - half) > 1e-9:
            return None
        e = self.arrays[f"E_{dataset}"][i, j].astype(np.float64)
        return np.linspace(-half, half, grid), e, float(self.arrays[f"seconds_{dataset}"][i, j])


def load(path=PATH) -> tuple[Store | None, str | None]:
    """(store, None), or (None, why) when the file is missing, unreadable or not an energy-maps file."""
    arrays, meta, problem = npz_files.read(path, FORMAT, "an energy-maps file")
    if arrays is None:
        return None, problem
    try:
        if not (isinstance(meta.get("grid"), int) and isinstance(meta.get("steps"), int)
                and isinstance(meta.get("datasets"), dict)):
            return None, f"{os.path.basename(path)}: its description lacks the grid, steps or datasets"
        for name, d in meta["datasets"].items():
            e, s = arrays[f"E_{name}"], arrays[f"seconds_{name}"]
            ok = (isinstance(d, dict) and isinstance(d.get("fingerprint"), str) and isinstance(d.get("spec"), str)
                  and isinstance(d.get("labels"), int) and isinstance(d.get("t"), list)
                  and isinstance(d.get("half"), list) and len(d["half"]) == len(d["t"]))
            want = (d["labels"] + 1, len(d["t"]), meta["grid"], meta["grid"]) if ok else None
            if not ok or e.shape != want or s.shape != want[:2] or e.dtype.kind != "f" or s.dtype.kind != "f":
                return None, f"{os.path.basename(path)}: the maps of {name} are not as described"
    except Exception as e:  # noqa: BLE001 - any damage means: compute live, and say why
        return None, f"{os.path.basename(path)} could not be read ({type(e).__name__}: {e})"
    return Store(arrays, meta), None
