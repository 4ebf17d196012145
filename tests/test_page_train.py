"""5 · Train: live training in a background thread, Stop, and the trained model serving the sidebar."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import numpy as np
import plotly.io as pio
import pytest
import torch
from streamlit.testing.v1 import AppTest

from diffusion.schedules import make_schedule
from toy_data import get_dataset
from ui.training import DEFAULTS, TrainingJob, eta_text, loss_figure, make_config, samples_figure, smooth

ROOT = Path(__file__).resolve().parent.parent
JOB = "_train_job"


def _arr(v) -> np.ndarray:
    """A plotly array from figure JSON (plotly writes numeric arrays as base64 'bdata')."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
    return np.asarray(v)


def _page(**query):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update(**query)
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception
    return at


def _wait(at, limit: float = 60.0, until=None):
    """Rerun the page (as the fragment's polling does) until the job's model is collected."""
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


def test_train_short_run_serves_the_sidebar():
    at = _page(dataset="moons")
    assert at.sidebar.radio(key="model").options == ["shipped"]  # no session model yet
    assert at.number_input(key="train.steps").value == DEFAULTS["steps"]
    at.selectbox(key="train.param").set_value("eps")
    at.selectbox(key="train.weighting").set_value("eps")
    at.number_input(key="train.steps").set_value(30)
    at.select_slider(key="train.batch").set_value(128)
    at.button(key="train.start").click().run()
    assert not at.exception and not at.error
    job = _wait(at)
    assert job.state == "done" and job.result.steps_done == 30 and job.parameterization == "eps"
    assert job.config.batch_size == 128 and job.config.weighting == "eps"
    # the model is in the session store and the sidebar selected it
    model, info = at.session_state["trained"]["moons"]
    assert info["parameterization"] == "eps" and info["schedule"] == make_schedule("cosine").spec()
    assert info["train"]["steps_done"] == 30 and info["metrics"]["ed_ratio"] > 0
    assert at.sidebar.radio(key="model").options == ["shipped", "session"]
    assert at.sidebar.radio(key="model").value == "session"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Steps"] == "30" and float(metrics["ED ratio"]) == pytest.approx(job.ed_ratio, abs=0.01)
    # the live figures: a log-scale loss curve with 30 steps, and learned samples beside exact ones
    figs = [pio.from_json(c.proto.spec) for c in at.get("plotly_chart")]
    loss = next(f for f in figs if f.layout.title.text == "Training loss")
    assert loss.layout.yaxis.type == "log" and list(_arr(loss.data[0].x)) == list(range(1, 31))
    samples = next(f for f in figs if f.layout.annotations and f.layout.annotations[0].text == "Exact")
    assert [a.text for a in samples.layout.annotations] == ["Exact", "Learned, step 30"]
    learned = [t for t in samples.data if t.type == "scattergl" and t.xaxis == "x2"]
    assert sum(len(_arr(t.x)) for t in learned) == 300  # the EMA model's samples
    assert not at.button(key="train.start").disabled  # widgets are free again
    assert not any("This run trains on" in i.value for i in at.info)
    # the sidebar moves on: the result keeps saying what it was trained on
    at.sidebar.selectbox(key="dataset").set_value("8gaussians").run()
    assert not at.exception
    note = next(i.value for i in at.info if "This run trains on" in i.value)
    assert "**Two moons**" in note and "eps-prediction" in note and "Cosine" in note


def test_stop_keeps_the_model_trained_so_far():
    at = _page(dataset="circles")
    at.number_input(key="train.steps").set_value(20000)
    at.select_slider(key="train.batch").set_value(64)
    at.button(key="train.start").click().run()
    assert at.button(key="train.start").disabled  # no second job while one runs
    _wait(at, until=lambda j: j.progress()["step"] >= 5)
    at.button(key="train.stop").click().run()
    job = _wait(at)
    assert job.stop_requested and 5 <= job.result.steps_done < 20000
    assert "stopped by request" in job.result.stopped
    assert any("Stopped by you" in i.value for i in at.info)
    assert at.session_state["trained"]["circles"][1]["train"]["steps_done"] == job.result.steps_done
    assert at.sidebar.radio(key="model").value == "session"


