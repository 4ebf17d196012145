"""ui/runs.py on the Train page: a training's id in the URL, and the message for a training this session
cannot show (its server process stopped, or the page was reloaded)."""

from __future__ import annotations

import time

from tests.apptest import open_page
from ui import runs

KEY = runs.param("train")


def _warnings(at) -> list[str]:
    return [w.value for w in at.warning]


def _train(at, steps: int = 10):
    """Press Train with a tiny run, and wait (rerunning, as the page's polling does) until it is collected."""
    at.number_input(key="train.steps").set_value(steps)
    at.select_slider(key="train.batch").set_value(64)
    at.button(key="train.start").click().run()
    assert not at.exception
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        job = at.session_state["_train_job"]
        if not job.active and job.collected:
            return job
        time.sleep(0.3)
        at.run()
    raise AssertionError("the 10-step training did not finish within 60 s")


def test_a_training_puts_its_id_in_the_url_and_a_reload_in_this_process_says_where_it_went():
    at = open_page("pages/train.py", dataset="moons")
    assert KEY not in at.query_params and not _warnings(at)
    _train(at)
    run_id = at.query_params[KEY]
    run_id = run_id[0] if isinstance(run_id, list) else run_id
    assert runs.known(run_id) and len(run_id) == 12
    at.run()  # the page keeps its own id, and says nothing about it
    assert at.query_params[KEY] in (run_id, [run_id]) and not _warnings(at)
    del at.query_params[KEY]  # as after a visit to another page, which starts from a URL without it
    at.run()
    assert at.query_params[KEY] in (run_id, [run_id]) and not _warnings(at)  # put back
    # A reload: a new session with the same URL, on the same (living) process.
    again = open_page("pages/train.py", dataset="moons", **{KEY: run_id})
    assert _warnings(again) == [runs.LEFT]
    assert KEY not in again.query_params


def test_an_id_from_a_stopped_process_says_the_training_is_lost_until_train_is_pressed():
    at = open_page("pages/train.py", dataset="moons", **{KEY: "0123456789ab"})  # an id no process here started
    assert not runs.known("0123456789ab")
    assert _warnings(at) == [runs.LOST] and "stopped" in runs.LOST and "Train" in runs.LOST
    assert KEY not in at.query_params  # dropped: a second reload would not repeat it
    at.run()  # the message stays through the page's other reruns
    assert _warnings(at) == [runs.LOST]
    _train(at)  # a new training clears it and names itself in the URL
    assert not _warnings(at) and runs.known(at.query_params[KEY])
