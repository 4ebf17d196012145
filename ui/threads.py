"""Torch threading in the app: one intra-op thread per computation.

The pages run many small tensor operations (a grid of a few thousand points, a 50-step sampler), and
several sessions (a class) may run them at once, with a training thread beside them. Measured on a
2-core machine under load, torch's default pool of two OpenMP threads fighting over the cores ran
these 10-40x slower than one thread (0.8 s against 0.02 s for one sampling run). app.py therefore
sets one thread for the whole process; `one_thread()` marks the code that relies on it, and sets it
again where a test or a script imports the builders without app.py.

It does not restore the previous value afterwards: torch's setting is process-wide, so restoring
it from one session would change it under another session's running computation.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager

import torch


# How long a thread may hold Python's GIL while another waits for it (seconds; CPython's default is 5 ms).
# A sampling run is thousands of small torch calls; each releases the GIL for its kernel and must win it
# back before the next. With another session's script running plain Python (building a figure), every
# win-back waited up to the full 5 ms: 15 Heun steps of the moons model on 2,000 points took 34.4 s
# instead of 0.42 s beside one busy Python thread. At 0.2 ms they took 1.47 s, and the busy thread lost
# ~13% of its throughput (measured on the 2-core machine: benchmarks/gil_handoff.py).
SWITCH_INTERVAL = 2e-4


def quick_gil_handoff(interval: float = SWITCH_INTERVAL) -> None:
    """Let threads waiting for the GIL (torch between kernels, the server's event loop) get it sooner."""
    if sys.getswitchinterval() != interval:
        sys.setswitchinterval(interval)


def use_one_thread() -> None:
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


@contextmanager
def one_thread():
    use_one_thread()
    yield


@contextmanager
def all_cores():
    """Every core for one large batched computation (a UNet on a batch of images), then one thread again.

    Convolutions on a batch of digits do scale with threads (16 guided MNIST samples at 20 NFE: 2.2 s on
    one thread, 1.3 s on two, measured on the 2-core machine). The setting is process-wide, so while
    this runs another session's small operations may also get several threads: slower for them at
    worst, never wrong.
    """
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        yield
    finally:
        torch.set_num_threads(1)


BACKGROUND_NICE = 10  # how much lower than the pages a training thread runs (Linux niceness, 0..19)


def lower_this_threads_priority(nice: int = BACKGROUND_NICE) -> bool:
    """Make the calling thread yield the CPU to the pages' script threads (Linux only; True if it did).

    On Linux every thread has its own niceness, so a training thread can run at nice 10 while the
    threads that answer slider moves stay at 0: the scheduler then gives a page's rerun the core first,
    and the training takes what is left. Elsewhere this does nothing. Priority cannot help with Python's
    GIL, but a training step spends most of its time in torch kernels, which release it.
    """
    if not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"):
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
        return True
    except OSError:
        return False


class BackgroundJob:
    """The thread handling of a page's background job (the Train page's training, page 6's memorisation run):
    `start` runs the subclass's `_run` in a daemon thread named `name`, `request_stop` asks it to stop (the job
    polls `_stop`), `join` waits. `_lock` guards whatever the job shares with the page; `_state` starts "new"
    and is "queued" once started."""

    def __init__(self, name: str):
        self._name = name
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._state = "new"

    def _run(self) -> None:  # pragma: no cover - every job defines its own
        raise NotImplementedError

    def start(self):
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        with self._lock:
            self._state = "queued"
        self._thread.start()
        return self

    ACTIVE = ("queued", "running", "evaluating")  # the states in which the job still holds or waits for work

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    @property
    def active(self) -> bool:
        return self.state in self.ACTIVE

    def request_stop(self) -> None:
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
