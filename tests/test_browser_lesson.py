"""The lesson in a real browser (Debian's Chromium, as tests/test_browser.py): every step walked with Next and
Previous, and opened cold from its link, in normal and presenter mode. In presenter mode at 1920x1080 each step's
text measures at least 24 px and its figure's text at least 18 px in the computed styles, nothing collides, the
answer waits for "Reveal the answer", and a screenshot of the screen a class sees goes to
screenshots/lesson-present-<k>.png."""

from __future__ import annotations

import re
import time

import pytest

from tests.test_browser import CHROMIUM, FIND_COLLISIONS, NO_BROWSER, SHOTS, _settle, browser, server  # noqa: F401
from tests.test_browser_present import BODY_PX, FIGURE_PX, SMALL_BODY_TEXT, SMALL_FIGURE_TEXT
from ui.lesson import STEPS

pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason=NO_BROWSER)]

HEADING = '[data-testid="stMain"] h1, [data-testid="stMain"] h2'


def _open(browser, url: str, size=(1400, 900)):
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    page.goto(url, timeout=120_000)
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=180_000)
    _settle(page)
    return page


def _shown(page) -> int:
    """The step the page shows (from its heading), once the figure of that step has drawn."""
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=180_000)
    for text in page.locator(HEADING).all_inner_texts():
        if m := re.match(r"(\d+) · ", text):
            return int(m.group(1))
    raise AssertionError(f"no step heading among {page.locator(HEADING).all_inner_texts()}")


def _check(page, k: int) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, \
        page.locator('[data-testid="stException"]').first.inner_text()
    assert _shown(page) == k
    assert re.search(rf"[?&]step={k}(&|$)", page.url), page.url
    assert page.locator(".js-plotly-plot").count() == 1


def _click(page, name: str) -> None:
    page.get_by_role("button", name=re.compile(rf"{name}$")).click()
    _settle(page)


def test_every_step_by_next_and_back_by_previous(server, browser):
    page = _open(browser, f"{server}/lesson?step=1")
    try:
        _check(page, 1)
        for k in range(2, len(STEPS) + 1):
            _click(page, "Next")
            _check(page, k)
        assert page.get_by_role("button", name=re.compile("Next$")).is_disabled()
        for k in range(len(STEPS) - 1, len(STEPS) - 4, -1):
            _click(page, "Previous")
            _check(page, k)
    finally:
        page.close()


@pytest.mark.parametrize("present", ["", "&present=1"], ids=["normal", "presenter"])
def test_a_step_link_opened_cold_shows_that_step(server, browser, present):
    page = _open(browser, f"{server}/lesson?step=9{present}")
    try:
        _check(page, 9)
        assert page.locator('[data-testid="stSidebar"]').is_visible() == (not present)
    finally:
        page.close()


def test_presenter_mode_walks_every_step_readable_at_1920(server, browser):
    page = _open(browser, f"{server}/lesson?step=1&present=1", size=(1920, 1080))
    SHOTS.mkdir(exist_ok=True)
    try:
        for k, step in enumerate(STEPS, start=1):
            if k > 1:
                _click(page, "Next")
            _check(page, k)
            assert "present=1" in page.url and not page.locator('[data-testid="stSidebar"]').is_visible()
            time.sleep(0.5)
            assert page.evaluate(SMALL_BODY_TEXT, BODY_PX) == [], k
            figure = page.evaluate(SMALL_FIGURE_TEXT, FIGURE_PX)
            assert figure["axes"] > 0 and figure["small"] == [], (k, figure)
            assert page.evaluate(FIND_COLLISIONS) == [], k
            page.screenshot(path=str(SHOTS / f"lesson-present-{k:02d}.png"))
            why = page.get_by_text(step.question.why[:40])
            assert why.count() == 0  # the answer waits for the presenter
            _click(page, "Reveal the answer")
            assert why.first.is_visible()
    finally:
        page.close()
