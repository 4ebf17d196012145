"""Slow results computed ahead of the click that asks for them (no Streamlit here).

A section whose every control change costs seconds of sampling (page 7's guidance and composed prompts) keeps its
results in a `Prefetcher`, shared by every session. After drawing a result the page names the results a student is
likely to ask for next (the neighbouring values of its sliders); one background thread computes them, one at a
time, at a lower priority than the threads that answer the pages and with one torch thread, as the Train page's
training does. Each new request replaces the queue, so the work follows the latest view and stops once its
neighbourhood is filled. What is stored is read-only and shared, like st.cache_resource's results.

DIFFUSION_LAB_PREFETCH=0 turns the computing ahead off (results are still kept): the test suite sets it, so that
one page test's background work does not run on into the next tests.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import OrderedDict

from .threads import lower_this_threads_priority

_ALL: "weakref.WeakSet[Prefetcher]" = weakref.WeakSet()
ENV = "DIFFUSION_LAB_PREFETCH"


def enabled() -> bool:
    """False when DIFFUSION_LAB_PREFETCH is "0": nothing is computed ahead."""
    return os.environ.get(ENV, "1").strip() != "0"


class Prefetcher:
    """A bounded store of results by key, with a background thread that fills the keys it is asked for ahead."""

    def __init__(self, max_entries: int = 128, ahead: bool = True):
        self.max_entries, self.computes_ahead = int(max_entries), bool(ahead)
        self._store: OrderedDict = OrderedDict()
        self._queue: list = []  # [(key, fn, args)], first first
        self._busy = None  # the key being computed
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self.errors: dict = {}  # key -> the exception its computation raised (not retried ahead)
        _ALL.add(self)

    def get(self, key):
        """The stored result for `key`, or None."""
        with self._lock:
            if key not in self._store:
                return None
            self._store.move_to_end(key)
            return self._store[key]

    def put(self, key, value) -> None:
        with self._lock:
            self._store[key] = value
            self._store.move_to_end(key)
            while len(self._store) > self.max_entries:
                self._store.popitem(last=False)

    def compute(self, key, fn, *args):
        """The result for `key`: the stored one, or fn(*args) computed now (in the caller's thread) and stored.
        When the background thread is computing this very key, wait for it instead of computing it twice."""
        while True:
            with self._lock:
                if key in self._store:
                    self._store.move_to_end(key)
                    return self._store[key]
                if self._busy != key:
                    self._queue = [job for job in self._queue if job[0] != key]
                    break
                self._wake.wait(0.1)
        value = fn(*args)
        self.put(key, value)
        return value

    def ahead(self, jobs) -> None:
        """Compute [(key, fn, args)] in the background, in this order, skipping keys stored or failed before;
        replaces whatever was still queued. Nothing, for a Prefetcher made with ahead=False."""
        if not self.computes_ahead:
            return
        with self._lock:
            self._queue = [job for job in jobs if job[0] not in self._store and job[0] not in self.errors]
            if self._queue and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(target=self._run, name="prefetch", daemon=True)
                self._thread.start()
            self._wake.notify_all()

    def pending(self) -> int:
        """Results queued or being computed."""
        with self._lock:
            return len(self._queue) + (self._busy is not None)

    def _run(self) -> None:
        import torch

        torch.set_num_threads(1)
        lower_this_threads_priority()
        while True:
            with self._lock:
                if not self._queue:
                    self._busy = None
                    self._wake.notify_all()
                    return  # a later ahead() starts a fresh thread
                key, fn, args = self._queue.pop(0)
                self._busy = key
            try:
                value = fn(*args)
            except Exception as e:  # noqa: BLE001 -- the page computes it again in the foreground and reports it
                with self._lock:
                    self.errors[key] = e
            else:
                self.put(key, value)
            with self._lock:
                self._busy = None
                self._wake.notify_all()


def wait_all(timeout: float = 120.0) -> bool:
    """Wait until every Prefetcher's queue is empty (benchmarks and tests); False on timeout."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if not any(p.pending() for p in list(_ALL)):
            return True
        time.sleep(0.05)
    return False
