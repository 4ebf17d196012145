"""Presenter mode: the lab readable from the back of a room on a 1920x1080 projector.

`?present=1` in the URL, or the "Presenter mode" switch at the top of every page, turns it on for the
session. Then the sidebar is hidden (its values still hold), body text is at least 24 px, and every figure
drawn through `chart` has fonts of at least 18 px (`enlarge`). app.py draws the switch (`toggle`) and the
style (`style`) before each page; pages draw their figures with `chart(fig, where, ...)` in place of
`where.plotly_chart(fig, ...)`.
"""

from __future__ import annotations

import streamlit as st

from .figures import SpecFigure

KEY = "present"  # the switch's session-state key and the URL's query parameter
ON_VALUES = ("1", "true")
MIN_FONT = 18  # px, every font of a figure in presenter mode
SCALE = 1.25  # fonts, heights, margins and the player's padding grow by this factor
MAX_HEIGHT = 960  # px: a figure grows to at most this height (a 1080-line screen less the browser's bars),
# so that it stays whole on the screen; one already taller keeps its height
PLOTLY_FONT = 12  # plotly.js's own default font size (hover labels: 13), for fonts that set none
HOVER_FONT = 13
DEFAULT_HEIGHT, DEFAULT_MARGIN = 450, {"t": 100, "b": 80}  # plotly.js's own figure height and margins, px
LEGEND_ROW = 40  # px of bottom margin for a one-row legend moved below the x-axis title (`shorter`)
# A log axis spanning less than a decade is labelled in equal steps of value, which crowd towards its top end;
# plotly picks the step from the axis's length, which presenter mode makes longer: at most this many labels.
LOG_NTICKS = 6
STYLE = """<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapseButton"], [data-testid="stExpandSidebarButton"],
[data-testid="stSidebarCollapsedControl"] { display: none !important; }
html { font-size: 24px !important; }
[data-testid="stMainBlockContainer"] { padding-top: 4.5rem !important; }
[data-testid="stMain"] :is(p, li, td, th, label, summary, button, input, textarea, [data-testid="stCaptionContainer"],
  [data-testid="stWidgetLabel"], [data-testid="stMetricLabel"], [data-baseweb="select"] div,
  [data-testid="stExpander"] summary, [data-testid="stTable"], [data-testid="stMarkdownContainer"]) {
  font-size: max(24px, 1em) !important;
}
[data-testid="stMain"] [data-testid="stMetricValue"] { font-size: 48px !important; }
[data-testid="stMain"] h1 { font-size: 56px !important; }
[data-testid="stMain"] h2 { font-size: 44px !important; }
[data-testid="stMain"] h3 { font-size: 34px !important; }
[data-testid="stMain"] :is(h4, h5, h6) { font-size: 28px !important; }
</style>"""


def on() -> bool:
    """Whether presenter mode is on in this session: the switch's value, which starts from `?present=1`."""
    if KEY not in st.session_state:
        st.session_state[KEY] = str(st.query_params.get(KEY, "")).lower() in ON_VALUES
    return bool(st.session_state[KEY])


def toggle() -> bool:
    """Draw the switch at the top right of the page and keep `?present=1` in the URL while it is on (a page
    change through the navigation keeps only the query parameters bound to widgets, so it is set again on
    every run); turned off, the parameter goes. Returns whether the mode is on."""
    on()
    with st.container(horizontal=True, horizontal_alignment="right"):
        value = st.toggle("Presenter mode", key=KEY,
                          help="Large type and figures for a projector, with the sidebar hidden (its settings "
                               "still hold). The link with ?present=1 opens any page this way.")
    if value and st.query_params.get(KEY) != "1":
        st.query_params[KEY] = "1"
    elif not value and KEY in st.query_params:
        del st.query_params[KEY]
    return bool(value)


def style() -> None:
    """In presenter mode, the CSS that hides the sidebar and enlarges the text (a style-only st.html takes no
    room on the page)."""
    if on():
        st.html(STYLE)


# --- figures ---------------------------------------------------------------------------------------------------

def larger(size) -> int:
    """A font size in presenter mode: 1.25 times as large, and at least 18 px."""
    return max(MIN_FONT, round(SCALE * float(size)))


def _font(font, default: float | None = None):
    """A font dict with its size enlarged; `default` is the size plotly uses when the dict sets none (None:
    it inherits the figure's font, which is enlarged already, so it stays as it is)."""
    font = font if isinstance(font, dict) else {}
    size = font.get("size", default)
    if size is None or isinstance(size, (list, tuple)):
        return font
    return {**font, "size": larger(size)}


def _fonts(obj):
    """`obj` (a piece of a layout, or a trace's colour bar) with every font below it enlarged; dicts and lists
    are copied only along the paths that change, so the caller's figure is never touched."""
    if isinstance(obj, list):
        out = [_fonts(item) for item in obj]
        return obj if all(a is b for a, b in zip(out, obj)) else out
    if not isinstance(obj, dict):
        return obj
    changed = {}
    for key, val in obj.items():
        if key.endswith("font") and isinstance(val, dict):
            new = _font(val)
        elif isinstance(val, (dict, list)):
            new = _fonts(val)
        else:
            continue
        if new is not val:
            changed[key] = new
    return {**obj, **changed} if changed else obj


def _scaled(box, keys=("l", "r", "t", "b")):
    """A margin or pad dict with its pixel sizes times 1.25."""
    if not isinstance(box, dict):
        return box
    return {**box, **{k: round(SCALE * box[k]) for k in keys if isinstance(box.get(k), (int, float))}}


