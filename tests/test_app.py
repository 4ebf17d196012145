"""The app shell: the home page, the shared sidebar, and the view kept in the URL's query parameters."""

import pathlib

import pytest
from streamlit.testing.v1 import AppTest

from ui.state import PARAM_RANGES

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = ["data", "energy", "score", "forward", "train", "denoise", "reverse", "your_data", "digits_generate",
         "digits_journey", "digits_prompts", "digits_train"]


def _app(**query):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update(query)
    return at


def _figures(at):
    return [c.proto.spec for c in at.get("plotly_chart")]


def test_home_renders_a_live_plot_that_follows_the_sidebar():
    at = _app().run()
    assert not at.exception
    before = _figures(at)
    assert before, "the home page shows a plot"
    at.sidebar.selectbox(key="dataset").select("grid").run()
    assert not at.exception
    after = _figures(at)
    assert after and after != before
    at.sidebar.selectbox(key="schedule").select("ve").run()
    assert not at.exception and _figures(at) != after
    labelled = _figures(at)
    at.sidebar.selectbox(key="label").select(at.sidebar.selectbox(key="label").options[1]).run()
    assert not at.exception and _figures(at) != labelled


def test_home_links_every_page():
    at = _app().run()
    linked = {pl.proto.page for pl in at.get("page_link")}
    for name in PAGES:
        assert any(name.replace("_", "-") in p or name in p for p in linked), (name, linked)


def test_query_parameters_set_the_whole_view():
    at = _app(dataset="swiss_roll", schedule="sigmoid", t="0.8", label="outer turn", w="2.5", sampler="euler",
              steps="40", model="shipped", **{"sigmoid.tau": "0.5"}).run()
    assert not at.exception
    sb = at.sidebar
    assert sb.selectbox(key="dataset").value == "swiss_roll"
    assert sb.selectbox(key="schedule").value == "sigmoid"
    assert sb.slider(key="t").value == pytest.approx(0.8)
    assert sb.selectbox(key="label").value == "outer turn"
    assert sb.slider(key="w").value == pytest.approx(2.5)
    assert sb.selectbox(key="sampler").value == "euler"
    assert sb.slider(key="steps").value == 40
    assert sb.slider(key="sigmoid.tau").value == pytest.approx(0.5)
    view = at.session_state["_view"] if "_view" in at.session_state else None
    assert view is None, "the per-run view is dropped after the page ran"
    # the caption under t reports this schedule's log-SNR at t = 0.8
    from diffusion.schedules import make_schedule
    lam = make_schedule("sigmoid", tau=0.5).logsnr(0.8).item()
    assert any(f"λ = {lam:.2f}" in c.value for c in sb.caption)


@pytest.mark.parametrize("query", [dict(dataset="nonsense"), dict(t="7"), dict(schedule="bogus"), dict(steps="-3")])
def test_bad_query_parameters_fall_back_without_a_traceback(query):
    at = _app(**query).run()
    assert not at.exception


def test_the_sidebar_state_survives_a_page_change():
    at = _app().run()
    at.sidebar.slider(key="t").set_value(0.66).run()
    at.sidebar.selectbox(key="dataset").select("pinwheel").run()
    at.switch_page("pages/forward.py").run()
    assert not at.exception
    assert at.sidebar.slider(key="t").value == pytest.approx(0.66)
    assert at.sidebar.selectbox(key="dataset").value == "pinwheel"


def test_an_invalid_schedule_combination_is_named_and_replaced_by_the_defaults():
    at = _app(schedule="edm", **{"edm.sigma_max": str(PARAM_RANGES["sigma_max"][0])}).run()
    assert not at.exception
    warnings = " ".join(w.value for w in at.sidebar.warning)
    assert "sigma_max=5" in warnings and "default" in warnings
    assert at.session_state["edm.sigma_max"] == PARAM_RANGES["sigma_max"][0]


@pytest.mark.slow  # AppTests of every 2-D page on a damaged file (seconds)
def test_a_corrupt_shipped_checkpoint_is_named_and_the_pages_keep_working(tmp_path, monkeypatch):
    import shutil

    import ui.models

    for f in (ROOT / "checkpoints").glob("*.safetensors"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "spiral.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")  # corrupt header
    monkeypatch.setattr(ui.models, "CHECKPOINTS", str(tmp_path))
    ui.models.shipped.clear()
    try:
        at = _app(dataset="spiral").run()
        assert not at.exception
        warning = " ".join(w.value for w in at.sidebar.warning)
        assert "spiral.safetensors" in warning and "exact side only" in warning
        at.switch_page("pages/score.py").run()  # the page draws the exact side and says why the learned is missing
        assert not at.exception and at.get("plotly_chart")
        at.sidebar.selectbox(key="dataset").select("moons").run()  # other datasets keep their models
        assert not at.exception and not at.sidebar.warning
    finally:
        ui.models.shipped.clear()


def test_schedule_sliders_show_as_many_decimals_as_their_step():
    """The cosine offset s = 0.008 moves in steps of 0.002 and must not read as 0.01."""
    at = _app(schedule="cosine").run()
    s = at.sidebar.slider(key="cosine.s")
    assert s.value == pytest.approx(0.008) and s.proto.format == "%.3f"


@pytest.mark.parametrize("page, query, widget, expected", [
    ("pages/data.py", {"data.n": "100"}, ("select_slider", "data.n"), 100),
    *[pytest.param(*case, marks=pytest.mark.slow) for case in [  # one case in the fast loop, the rest slow
        ("pages/energy.py", {"energy.n": "20", "energy.c": "2.5"}, ("slider", "energy.n"), 20),
        ("pages/energy.py", {"energy.c": "2.5"}, ("number_input", "energy.c"), 2.5),
        ("pages/score.py", {"score.arrows": "9"}, ("select_slider", "score.arrows"), 9),
        ("pages/forward.py", {"forward.digit": "12"}, ("number_input", "forward.digit"), 12),
        ("pages/denoise.py", {"denoise.n": "256"}, ("select_slider", "denoise.n"), 256),
        ("pages/reverse.py", {"reverse.seed": "5"}, ("number_input", "reverse.seed"), 5),
    ]],
], ids=lambda v: v if isinstance(v, str) else None)
def test_a_shared_link_reopens_the_pages_own_controls(page, query, widget, expected):
    """Page-level controls live in the URL as well as the sidebar's, so a shared link reopens the whole view."""
    from apptest import open_page

    at = open_page(page, dataset="moons", **query)
    kind, key = widget
    assert getattr(at, kind)(key=key).value == expected
