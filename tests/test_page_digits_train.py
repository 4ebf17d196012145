"""12 · Train digits: live MNIST training in a background thread, Stop, and the trained model serving pages 9-11."""

from __future__ import annotations

import json
import time

import pytest

from apptest import open_page
from ui import digit_training, runs
from ui.models import DIGITS

JOB = "_digit_train_job"
PAGE = "pages/digits_train.py"


@pytest.fixture(autouse=True)
def full_priority(monkeypatch):
    """The job's thread keeps the test's priority: at niceness +10 on a machine shared with other busy processes it
    gets a few percent of a core, and a 20-step run could take minutes (ui/threads.py tests the lowering itself)."""
    monkeypatch.setattr(digit_training, "lower_this_threads_priority", lambda: False)


def _wait(at, limit: float = 600.0, until=None):
    """Rerun the page (as the fragment's polling does) until `until(job)`, or until the job's model is collected."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        at.run()
        assert not at.exception
        job = at.session_state[JOB]
        if until is not None and until(job):
            return job
        if until is None and not job.active and job.collected:
            at.run()
            return job
        time.sleep(0.3)
    raise AssertionError(f"training did not finish in {limit} s")


def _grid(at) -> dict | None:
    for c in at.get("plotly_chart"):
        fig = json.loads(c.proto.spec)
        if fig["layout"].get("title", {}).get("text", "").startswith("Step "):
            return fig
    return None


def test_the_page_opens_ready_to_train():
    at = open_page(PAGE)
    assert at.title[0].value == "12 · Train digits"
    assert not at.error and not at.button(key="digits_train.start").disabled
    assert at.number_input(key="digits_train.steps").value == digit_training.LIVE["steps"]
    assert any("Press **Train** to start" in i.value for i in at.info)
    assert not [r for r in at.radio if r.key == "digits_train.source"]  # no trained model yet: no choice of model
    assert len(at.latex) == 1 and "varepsilon" in at.latex[0].value  # the loss, as on page 5


@pytest.mark.slow
def test_train_draws_the_grid_then_serves_the_digit_pages(monkeypatch):
    monkeypatch.setattr(digit_training, "JUDGE_N", 20)  # the page's judge on 2 of each digit: the path, not the figure
    monkeypatch.setenv("DIFFUSION_LAB_WORKERS", "0")  # page 9 samples in this process: no worker pool to start
    # page 9 with one sample per digit and no guidance sweep: the trained model's rows are not in the presets
    at = open_page(PAGE, timeout=600, **{"digits.per": "1", "digits.sweep.on": "false", "sampler": "ddim", "steps": "3",
                                         "digits.sidebar": "true"})
    at.number_input(key="digits_train.steps").set_value(20)
    at.button(key="digits_train.start").click().run()
    assert not at.exception and not at.error
    assert at.button(key="digits_train.start").disabled  # no second job while one runs
    job = _wait(at)
    assert job.state == "done" and job.result.steps_done == 20 and job.config.batch_size == digit_training.LIVE["batch"]
    grid = _grid(at)
    assert grid is not None and grid["layout"]["title"]["text"].startswith("Step 20:")  # the final EMA model's grid
    assert [t for t in grid["layout"]["yaxis"]["ticktext"]] == [str(d) for d in range(10)]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Steps"] == "20"
    for w in (2.0, 0.0):  # the judged accuracy is on the page, as the job measured it
        label = "Read as asked, w = 2" if w else "Read as asked, unguided"
        assert metrics[label] == f"{100 * job.accuracy[w][0]:.1f}%"
    assert any("The lab's classifier read as the asked digit" in m.value for m in at.markdown)
    model, info = at.session_state["trained"][DIGITS]
    assert model is job.result.model and info["train"]["steps_done"] == 20 and info["net"]["base"] == 8
    assert at.radio(key="digits_train.source").value == "session"
    # page 9 now draws with the trained model, and says so
    at.switch_page("pages/digits_generate.py").run()
    assert not at.exception and not at.error
    assert any("the one you trained" in i.value for i in at.info)
    # back on page 12 the shipped model is chosen again; page 9 says that too
    at.switch_page(PAGE).run()
    at.radio(key="digits_train.source").set_value("shipped").run()
    assert not at.exception
    at.switch_page("pages/digits_generate.py").run()
    assert not at.exception and not any("the one you trained" in i.value for i in at.info)
    assert any("the shipped model" in c.value for c in at.caption)


@pytest.mark.slow
def test_stop_keeps_the_model_trained_so_far(monkeypatch):
    monkeypatch.setattr(digit_training, "JUDGE_N", 20)
    at = open_page(PAGE)
    at.number_input(key="digits_train.steps").set_value(20000)
    at.button(key="digits_train.start").click().run()
    _wait(at, until=lambda j: j.progress()["step"] >= 5)
    at.button(key="digits_train.stop").click().run()
    job = _wait(at)
    assert job.stop_requested and 5 <= job.result.steps_done < 20000
    assert any("Stopped by you" in i.value for i in at.info)
    assert at.session_state["trained"][DIGITS][1]["train"]["steps_done"] == job.result.steps_done
    assert job.accuracy is not None  # the kept model is judged too


def test_bad_settings_and_a_missing_classifier_are_reported(monkeypatch, tmp_path):
    real = digit_training.live_config
    monkeypatch.setattr(digit_training, "live_config", lambda steps, **kw: real(5, **kw))  # a value the widget cannot send
    broken = tmp_path / "classifier.safetensors"
    broken.write_bytes(b"not a checkpoint")
    monkeypatch.setattr("diffusion.classifier.DEFAULT_PATH", str(broken))
    at = open_page(PAGE)
    assert any("classifier could not be loaded" in w.value and "classifier.safetensors" in w.value for w in at.warning)
    at.button(key="digits_train.start").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Cannot train with these settings: training steps must be a whole number "
                                           "in 20..20000; got 5"]
    assert JOB not in at.session_state


def test_a_training_lost_with_its_server_process_is_reported():
    key = runs.param("digits_train")
    at = open_page(PAGE, **{key: "0123456789ab"})  # an id no process here started
    assert [w.value for w in at.warning] == [runs.LOST]
    assert key not in at.query_params  # dropped: a second reload would not repeat it


def test_a_new_model_is_chosen_even_after_the_shipped_one_was(monkeypatch):
    """The choice follows the session: switched to the shipped model, then a new model arrives: the new one serves."""
    monkeypatch.setattr(digit_training, "JUDGE_N", 20)
    at = open_page(PAGE)
    model = digit_training.build_live_model(0, base=8, mults=(1, 2))
    at.session_state["trained"] = {DIGITS: (model, {"train": {"steps_done": 1}, "id": "a"})}
    at.run()
    assert at.radio(key="digits_train.source").value == "session"
    at.radio(key="digits_train.source").set_value("shipped").run()
    assert at.session_state["digits.source"] == "shipped"
    at.run()
    assert at.radio(key="digits_train.source").value == "shipped"  # it stays through reruns
    at.session_state["digits.source"] = "session"  # what collecting a finished training does
    at.run()
    assert not at.exception and at.radio(key="digits_train.source").value == "session"


@pytest.mark.slow  # each page samples with both models
@pytest.mark.parametrize("page", ["pages/digits_journey.py", "pages/digits_prompts.py"])
def test_pages_10_and_11_use_the_session_model_and_say_so(monkeypatch, page):
    monkeypatch.setenv("DIFFUSION_LAB_WORKERS", "0")  # sampled in this process: no worker pool to start
    at = open_page("pages/home.py", sampler="ddim", steps="3")
    model = digit_training.build_live_model(0)  # untrained: what matters is which model the page takes
    at.session_state["trained"] = {DIGITS: (model, {"parameterization": "v", "schedule": model.schedule.spec(),
                                                    "train": {"steps_done": 5, "seconds": 1.0}, "id": "t"})}
    at.switch_page(page).run()
    assert not at.exception and not at.error
    assert any("the one you trained" in i.value and "5 steps" in i.value for i in at.info)
    at.session_state["digits.source"] = "shipped"
    at.run()
    assert not any("the one you trained" in i.value for i in at.info)
    assert any("the shipped model" in c.value for c in at.caption)
