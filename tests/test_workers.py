"""ui/workers.py: heavy page computations in worker processes, with the same results as in the server."""

import os

import pytest
import torch

from diffusion.models import oracle_model
from diffusion.schedules import make_schedule
from toy_data import get_dataset
from ui import reverse, workers


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setenv(workers.ENV, "1")
    workers.shutdown()
    yield
    workers.shutdown()


def _die_outside(parent: int) -> str:
    """Kills the worker it runs in; in the parent it just answers."""
    if os.getpid() != parent:
        os._exit(3)
    return "answered in the server"


def test_a_sampling_run_in_a_worker_equals_the_same_run_in_process(fresh):
    dist, sched = get_dataset("moons"), make_schedule("cosine")
    oracle = oracle_model(dist, sched)
    assert workers.offload(os.getpid) != os.getpid()  # it really ran elsewhere
    there = workers.offload(reverse.run, oracle, sched, "heun", 6, 200, 3, 1, 0.0)
    here = reverse.run(oracle, sched, "heun", 6, 200, 3, 1, 0.0)
    assert torch.equal(there.xs, here.xs) and torch.equal(there.x0_hats, here.x0_hats)
    assert len(workers.worker_pids()) == 1


def test_errors_raised_in_a_worker_reach_the_caller(fresh):
    dist, sched = get_dataset("moons"), make_schedule("cosine")
    with pytest.raises(ValueError, match="sampler"):
        workers.offload(reverse.run, oracle_model(dist, sched), sched, "no-such-sampler", 6, 10)
    assert workers.pool_usable()  # an error of the computation is not a broken pool


def test_a_killed_worker_costs_one_call_in_process_then_a_fresh_pool(fresh):
    assert workers.offload(_die_outside, os.getpid()) == "answered in the server"
    assert workers.offload(os.getpid) not in (os.getpid(), None)  # a new pool, working
    assert workers.pool_usable()


@pytest.mark.slow  # starts and kills a worker process MAX_FAILURES times
def test_workers_that_keep_dying_are_given_up(fresh):
    for _ in range(workers.MAX_FAILURES):
        assert workers.offload(_die_outside, os.getpid()) == "answered in the server"
    assert not workers.pool_usable()
    assert workers.offload(os.getpid) == os.getpid()  # everything in the server from now on


@pytest.mark.parametrize("raw, expected", [("0", 0), ("3", 3), ("99", workers.MAX_WORKERS)])
def test_worker_count_follows_the_environment(monkeypatch, raw, expected):
    monkeypatch.setenv(workers.ENV, raw)
    assert workers.worker_count() == expected


@pytest.mark.parametrize("raw", ["", "-1", "two", "1.5"])
def test_a_worker_count_that_is_not_a_whole_number_gives_the_default(monkeypatch, raw):
    monkeypatch.setenv(workers.ENV, raw)
    assert workers.worker_count() == max(1, min(4, (os.cpu_count() or 1) - 1))


def test_no_workers_means_in_process(fresh, monkeypatch):
    monkeypatch.setenv(workers.ENV, "0")
    assert workers.offload(os.getpid) == os.getpid() and workers.worker_pids() == []
    monkeypatch.setenv(workers.ENV, "1")
    assert workers.offload(os.getpid, on="cuda") == os.getpid()  # GPU work stays in the server


def test_a_worker_importing_the_app_as_its_main_module_draws_nothing():
    """Spawned workers import the server's __main__ (Streamlit makes that app.py) as "__mp_main__"; it must
    not run the app there (it once printed "missing ScriptRunContext" warnings and ran the home page)."""
    import runpy
    import sys

    before = set(sys.modules)
    names = runpy.run_path(os.path.join(os.path.dirname(os.path.dirname(__file__)), "app.py"), run_name="__mp_main__")
    assert callable(names["main"]) and "st" not in names
    assert not {m for m in set(sys.modules) - before if m.split(".")[0] in ("streamlit", "ui")}
