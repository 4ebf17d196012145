"""The Streamlit app runs its pages without exceptions, and its widgets change what is drawn."""

import pathlib

from streamlit.testing.v1 import AppTest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _app():
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)


def _figure_json(at):
    return [c.proto.spec for c in at.get("plotly_chart")]


def test_home_renders_a_live_plot_that_follows_the_dataset():
    at = _app().run()
    assert not at.exception
    before = _figure_json(at)
    assert before, "the home page shows a plot"
    at.selectbox[0].select("grid").run()
    assert not at.exception
    after = _figure_json(at)
    assert after and after != before
    at.selectbox[1].select("ve").run()
    assert not at.exception and _figure_json(at) != after