def test_bad_settings_are_reported():
    with pytest.raises(ValueError, match="training steps must be in 10..20000"):
        make_config(5, 64, 1e-3, "v", "cpu")
    with pytest.raises(ValueError, match="unknown loss weighting"):
        make_config(100, 64, 1e-3, "nope", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            make_config(100, 64, 1e-3, "v", "cuda")


def test_nan_stop_and_thread_errors_are_kept_on_the_job():
    dist = get_dataset("moons")
    job = TrainingJob(dist, "moons", "moons", "v", make_schedule("cosine"), make_config(10, 32, 1.0, "v", "cpu"))
    job.start().join(60)
    assert job.state == "done" and job.result.steps_done == 10  # lr 1 with clipping still trains 10 steps
    broken = TrainingJob(dist, "moons", "moons", "v", make_schedule("cosine"), make_config(10, 32, 1e-3, "v", "cpu"))
    broken.dist = None  # sampling fails inside the thread: reported, not a dead page
    broken.start().join(60)
    assert broken.state == "failed" and "AttributeError" in broken.error


def test_pure_builders():
    assert np.allclose(smooth([1, 3, 5], window=2), [1, 2, 4])
    assert eta_text(0, 100, 0) == "step 0 / 100"
    assert eta_text(50, 100, 10) == "step 50 / 100 · 5 steps/s · about 10 s left"
    assert eta_text(5, 100, 20) == "step 5 / 100 · 4.0 s per step · about 380 s left"  # slower than a step a second
    fig = loss_figure(np.arange(1, 5001), np.linspace(1, 0.1, 5000), 5000)
    assert len(fig.data[0].x) <= 1500 and fig.layout.yaxis.type == "log"
    dist = get_dataset("moons")
    x, y = dist.sample(50, generator=torch.Generator().manual_seed(0))
    fig = samples_figure(dist, x.numpy(), y.numpy(), x.numpy() + 0.1, "Learned")
    assert [a.text for a in fig.layout.annotations] == ["Exact", "Learned"]
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.font.size >= 16


def test_weighting_labels_state_the_weight_the_core_applies():
    """Each label's w, read as a function of SNR, is the weight the core puts on the ε error."""
    import math

    from diffusion.parameterizations import WEIGHTINGS
    from ui.training import WEIGHTING_NAMES

    stated = {"ε-MSE (w = 1)": lambda snr: 1.0, "x₀-MSE (w = 1/SNR)": lambda snr: 1 / snr,
              "v-MSE (w = (1 + SNR)/SNR)": lambda snr: (1 + snr) / snr,
              "flow-matching (w = (1 + 1/√SNR)²)": lambda snr: (1 + 1 / math.sqrt(snr)) ** 2,
              "min-SNR-5 (w = min(1, 5/SNR))": lambda snr: min(1.0, 5 / snr),
              "sigmoid (w = sigmoid(−λ))": lambda snr: 1 / (1 + snr)}
    for name, label in WEIGHTING_NAMES.items():
        for lam in (-6.0, -1.0, 0.0, 2.0, 7.0):
            got = WEIGHTINGS[name](torch.tensor([lam], dtype=torch.float64)).item()
            assert got == pytest.approx(stated[label](math.exp(lam)), rel=1e-12), (name, lam)


def test_before_training_the_page_shows_the_true_points():
    """No blank page in front of a class: before Train the true samples are drawn, with an empty learned panel."""
    at = _page(dataset="pinwheel")
    figs = [pio.from_json(c.proto.spec) for c in at.get("plotly_chart")]
    samples = next(f for f in figs if f.layout.annotations and f.layout.annotations[0].text == "Exact")
    assert [a.text for a in samples.layout.annotations] == ["Exact", "Learned (press Train)"]
    exact = [t for t in samples.data if t.type == "scattergl" and t.xaxis in (None, "x")]
    assert sum(len(_arr(t.x)) for t in exact) == 300
    assert any(f.layout.title.text == "Training loss" for f in figs)


def test_three_targets_section_draws_the_numbers_and_follows_its_controls():
    """The section's t and draw come from the URL; x_t, the targets, the weight curves and the shipped model's
    errors on the page are the ones ui.targets computes, and moving either control moves them."""
    from apptest import charts, decode
    from diffusion.models import reschedule
    from diffusion.parameterizations import WEIGHTINGS
    from ui import targets as three
    from ui.models import CHECKPOINTS

    at = _page(dataset="moons", **{"train.targets_t": "0.3", "train.targets_draw": "5"})
    assert at.slider(key="train.targets_t").value == 0.3 and at.number_input(key="train.targets_draw").value == 5
    dist, schedule = get_dataset("moons"), make_schedule("cosine")

    def drawn(t, seed):
        x0, eps = three.draw_pair(dist, seed)
        lvl = three.noise_at(schedule, t)
        return three.targets(x0, eps, lvl), float(lvl.logsnr)

    def section(at):
        figs = charts(at)
        plane = next(f for f in figs if f["layout"].get("title", {}).get("text", "").startswith("One draw"))
        weights = next(f for f in figs if f["layout"].get("title", {}).get("text", "").startswith("What each loss"))
        errors = next(f for f in figs if [a["text"] for a in f["layout"].get("annotations", [])] == ["ε", "x₀", "v"])
        xt = next(tr for tr in plane["data"] if tr.get("name") == "x_t")
        return np.array([xt["x"][0], xt["y"][0]]), weights, errors

    for t, seed in ((0.3, 5), (0.8, 5), (0.8, 6)):
        if t != at.slider(key="train.targets_t").value:
            at.slider(key="train.targets_t").set_value(t).run()
        if seed != at.number_input(key="train.targets_draw").value:
            at.number_input(key="train.targets_draw").set_value(seed).run()
        assert not at.exception and not at.error
        tg, lam = drawn(t, seed)
        xt, weights, errors = section(at)
        assert np.allclose(xt, tg["x_t"][0].numpy(), rtol=0, atol=1e-12)  # float64 through JSON: exact
        table = at.table[-1].value
        assert list(table["this draw"]) == [f"({tg[k][0, 0]:+.3f}, {tg[k][0, 1]:+.3f})" for k in three.TARGETS]
        worst = float(next(c.value for c in at.caption if "to within" in c.value).split("to within ")[1].split(" ")[0])
        assert worst < 1e-12  # the three targets give back the draw to float64 round-off
        assert all(s["x0"] == pytest.approx(lam, abs=1e-12) for s in weights["layout"]["shapes"])  # this t's λ
    # the weight curves are the core's, the page's chosen weighting drawn thick
    thick = max(weights["data"], key=lambda tr: tr.get("line", {}).get("width", 0))
    assert thick["name"] == three.WEIGHT_LABELS[DEFAULTS["weighting"]]
    for k, label in three.WEIGHT_LABELS.items():
        tr = next(tr for tr in weights["data"] if tr.get("name") == label)
        lam = decode(tr["x"])
        assert np.allclose(decode(tr["y"]), WEIGHTINGS[k](torch.as_tensor(lam)).numpy(), rtol=1e-12, atol=0)
    # the shipped model's errors per noise level. Tolerance: its float32 outputs can differ in the last bit
    # between two runs (summation order), which moves an error of size Δ² by ~2e-7 / Δ relative; the smallest
    # Δ here is ~5e-4, so 1e-3 relative
    from diffusion.checkpoints import load_checkpoint

    model, _ = load_checkpoint(f"{CHECKPOINTS}/moons.safetensors")
    lams = three.error_lambdas(schedule)
    want = three.model_errors(reschedule(model, schedule), dist, schedule, lams)
    got = [tr for tr in errors["data"] if tr.get("name") == "shipped model"]
    assert len(got) == 3
    for tr, k in zip(got, three.TARGETS):
        assert np.allclose(decode(tr["x"]), lams) and np.allclose(decode(tr["y"]), want[k], rtol=1e-3, atol=0), k


def test_three_targets_section_with_a_session_model_and_a_non_vp_schedule():
    """A session's model (here an untrained energy head, whose eps comes from -grad E) gets its own error curves
    beside the shipped model's; under rectified flow (alpha^2 + sigma^2 < 1 inside (0, 1)) the page says which
    short forms do not hold, and the conversions still give back the draw."""
    from apptest import charts
    from diffusion.models import DiffusionModel
    from diffusion.nets import MLP2D, MLPConfig

    torch.manual_seed(0)
    net = MLP2D(MLPConfig(width=16, depth=1, num_classes=2, scalar_out=True))
    model = DiffusionModel(net, "energy", make_schedule("cosine"), 2).requires_grad_(False)
    info = {"parameterization": "energy", "schedule": "cosine", "train": {"steps_done": 1}, "source": "session",
            "id": "targets-test"}
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update(dataset="moons", schedule="flow", model="session")
    at.session_state["trained"] = {"moons": (model, info)}
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception and not at.error
    errors = next(f for f in charts(at) if [a["text"] for a in f["layout"].get("annotations", [])] == ["ε", "x₀", "v"])
    names = [tr.get("name") for tr in errors["data"]]
    assert names.count("shipped model") == 3 and names.count("trained in this session") == 3
    text = " ".join(c.value for c in at.caption)
    assert "is not variance-preserving" in text and "α² + σ² = 0.5" in text  # t = 0.5: 0.25 + 0.25
    assert float(text.split("to within ")[1].split(" ")[0]) < 1e-12
    assert list(at.table[-1].value.columns) == ["this draw", "ideal denoiser", "network", "|network − ideal|"]
