"""Presenter mode (ui/present.py): every figure font at least 18 px, the input figure untouched, and the
switch and `?present=1` agreeing on every page."""

from __future__ import annotations

import copy

import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots

from tests.apptest import charts, open_page
from ui import present
from ui.figures import SpecFigure, add_player, at_frame, figure_dict, place_player


def same(a, b) -> bool:
    """Deep equality of figure dicts that hold numpy arrays (NaN equal to NaN)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    return a == b or (a != a and b != b)


def font_sizes(obj, path="") -> list[tuple[str, float]]:
    """(path, size) of every font dict with a size below `obj`."""
    out = []
    if isinstance(obj, dict):
        for k, val in obj.items():
            if k.endswith("font") and isinstance(val, dict) and isinstance(val.get("size"), (int, float)):
                out.append((f"{path}.{k}", val["size"]))
            out += font_sizes(val, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, val in enumerate(obj):
            out += font_sizes(val, f"{path}[{i}]")
    return out


def busy_figure() -> dict:
    """A figure with every kind of text a page draws: subplot titles, axis titles and ticks with their own sizes,
    an annotation, a legend, text on bars, colour bars (a trace's and a marker's), a 3-D scene, the player (buttons, slider,
    current value), a hover label, and frames whose layouts carry annotations of their own."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["left", "right"])  # subplot titles: font size 16
    x = np.linspace(0, 1, 50)
    fig.add_trace(go.Heatmap(z=np.outer(x, x), colorbar=dict(title=dict(text="p", font=dict(size=14)),
                                                              tickfont=dict(size=10))), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=x**2, mode="markers", name="points",
                             marker=dict(color=x, colorbar=dict(tickfont=dict(size=11)))), row=1, col=2)
    fig.add_trace(go.Scatter3d(x=x, y=x, z=x, mode="lines", scene="scene"))
    fig.add_trace(go.Bar(x=[1, 2], y=[1, 2], text=["+1", "+2"], textfont=dict(size=14),
                         outsidetextfont=dict(size=12)), row=1, col=2)
    fig.update_layout(font=dict(size=16), legend=dict(font=dict(size=10)), hoverlabel=dict(font=dict(size=12)),
                      scene=dict(domain=dict(x=[0.8, 1]), xaxis=dict(tickfont=dict(size=9), title=dict(text="x"))),
                      height=400, margin=dict(l=40, r=10, t=60, b=40))
    fig.update_xaxes(title=dict(text="x₁", font=dict(size=14)), tickfont=dict(size=12))
    fig.update_yaxes(title_text="x₂")
    fig.add_annotation(x=0.5, y=0.5, text="note", font=dict(size=13), showarrow=False)
    fig.frames = [go.Frame(name=str(k), data=[go.Heatmap(z=np.outer(x, x) * k)], traces=[0],
                           layout=dict(annotations=[dict(text=f"frame {k}", font=dict(size=15), x=0, y=1)]))
                  for k in range(3)]
    place_player(add_player(fig, [str(k) for k in range(3)]))  # buttons 14, slider 12, current value 16
    return figure_dict(fig)


def test_every_font_grows_by_a_quarter_to_at_least_18():
    spec = busy_figure()
    before = dict(font_sizes(spec))
    after = dict(font_sizes(present.enlarge_dict(spec)))
    assert len(before) >= 16  # every kind of text above, each with its own size
    for path, size in before.items():
        assert after[path] == max(18, round(1.25 * size)), path
    assert after[".layout.font"] == 20 and after[".layout.hoverlabel.font"] == 18
    assert after[".layout.annotations[0].font"] == 20  # a subplot title
    assert after[".layout.scene.xaxis.tickfont"] == 18
    assert after[".layout.sliders[0].currentvalue.font"] == 20 and after[".layout.updatemenus[0].font"] == 18
    assert after[".data[0].colorbar.tickfont"] == 18 and after[".data[1].marker.colorbar.tickfont"] == 18
    assert after[".data[3].textfont"] == 18 and after[".data[3].outsidetextfont"] == 18
    assert all(after[f".frames[{k}].layout.annotations[0].font"] == 19 for k in range(3))
    assert all(size >= 18 for size in after.values())


