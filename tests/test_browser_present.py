"""Presenter mode in a real browser (Debian's Chromium, as tests/test_browser.py): on every page at 1920x1080
with ?present=1 the sidebar is hidden, body text measures at least 24 px and figure text at least 18 px in the
page's computed styles, and no figure text collides. Screenshots go to screenshots/present-<page>-1920.png."""

from __future__ import annotations

import time

import pytest

from tests.test_browser import (CHROMIUM, FIND_COLLISIONS, NO_BROWSER, PAGES, SHOTS, _settle, browser,  # noqa: F401
                                server)

pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason=NO_BROWSER)]

BODY_PX, FIGURE_PX = 24, 18  # issue 16: readable from the back of a room on a 1920x1080 projector

# Text of the page (not of a figure, a formula or a code listing) that is on screen and smaller than BODY_PX:
# paragraphs, list items, captions, widget and metric labels, table cells, expander headers, buttons.
SMALL_BODY_TEXT = """
(least) => {
  const main = document.querySelector('[data-testid="stMain"]');
  const sel = 'p, li, [data-testid="stCaptionContainer"], [data-testid="stWidgetLabel"],'
            + ' [data-testid="stMetricLabel"], [data-testid="stMetricValue"], td, th, summary, button';
  return [...main.querySelectorAll(sel)].filter(e => {
    if (e.closest('.js-plotly-plot, .katex, [data-testid="stCode"]')) return false;
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && e.textContent.trim() && parseFloat(getComputedStyle(e).fontSize) < least;
  }).map(e => `${e.tagName} ${parseFloat(getComputedStyle(e).fontSize)} px: ${e.textContent.trim().slice(0, 50)}`);
}
"""

# Every text drawn in a figure's SVG (tick labels, axis titles, titles, legends, annotations, colour bars, the
# player) smaller than `least`; and how many axis tick labels and titles there are, so the check has something
# to check. 3-D scenes draw their axis text in WebGL, not SVG, so they are not measured here.
SMALL_FIGURE_TEXT = """
(least) => {
  const texts = [...document.querySelectorAll('.js-plotly-plot svg text')].filter(e => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && e.textContent.trim();
  });
  const axes = document.querySelectorAll('.xtick text, .ytick text, .g-xtitle text, .g-ytitle text').length;
  return {axes, small: texts.filter(e => parseFloat(getComputedStyle(e).fontSize) < least)
    .map(e => `${e.getAttribute('class')} ${parseFloat(getComputedStyle(e).fontSize)} px: ${e.textContent.slice(0, 30)}`)};
}
"""

DRAW_EVERY_FIGURE = ("async () => { const m = document.querySelector('[data-testid=\"stMain\"]');"
                     " for (let y = 0; y < m.scrollHeight; y += 500) { m.scrollTo(0, y);"
                     " await new Promise(r => setTimeout(r, 100)); } m.scrollTo(0, 0); }")


SIDEBAR_SHOWN = "() => !!document.querySelector('[data-testid=\"stSidebar\"]')?.checkVisibility()"


def _open_presenting(browser, url: str, size=(1920, 1080)):
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    page.goto(url, timeout=120_000)
    page.wait_for_selector("h1", timeout=120_000)
    _settle(page)
    return page


def _wait_for_sidebar(page, shown: bool) -> None:
    """Wait (at most a minute, for a busy server's run to end) until the sidebar is shown or hidden."""
    page.wait_for_function(SIDEBAR_SHOWN if shown else f"() => !({SIDEBAR_SHOWN})()", timeout=60_000)


def _presenting(page) -> bool:
    return "present=1" in page.url and not page.locator('[data-testid="stSidebar"]').is_visible()


@pytest.mark.parametrize("path", PAGES)
def test_every_page_in_presenter_mode_is_readable_at_1920(server, browser, path):
    page = _open_presenting(browser, f"{server}/{path}?present=1")
    try:
        assert page.locator('[data-testid="stException"]').count() == 0, \
            page.locator('[data-testid="stException"]').first.inner_text()
        assert page.locator('[data-testid="stSidebar"]').count() == 1  # drawn, its values hold, but not shown
        _wait_for_sidebar(page, shown=False)
        assert not page.locator('[data-testid="stSidebar"]').is_visible()
        assert not page.locator('[data-testid="stExpandSidebarButton"]').is_visible()
        assert page.get_by_role("switch", name="Presenter mode").is_checked()
        page.evaluate(DRAW_EVERY_FIGURE)
        time.sleep(1.0)
        assert page.evaluate(SMALL_BODY_TEXT, BODY_PX) == []
        assert float(page.evaluate("() => parseFloat(getComputedStyle(document.querySelector("
                                   "'[data-testid=\"stMain\"] h1')).fontSize)")) > BODY_PX
        figures = page.evaluate(SMALL_FIGURE_TEXT, FIGURE_PX)
        if page.locator(".js-plotly-plot").count():
            assert figures["axes"] > 0
        assert figures["small"] == []
        assert page.evaluate(FIND_COLLISIONS) == []
        SHOTS.mkdir(exist_ok=True)
        height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
        page.set_viewport_size({"width": 1920, "height": min(max(height, 1080), 8000)})  # the whole page
        time.sleep(1.0)
        page.screenshot(path=str(SHOTS / f"present-{path or 'home'}-1920.png"))
    finally:
        page.close()


def test_the_switch_turns_presenter_mode_off_and_on(server, browser):
    page = _open_presenting(browser, f"{server}/forward?present=1&t=0.5")
    try:
        _wait_for_sidebar(page, shown=False)
        assert _presenting(page)
        switch = page.get_by_role("switch", name="Presenter mode")
        page.get_by_text("Presenter mode", exact=True).click()
        page.wait_for_function("() => !window.location.search.includes('present')", timeout=60_000)
        _settle(page)
        _wait_for_sidebar(page, shown=True)
        assert page.locator('[data-testid="stSidebar"]').is_visible() and not switch.is_checked()
        assert "t=0.5" in page.url  # the view's own parameters stay
        assert float(page.evaluate("() => parseFloat(getComputedStyle(document.querySelector("
                                   "'[data-testid=\"stMain\"] p')).fontSize)")) < BODY_PX
        page.get_by_text("Presenter mode", exact=True).click()
        page.wait_for_function("() => window.location.search.includes('present=1')", timeout=60_000)
        _settle(page)
        _wait_for_sidebar(page, shown=False)
        assert _presenting(page) and switch.is_checked()
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        page.close()


def test_presenter_mode_stays_on_across_a_page_link(server, browser):
    """Home's links to the pages drop the query parameters that no widget is bound to; the mode sets
    ?present=1 again on the page it leads to."""
    page = _open_presenting(browser, f"{server}/?present=1")
    try:
        page.locator('[data-testid="stMain"] [data-testid="stPageLink"]').filter(has_text="3 · Score field").click()
        page.wait_for_url("**/score**", timeout=60_000)
        _settle(page)
        page.wait_for_function("() => window.location.search.includes('present=1')", timeout=60_000)
        _wait_for_sidebar(page, shown=False)
        assert _presenting(page)
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        page.close()