def _layout(layout: dict, root: bool) -> dict:
    """A layout (the figure's, or a frame's) with its fonts enlarged and its axes set to make room for their
    labels (a log axis without its small in-between labels); the figure's own also gets a base font, a hover
    font, and its height, margins and player padding enlarged."""
    out = _fonts(layout)
    out = dict(out) if out is layout else out
    if root:
        out["font"] = _font(layout.get("font"), PLOTLY_FONT)
        hover = layout.get("hoverlabel") if isinstance(layout.get("hoverlabel"), dict) else {}
        out["hoverlabel"] = {**out.get("hoverlabel", {}), "font": _font(hover.get("font"), HOVER_FONT)}
        if isinstance(layout.get("height"), (int, float)):
            out["height"] = max(layout["height"], min(round(SCALE * layout["height"]), MAX_HEIGHT))
        if "margin" in layout:
            out["margin"] = _scaled(layout["margin"])
        for menus in ("updatemenus", "sliders"):  # the player sits below the x-axis title, which grows
            if isinstance(out.get(menus), list):
                out[menus] = [{**m, "pad": _scaled(m["pad"])} if isinstance(m, dict) and isinstance(m.get("pad"), dict)
                              else m for m in out[menus]]
    for key, val in layout.items():
        if key.startswith(("xaxis", "yaxis")) and isinstance(val, dict):
            out[key] = {**out[key], "automargin": True}
            if val.get("type") == "log":  # its labels between the powers of ten (2, 5) are 3/4 size: none then
                out[key].setdefault("minorloglabels", "none")
                if not any(k in val for k in ("dtick", "tickvals", "nticks")):
                    out[key]["nticks"] = LOG_NTICKS
    return out


def _trace(trace):
    """A trace with the fonts of its text, hover labels and colour bars enlarged (its data arrays are shared, not
    walked or copied)."""
    if not isinstance(trace, dict):
        return trace
    changed = {k: _font(val) for k, val in trace.items() if k.endswith("font") and isinstance(val, dict)}
    for key in ("colorbar", "hoverlabel"):
        if isinstance(trace.get(key), dict):
            changed[key] = _fonts(trace[key])
    marker = trace.get("marker")
    if isinstance(marker, dict) and isinstance(marker.get("colorbar"), dict):
        changed["marker"] = {**marker, "colorbar": _fonts(marker["colorbar"])}
    return {**trace, **changed} if changed else trace


def _frame(frame):
    if not isinstance(frame, dict):
        return frame
    out = dict(frame)
    if frame.get("layout"):
        out["layout"] = _layout(frame["layout"], root=False)
    if frame.get("data"):
        data = [_trace(tr) for tr in frame["data"]]
        out["data"] = frame["data"] if all(a is b for a, b in zip(data, frame["data"])) else data
    return out


def enlarge_dict(spec: dict) -> dict:
    """The presenter version of a figure dict ({"data", "layout", "frames"}): every font 1.25 times as large and
    at least 18 px (the layout's, every axis's ticks and title, annotations and subplot titles, legend, text on
    traces, colour bars, the player's buttons and current value, hover labels; in the frames too), axes that
    make room for their labels (automargin), margins and the player's padding 1.25 times as large, and the
    height too, up to MAX_HEIGHT. A new dict sharing everything it does not change with `spec`, which stays as
    it was."""
    out = dict(spec)
    out["layout"] = _layout(spec.get("layout") or {}, root=True)
    if spec.get("data"):
        out["data"] = [_trace(tr) for tr in spec["data"]]
    if spec.get("frames"):
        out["frames"] = [_frame(f) for f in spec["frames"]]
    return out


def shorter(spec: dict, plot_height: int) -> dict:
    """The figure dict `spec` with its plot area (its height less the top and bottom margins, which hold titles,
    legends and players) at most `plot_height` px tall before presenter mode's x1.25; its data are shared. A
    horizontal legend placed below the plot in plot units (y < 0), which would slide into the x-axis title as the
    plot shrinks, moves to the bottom edge of the figure, and the bottom margin grows by a legend row for it."""
    layout = spec.get("layout") or {}
    margin = layout.get("margin") or {}
    top, bottom = margin.get("t", DEFAULT_MARGIN["t"]), margin.get("b", DEFAULT_MARGIN["b"])
    height = layout.get("height") or DEFAULT_HEIGHT
    if height - top - bottom <= plot_height:
        return spec
    out = {**layout, "height": top + bottom + plot_height}
    legend = layout.get("legend")
    if (isinstance(legend, dict) and legend.get("orientation") == "h" and legend.get("yref", "paper") == "paper"
            and (legend.get("y") or 0) < 0):
        out["legend"] = {**legend, "y": 0, "yanchor": "bottom", "yref": "container"}
        out["margin"] = {**margin, "b": bottom + LEGEND_ROW}
        out["height"] += LEGEND_ROW
    return {**spec, "layout": out}


def enlarge(fig):
    """`enlarge_dict` of a go.Figure, a SpecFigure or a figure dict, as something st.plotly_chart draws: a dict
    for a dict, otherwise a SpecFigure (a go.Figure's to_dict() is the copy st.plotly_chart would make anyway)."""
    if isinstance(fig, dict):
        return enlarge_dict(fig)
    if not hasattr(fig, "to_dict"):
        return fig
    return SpecFigure(enlarge_dict(fig.to_dict()))


def figure(fig):
    """`fig` as presenter mode draws it: `enlarge(fig)` when the mode is on, else `fig` itself."""
    return enlarge(fig) if on() else fig


def chart(fig, where=None, **kwargs):
    """`where.plotly_chart(fig, **kwargs)` (where: st, a column or a placeholder), in presenter mode with the
    presenter figure; returns what plotly_chart returns (the selection state where `on_select` is set)."""
    return (where or st).plotly_chart(figure(fig), **kwargs)