def test_fonts_that_set_no_size_get_one_from_the_figure():
    """A figure with no font sizes at all: its base font and hover labels get 18 (plotly's own 12 and 13 are too
    small); everything else inherits the base font."""
    out = present.enlarge_dict(figure_dict(go.Figure(go.Scatter(x=[0, 1], y=[0, 1]))))
    assert out["layout"]["font"]["size"] == 18 and out["layout"]["hoverlabel"]["font"]["size"] == 18
    assert "height" not in out["layout"] and "margin" not in out["layout"]


def test_axes_make_room_and_the_figure_grows_up_to_the_screen():
    spec = busy_figure()
    out = present.enlarge_dict(spec)["layout"]
    axes = [k for k in spec["layout"] if k.startswith(("xaxis", "yaxis"))]
    assert len(axes) == 4 and all(out[k]["automargin"] is True for k in axes)
    assert out["height"] == 500 and out["margin"] == dict(l=50, r=12, t=75, b=50)
    assert out["updatemenus"][0]["pad"]["t"] == round(1.25 * spec["layout"]["updatemenus"][0]["pad"]["t"])
    tall = {"data": [], "layout": {"height": 900}}
    assert present.enlarge_dict(tall)["layout"]["height"] == present.MAX_HEIGHT
    taller = {"data": [], "layout": {"height": 1200}}
    assert present.enlarge_dict(taller)["layout"]["height"] == 1200  # never shrinks


def test_a_log_axis_drops_its_small_in_between_labels():
    """plotly.js writes a log axis's labels between the powers of ten (2, 5) at 3/4 of its tick font, below 18 px
    even at 20; presenter mode leaves them out, unless the figure chose otherwise."""
    layout = present.enlarge_dict({"data": [], "layout": {"font": {"size": 16}, "yaxis": {"type": "log"},
                                                         "yaxis2": {"type": "log", "minorloglabels": "complete"},
                                                         "xaxis": {"type": "linear"}}})["layout"]
    assert layout["yaxis"]["minorloglabels"] == "none" and layout["yaxis2"]["minorloglabels"] == "complete"
    assert "minorloglabels" not in layout["xaxis"]
    # automatic log ticks at most LOG_NTICKS (a short log axis's labels crowd at its top); chosen ones stay
    assert layout["yaxis"]["nticks"] == present.LOG_NTICKS and "nticks" not in layout["xaxis"]
    chosen = {"type": "log", "tickvals": [1, 10]}
    assert "nticks" not in present.enlarge_dict({"data": [], "layout": {"yaxis": chosen}})["layout"]["yaxis"]


def test_the_input_is_never_changed_and_its_arrays_are_shared():
    spec = busy_figure()
    before = copy.deepcopy(spec)
    out = present.enlarge_dict(spec)
    assert same(spec, before)
    for tr_in, tr_out in zip(spec["data"], out["data"]):  # the big arrays are the input's own, not copies
        for key in ("x", "y", "z"):
            if key in tr_in:
                assert tr_out[key] is tr_in[key]
    assert all(f_out["data"] is f_in["data"] for f_in, f_out in zip(spec["frames"], out["frames"]))
    # a frame opened from the presenter figure keeps the presenter fonts (at_frame merges the frame's layout)
    assert all(size >= 18 for _, size in font_sizes(at_frame(out, 2)["layout"]))


def test_a_figure_object_is_left_as_it_was_and_drawn_as_a_spec():
    spec = busy_figure()
    fig = go.Figure(spec, _validate=False)
    before = fig.to_dict()
    drawn = present.enlarge(fig)
    assert isinstance(drawn, SpecFigure) and drawn.to_dict()["layout"]["font"]["size"] == 20
    assert same(fig.to_dict(), before)
    wrapped = SpecFigure(spec)
    assert present.enlarge(wrapped).to_dict()["layout"]["font"]["size"] == 20 and wrapped.to_dict() is spec
    assert present.enlarge(spec)["layout"]["font"]["size"] == 20  # a dict stays a dict


