"""Bad input on every page's own controls, generated: whatever value reaches a widget (in range, out of
range, NaN, infinite, huge, an empty choice; what a crafted client can send, not only what a browser's
widget lets through), the page never raises, writes no NaN into its readouts, and keeps drawing.

Each page is opened once; hypothesis then moves its controls one after another on that same session,
like a student clicking through it, so values also meet the state earlier ones left behind.
"""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, find, given, note, settings
from hypothesis import strategies as st

from apptest import open_page

PAGES_2D = ["pages/data.py", "pages/energy.py", "pages/score.py", "pages/forward.py", "pages/denoise.py",
            "pages/reverse.py", "pages/train.py", "pages/your_data.py"]
PAGES_DIGITS = ["pages/digits_generate.py", "pages/digits_journey.py", "pages/digits_prompts.py"]
KINDS = ["slider", "select_slider", "number_input", "selectbox", "radio", "multiselect", "toggle", "checkbox"]
NAN = re.compile(r"\bnan\b|\binf\b", re.IGNORECASE)

_open: dict = {}


def session(page):
    """One AppTest per page for the whole module (opening a page costs seconds; moving a control does not)."""
    if page not in _open:
        _open[page] = open_page(page, timeout=300)
    return _open[page]


def controls(at) -> list:
    """The page's own widgets (the sidebar's are covered by test_bad_input.py), in page order.

    Left out: disabled ones, and choice widgets whose labels come from a format_func (AppTest can only
    set those by their label, which it then cannot map back; their choices are plain valid values anyway).
    """
    return [w for kind in KINDS for w in at.main.get(kind)
            if not getattr(w, "disabled", False) and not formatted(w)]


def formatted(w) -> bool:
    if type(w).__name__ not in ("Selectbox", "Radio", "SelectSlider", "Multiselect"):
        return False
    values = w.value if isinstance(w.value, (list, tuple)) else [w.value]
    return any(v is not None and str(v) not in w.options for v in values)


UNIT = st.floats(0, 1, exclude_max=True)
RAW = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**12, 10**12).map(float),
                st.sampled_from([math.nan, math.inf, -math.inf, -1e308, 1e308, 0.0, -0.0, -1.0, 1e-320]))
# One move, drawn the same way whatever the page shows (so hypothesis can replay and shrink it):
# (which control, in range or raw, position in the range, raw number, edge offset, choices, on/off).
MOVE = st.tuples(UNIT, st.sampled_from(["in range", "raw", "edge"]), UNIT, RAW,
                 st.sampled_from([-1.0, -1e-9, 1e-9, 1.0]), st.lists(UNIT, max_size=6), st.booleans())


def is_int(w) -> bool:
    return isinstance(w.value, int) and not isinstance(w.value, bool)


def value_for(w, move):
    """The value this move sends to widget w: numbers in range, at the edges and beyond, NaN and infinities
    (NaN and infinities only where the widget holds floats: an integer widget's value is parsed by Streamlit
    itself, which a browser never sends a NaN); choices by index; subsets, the empty one included."""
    _, mode, u, raw, edge, picks, flag = move
    kind = type(w).__name__.lower()
    if kind in ("slider", "numberinput") and not isinstance(w.value, (tuple, list)):
        lo = float(w.min) if w.min is not None else -1e6
        hi = float(w.max) if w.max is not None else 1e6
        value = {"in range": lo + u * (hi - lo), "raw": raw, "edge": (hi if u >= 0.5 else lo) + edge}[mode]
        if is_int(w) and not math.isfinite(value):
            value = hi + 1
        return value
    n = len(getattr(w, "options", []) or [])
    if kind in ("selectslider", "selectbox", "radio"):
        return int(u * n) if n else None
    if kind == "multiselect":
        return sorted({int(p * n) for p in picks}) if n else None
    if kind in ("toggle", "checkbox"):
        return flag
    return None


def apply(w, value):
    kind = type(w).__name__.lower()
    if kind == "selectbox":
        w.select_index(value)
    elif kind in ("selectslider", "radio"):
        if (v := typed(w.options[value], w.value)) is not UNTYPED:
            w.set_value(v)
    elif kind == "multiselect":
        like = w.value[0] if w.value else None
        values = [typed(w.options[i], like) for i in value]
        w.set_value([v for v in values if v is not UNTYPED])  # labels only a format_func knows are left out
    else:
        w.set_value(int(value) if is_int(w) and math.isfinite(value) and abs(value) < 2**62 else value)


UNTYPED = object()


def typed(text: str, like):
    """An option's own value from its label, for the plain number and string options these pages use;
    UNTYPED for a label that is not one of those (such as "no label" shown for None by a format_func)."""
    if isinstance(like, bool) or like is None or isinstance(like, str):
        return text
    try:
        return type(like)(text)
    except ValueError:
        return UNTYPED


def check(at, what):
    assert not at.exception, (what, at.exception)
    texts = [m.value for m in at.get("metric")] + [c.value for c in at.caption] + [c.value for c in at.sidebar.caption]
    bad = [t for t in texts if isinstance(t, str) and NAN.search(t)]
    assert not bad, (what, bad)


def drive(page, moves):
    at = session(page)
    for move in moves:
        ws = controls(at)
        if not ws:
            return
        w = ws[int(move[0] * len(ws))]
        value = value_for(w, move)
        if value is None:
            continue
        label = f"{page}: {type(w).__name__} {w.key or w.label!r} <- {value!r}"
        note(label)
        apply(w, value)
        at.run()
        check(at, label)
        assert at.get("plotly_chart") or at.get("image") or at.get("info") or at.get("error"), label


@pytest.mark.slow  # hypothesis through AppTest: every 2-D page, 25 examples each
@pytest.mark.parametrize("page", PAGES_2D)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(moves=st.lists(MOVE, min_size=1, max_size=2))
def test_garbage_in_every_2d_page_control(page, moves):
    drive(page, moves)


@pytest.mark.slow  # hypothesis through AppTest: every digit page, 12 examples each (minutes)
@pytest.mark.parametrize("page", PAGES_DIGITS)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(moves=st.lists(MOVE, min_size=1, max_size=2))
def test_garbage_in_every_digit_page_control(page, moves):
    drive(page, moves)


@pytest.mark.slow  # checks the moves of the two slow tests above (5,000 hypothesis examples)
def test_moves_reach_the_values_the_test_is_about():
    """The moves do produce NaN, out-of-range and in-range numbers (a test that cannot fail is no test)."""

    class Slider:  # what value_for reads of a float slider
        min, max, value = 0.0, 1.0, 0.5

    def reaches(condition):
        return find(MOVE, lambda m: condition(value_for(Slider(), m)), settings=settings(max_examples=5000,
                                                                                          database=None))

    assert math.isnan(value_for(Slider(), reaches(math.isnan)))
    assert value_for(Slider(), reaches(lambda v: v > 1)) > 1
    assert value_for(Slider(), reaches(lambda v: v < 0)) < 0
    assert 0 <= value_for(Slider(), reaches(lambda v: 0 < v < 1)) <= 1
    assert value_for(Slider(), (0.0, "edge", 0.9, 0.0, 1e-9, [], False)) == 1 + 1e-9
