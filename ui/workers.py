"""Heavy page computations in worker processes, so that a class's sessions do not stall each other.

Every session's script runs as a thread of the one server process, and they share Python's GIL. A
sampling run is thousands of small torch calls; between two kernels each must win the GIL back, and
while other sessions' scripts build figures in plain Python that wait dominates: 15 Heun steps of the
moons model on 2,000 points took 0.42 s alone and 34.4 s beside one busy Python thread at Python's
default switch interval (benchmarks/gil_handoff.py). A worker process has its own interpreter and its
own GIL, so the sampling runs at full speed on another core while the server keeps answering.

`offload(fn, *args)` runs `fn(*args)` in the pool and returns its result (an exception raised there is
raised here). Only module-level builders of `ui`/`diffusion` are sent, with models, distributions and
tensors the server itself built: they travel pickled over the pool's private pipe between the server
and its own children, the same way st.cache_data stores results. Nothing a user sends is unpickled.

The pool has DIFFUSION_LAB_WORKERS processes (default: the number of cores minus one, 1 to 4; 0 runs
everything in the server process). Workers start on first use, one torch thread each. If the pool
breaks (a worker killed), that call is computed in the server process and a fresh pool is started
for the next one; after three broken pools in a row (workers that cannot start at all) everything
stays in the server process. GPU work (`on="cuda"`) stays in the server process: a CUDA context per
worker would cost memory for no gain.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

ENV = "DIFFUSION_LAB_WORKERS"
MAX_WORKERS = 16

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_pool_size = 0
_failures = 0  # pools in a row that broke; after MAX_FAILURES this process stops trying
MAX_FAILURES = 3


def worker_count() -> int:
    """Worker processes to use: DIFFUSION_LAB_WORKERS (0..16) if set to a whole number, else cores - 1 in 1..4."""
    raw = os.environ.get(ENV, "").strip()
    if raw.isdigit():
        return min(int(raw), MAX_WORKERS)
    return max(1, min(4, (os.cpu_count() or 1) - 1))


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # as in the server (ui/threads.py): one thread per computation


def _get_pool(n: int) -> ProcessPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size != n:
            if _pool is not None:
                _pool.shutdown(wait=False, cancel_futures=False)
            _pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker)
            _pool_size = n
        return _pool


def _discard(pool: ProcessPoolExecutor) -> None:
    global _pool, _failures
    with _lock:
        if _pool is pool:
            _pool = None
            _failures += 1
    pool.shutdown(wait=False, cancel_futures=True)


def _worked() -> None:
    global _failures
    if _failures:
        with _lock:
            _failures = 0


def pool_usable() -> bool:
    """False once MAX_FAILURES pools in a row broke (say the workers cannot start here): then all is in-process."""
    return _failures < MAX_FAILURES


def offload(fn, *args, on: str = "cpu", **kwargs):
    """fn(*args, **kwargs), computed in a worker process when the work is on the CPU (`on`, the page's
    device) and there are workers; else here."""
    n = worker_count()
    if on != "cpu" or n == 0 or not pool_usable():
        return fn(*args, **kwargs)
    pool = _get_pool(n)
    try:
        future = pool.submit(fn, *args, **kwargs)
    except (BrokenProcessPool, RuntimeError):  # broken, or shut down by another thread's reset
        _discard(pool)
        return fn(*args, **kwargs)
    try:
        result = future.result()
    except BrokenProcessPool:  # a worker died under this call: answer it here, start afresh next time
        _discard(pool)
        return fn(*args, **kwargs)
    _worked()
    return result


def worker_pids() -> list[int]:
    """Process ids of the running workers (for tests and benchmarks)."""
    with _lock:
        return [] if _pool is None else sorted(p.pid for p in (_pool._processes or {}).values())


def shutdown() -> None:
    """Stop the workers and forget past failures (a fresh pool starts on the next offload)."""
    global _pool, _failures
    with _lock:
        pool, _pool, _failures = _pool, None, 0
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)