def test_off_draws_the_figure_itself(monkeypatch):
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1]))
    monkeypatch.setattr(present, "on", lambda: False)
    assert present.figure(fig) is fig
    monkeypatch.setattr(present, "on", lambda: True)
    assert present.figure(fig).to_dict()["layout"]["font"]["size"] == 18


def test_larger():
    assert [present.larger(s) for s in (8, 12, 14, 15, 16, 20, 24)] == [18, 18, 18, 19, 20, 25, 30]


# --- the app ------------------------------------------------------------------------------------------------------

def _param(at):
    """The URL's `present` parameter as a string (AppTest keeps one set by the test as given, one set by the app
    as a list), or None."""
    val = at.query_params.get("present")
    return val[-1] if isinstance(val, list) else val


def _presenter_style(at) -> bool:
    return any("stSidebar" in h.proto.body for h in at.get("html"))


@pytest.mark.parametrize("page", ["pages/home.py", "pages/forward.py"])
def test_present_1_turns_the_switch_on_and_every_figure_font_up(page):
    at = open_page(page, present="1")
    assert at.toggle(key="present").value is True and _param(at) == "1" and _presenter_style(at)
    figs = charts(at)
    assert figs
    for fig in figs:
        sizes = font_sizes(fig["layout"])
        assert fig["layout"]["font"]["size"] >= 18 and all(size >= 18 for _, size in sizes), sizes
        assert all(fig["layout"][k]["automargin"] for k in fig["layout"] if k.startswith(("xaxis", "yaxis")))


def test_without_present_the_figures_are_the_builders_own():
    at = open_page("pages/forward.py")
    assert at.toggle(key="present").value is False and "present" not in at.query_params and not _presenter_style(at)
    assert [fig["layout"]["font"]["size"] for fig in charts(at)] == [16, 16, 16]  # ui.figures.FONT
    at = open_page("pages/forward.py", present="0")
    assert at.toggle(key="present").value is False and not _presenter_style(at)


def test_the_switch_sets_and_clears_the_url_parameter():
    at = open_page("pages/forward.py")
    at.toggle(key="present").set_value(True).run()
    assert _param(at) == "1" and _presenter_style(at)
    assert all(fig["layout"]["font"]["size"] == 20 for fig in charts(at))
    at.toggle(key="present").set_value(False).run()
    assert "present" not in at.query_params and not _presenter_style(at)
    assert all(fig["layout"]["font"]["size"] == 16 for fig in charts(at))


def test_shorter_caps_the_plot_area_keeps_the_margins_and_moves_a_legend_below_the_plot():
    import copy

    from ui.present import LEGEND_ROW, shorter

    spec = {"data": [{"type": "scatter", "x": [0, 1], "y": [0, 1]}],
            "layout": {"height": 560, "margin": {"t": 60, "b": 90}, "legend": {"orientation": "h", "y": -0.18}}}
    before = copy.deepcopy(spec)
    out = shorter(spec, 300)
    assert spec == before and out["data"] is spec["data"]
    assert out["layout"]["margin"]["t"] == 60 and out["layout"]["margin"]["b"] == 90 + LEGEND_ROW
    assert out["layout"]["height"] - 60 - (90 + LEGEND_ROW) == 300
    assert out["layout"]["legend"]["yref"] == "container" and out["layout"]["legend"]["y"] == 0
    assert shorter(spec, 500) is spec  # a plot area of 410 px is already short enough
    legend_above = {"layout": {"height": 700, "margin": {"t": 50, "b": 50}, "legend": {"y": 1.0}}}
    assert shorter(legend_above, 300)["layout"] == {"height": 400, "margin": {"t": 50, "b": 50}, "legend": {"y": 1.0}}
