"""ui.prefetch: results computed once, ahead in a background thread, never twice at the same time."""

from __future__ import annotations

import threading
import time

import pytest

from ui.prefetch import Prefetcher, wait_all


def test_compute_stores_and_ahead_fills_in_the_background():
    calls = []

    def slow(x):
        calls.append(x)
        time.sleep(0.02)
        return x * x

    p = Prefetcher(max_entries=3)
    assert p.get("a") is None and p.compute("a", slow, 2) == 4 and p.get("a") == 4
    assert p.compute("a", slow, 2) == 4 and calls == [2]  # stored: not computed again
    p.ahead([("b", slow, (3,)), ("c", slow, (4,)), ("a", slow, (2,))])  # "a" is stored: skipped
    assert wait_all(10) and p.pending() == 0
    assert (p.get("b"), p.get("c")) == (9, 16) and calls == [2, 3, 4]
    p.put("d", 0)  # the oldest entry goes past max_entries
    assert p.get("a") is None and p.get("d") == 0


def test_a_new_request_replaces_the_queue():
    gate = threading.Event()
    done = []

    def job(x):
        gate.wait(5)
        done.append(x)
        return x

    p = Prefetcher()
    p.ahead([(i, job, (i,)) for i in range(5)])
    time.sleep(0.05)  # the thread has taken job 0 and waits on the gate
    p.ahead([("new", job, ("new",))])
    gate.set()
    assert wait_all(10)
    assert done == [0, "new"]  # 1..4 were dropped: the latest view's neighbours only


def test_the_foreground_waits_for_the_key_the_thread_is_computing():
    started, calls = threading.Event(), []

    def job(x):
        calls.append(x)
        started.set()
        time.sleep(0.3)
        return x + 1

    p = Prefetcher()
    p.ahead([("k", job, (1,))])
    assert started.wait(5)
    assert p.compute("k", job, 1) == 2 and calls == [1]  # waited for the thread's result, did not run it again


def test_a_failing_job_is_kept_out_of_the_queue_and_raises_in_the_foreground():
    def bad():
        raise ValueError("weights cannot be normalised")

    p = Prefetcher()
    p.ahead([("bad", bad, ())])
    assert wait_all(10)
    assert isinstance(p.errors["bad"], ValueError) and p.get("bad") is None
    p.ahead([("bad", bad, ())])
    assert p.pending() == 0  # not retried in the background
    with pytest.raises(ValueError, match="normalised"):
        p.compute("bad", bad)


def test_ahead_can_be_turned_off(monkeypatch):
    from ui import prefetch

    monkeypatch.setenv(prefetch.ENV, "0")
    assert not prefetch.enabled()
    monkeypatch.setenv(prefetch.ENV, "1")
    assert prefetch.enabled()
    p = Prefetcher(ahead=False)
    p.ahead([("k", lambda: 1, ())])
    assert p.pending() == 0 and p.get("k") is None and p.compute("k", lambda: 1) == 1
