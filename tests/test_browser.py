"""The app in a real browser: Debian's Chromium driven by Playwright against `streamlit run app.py`.

Every page loads without an exception box, moving the time slider changes the chart, a shared URL
reopens the same view, and the reverse page draws its particles. Screenshots of every page go to
screenshots/ (ignored by git). The tests skip, saying why, where no Chromium is installed.
"""

from __future__ import annotations

import pathlib
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHOTS = ROOT / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PAGES = ["", "lesson", "data", "energy", "score", "forward", "train", "denoise", "reverse", "your_data", "digits_generate",
         "digits_journey", "digits_prompts", "digits_train"]

NO_BROWSER = ("the browser tests need Debian's Chromium, which is not installed: apt-get install chromium "
              "(.ci/run installs it; Playwright's own browser download does not work offline)")
pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason=NO_BROWSER)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server():
    """A fresh `streamlit run app.py` on a free port: (process, url), once the port accepts connections."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
                             "--server.address", "127.0.0.1", "--server.port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def server():
    proc, url = _start_server()
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield b
        b.close()


def _open(browser, url: str, wait_for: str = '[data-testid="stSidebar"] [data-testid="stSlider"]'):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url, timeout=120_000)
    page.wait_for_selector(wait_for, state="attached", timeout=120_000)
    _settle(page)
    return page


def _settle(page, timeout: float = 180):
    """Wait until the script run ends (Streamlit's running indicator is gone)."""
    time.sleep(1.0)
    deadline = time.time() + timeout
    while time.time() < deadline and page.locator('[data-testid="stStatusWidget"]').count():
        time.sleep(0.3)
    time.sleep(0.5)


# Every text the sidebar navigation shows, recorded from the first DOM change on (before any script ran).
RECORD_NAVIGATION = """
window.__navs = [];
new MutationObserver(() => {
  const n = document.querySelector('[data-testid="stSidebarNav"]');
  const t = n ? n.innerText : null;
  if (window.__navs[window.__navs.length - 1] !== t) window.__navs.push(t);
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def test_a_cold_start_shows_only_the_titled_navigation(browser):
    """On a fresh server's first run Streamlit would list pages/ by file name ("app", "data", ...) until
    app.py draws the titled navigation; a visitor must never see that list."""
    proc, url = _start_server()
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.add_init_script(RECORD_NAVIGATION)
        page.goto(f"{url}/data", wait_until="commit", timeout=120_000)
        page.wait_for_selector("h1", timeout=120_000)
        _settle(page)
        navs = [n for n in page.evaluate("() => window.__navs") if n]
        assert navs, "no navigation was shown"
        for text in navs:
            assert "1 · Data and prompts" in text or "The story on 2-D data" in text, text
            assert "digits generate" not in text and "your data" not in text, text
        assert page.locator("h1").first.inner_text() == "1 · Data and prompts"
        page.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# Text that collides inside a figure: legends, axis and figure titles, subplot titles, colour bars, the
# player's buttons and its current-value label, each a box in the page; two kinds whose boxes overlap by more
# than 2 px, or one that sticks out of its figure, is a collision a projector makes unreadable.
FIND_COLLISIONS = """
() => {
  const out = [];
  const box = e => { const r = e.getBoundingClientRect(); return {x0: r.left, y0: r.top, x1: r.right, y1: r.bottom}; };
  const hit = (a, b) => Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0) > 2 && Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0) > 2;
  document.querySelectorAll('.js-plotly-plot').forEach((plot, k) => {
    const items = [];
    const add = (sel, kind) => plot.querySelectorAll(sel).forEach(e => {
      if (kind !== 'colour bar' && kind !== 'legend' && (e.closest('.colorbar') || e.closest('.legend'))) return;
      const r = box(e);
      if (r.x1 - r.x0 > 0 && r.y1 - r.y0 > 0) items.push({kind, text: (e.textContent || '').slice(0, 40), r});
    });
    add('.legend', 'legend');
    add('text[class$="title"]:not(.gtitle):not(.legendtitletext)', 'axis title');
    add('.gtitle', 'title');
    add('.annotation-text-g', 'annotation');
    add('.updatemenu-button', 'button');
    add('.slider-current-value', 'current value');
    add('.colorbar', 'colour bar');
    for (let i = 0; i < items.length; i++) for (let j = i + 1; j < items.length; j++) {
      const a = items[i], b = items[j];
      if (a.kind === b.kind && (a.kind === 'button' || a.kind === 'annotation')) continue;
      if (hit(a.r, b.r)) out.push(`figure ${k}: ${a.kind} "${a.text}" overlaps ${b.kind} "${b.text}"`);
    }
    const p = box(plot);
    items.forEach(it => {
      if (it.r.x0 < p.x0 - 2 || it.r.x1 > p.x1 + 2 || it.r.y0 < p.y0 - 2 || it.r.y1 > p.y1 + 2)
        out.push(`figure ${k}: ${it.kind} "${it.text}" sticks out of the figure`);
    });
  });
  return out;
}
"""


@pytest.mark.parametrize("size", [(1400, 900), (1920, 1080)], ids=["1400x900", "1920x1080"])
@pytest.mark.parametrize("path", PAGES)
def test_every_page_loads_without_an_exception_or_colliding_text(server, browser, path, size):
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    try:
        page.goto(f"{server}/{path}", timeout=120_000)
        page.wait_for_selector('[data-testid="stSidebar"] [data-testid="stSlider"]', state="attached", timeout=120_000)
        _settle(page)
        assert page.locator('[data-testid="stException"]').count() == 0, page.locator('[data-testid="stException"]').first.inner_text()
        assert page.locator('[data-testid="stAlertContentError"]').count() == 0
        assert page.locator("h1").count() >= 1
        page.evaluate("async () => { const m = document.querySelector('[data-testid=\"stMain\"]');"
                      " for (let y = 0; y < m.scrollHeight; y += 500) { m.scrollTo(0, y);"
                      " await new Promise(r => setTimeout(r, 100)); } m.scrollTo(0, 0); }")  # draw every figure
        time.sleep(1.0)
        assert page.evaluate(FIND_COLLISIONS) == []
        SHOTS.mkdir(exist_ok=True)
        height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
        page.set_viewport_size({"width": size[0], "height": min(max(height, size[1]), 8000)})  # the whole page
        time.sleep(1.0)
        page.screenshot(path=str(SHOTS / f"{path or 'home'}-{size[0]}.png"))
    finally:
        page.close()


MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".gif": b"GIF89a", ".csv": b"x,y", ".html": b"<!DOCTYPE html>"}


def _check_downloads(page) -> int:
    """Click every download button on the page; each must answer with a file of the promised type (the server
    draws it only when asked, so a failure there would otherwise show only in the server's log)."""
    import io

    from PIL import Image

    buttons = page.locator('[data-testid="stDownloadButton"] button')
    for i in range(buttons.count()):
        with page.expect_download(timeout=180_000) as download:
            buttons.nth(i).scroll_into_view_if_needed()
            buttons.nth(i).click()
        name = download.value.suggested_filename
        data = pathlib.Path(download.value.path()).read_bytes()
        assert data.startswith(MAGIC[pathlib.Path(name).suffix]), (name, data[:16])
        if name.endswith((".png", ".gif")):
            img = Image.open(io.BytesIO(data))
            img.load()
            assert img.size[0] >= 300 and img.size[1] >= 150, (name, img.size)
    return buttons.count()


@pytest.mark.parametrize("path", [p for p in PAGES if p not in ("train", "digits_train")])  # training pages': after a run
def test_every_download_button_gives_a_valid_file(server, browser, path):
    page = browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    try:
        page.goto(f"{server}/{path}", timeout=120_000)
        page.wait_for_selector('[data-testid="stSidebar"] [data-testid="stSlider"]', state="attached", timeout=120_000)
        _settle(page)
        if path == "your_data":  # its downloads appear once there are points
            page.get_by_role("tab", name="Start from a preset").click()
            page.get_by_role("button", name=re.compile(r"Load$")).click()
            _settle(page)
        assert _check_downloads(page) >= 1, "every page offers its figures for download"
    finally:
        page.close()


def _chart_json(page) -> str:
    """The data of the first plotly chart, as the browser holds it."""
    return page.evaluate("() => JSON.stringify(document.querySelector('.js-plotly-plot')._fullData.map(t => [t.x, t.y, t.z]))")


def test_the_time_slider_changes_the_chart_and_the_url(server, browser):
    page = _open(browser, f"{server}/forward?dataset=moons&t=0.3", wait_for=".js-plotly-plot")
    try:
        before = _chart_json(page)
        slider = page.get_by_role("slider", name="Time t")
        slider.focus()
        for _ in range(3):
            slider.press("ArrowRight")
        page.wait_for_function("() => window.location.search.includes('t=0.33')", timeout=60_000)
        _settle(page)
        assert _chart_json(page) != before  # the figure now opens at the frame of t = 0.33
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        page.close()


def test_a_shared_url_reopens_the_same_view(server, browser):
    url = f"{server}/forward?dataset=pinwheel&schedule=linear&t=0.62&sampler=euler&steps=40"
    page = _open(browser, url)
    try:
        from diffusion.schedules import make_schedule

        side = page.locator('[data-testid="stSidebar"]').inner_text()
        lam = make_schedule("linear").logsnr(0.62).item()  # the readout under t is the linear schedule's
        assert "Pinwheel" in side and "0.62" in side and f"λ = {lam:.2f}" in side
        assert "/forward" in page.url and "t=0.62" in page.url and "dataset=pinwheel" in page.url
        page.get_by_text("3 · Score field").click()
        page.wait_for_url("**/score**", timeout=60_000)
        _settle(page)
        assert "t=0.62" in page.url and "dataset=pinwheel" in page.url
        side = page.locator('[data-testid="stSidebar"]').inner_text()
        assert "Pinwheel" in side and "0.62" in side and f"λ = {lam:.2f}" in side
    finally:
        page.close()


def test_the_reverse_page_draws_particles(server, browser):
    page = _open(browser, f"{server}/reverse?dataset=moons&sampler=ddim&steps=10", wait_for=".js-plotly-plot")
    try:
        n = page.evaluate("() => document.querySelector('.js-plotly-plot')._fullData"
                          ".filter(t => t.mode && t.mode.includes('markers')).reduce((a, t) => a + (t.x ? t.x.length : 0), 0)")
        assert n >= 1000
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        page.close()


def test_training_starts_reports_progress_and_stops_with_its_model_kept(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page.goto(f"{server}/train?dataset=moons", timeout=120_000)
    page.wait_for_selector('[data-testid="stSidebar"] [data-testid="stSlider"]', state="attached", timeout=120_000)
    _settle(page)
    try:
        steps = page.locator('input[aria-label="Training steps"]')
        steps.fill("5000")
        steps.press("Enter")
        _settle(page)
        page.locator('[data-testid="stMain"] button').filter(has_text="Train").first.click()
        page.wait_for_selector('[data-testid="stProgress"]', timeout=120_000)
        page.get_by_text("steps/s").first.wait_for(timeout=120_000)  # the progress line reports a speed once steps run
        page.get_by_role("button", name="Stop and keep the model so far").click()
        page.get_by_text("that model was kept").wait_for(timeout=180_000)
        _settle(page)
        side = page.locator('[data-testid="stSidebar"]')
        side.get_by_text("Model", exact=True).click()
        deadline = time.time() + 60
        while "trained here:" not in side.inner_text() and time.time() < deadline:  # the session's model serves
            time.sleep(0.5)
        assert "trained here:" in side.inner_text()
        assert page.locator('[data-testid="stException"]').count() == 0
        assert _check_downloads(page) == 5  # the loss curve and the samples, and the three targets view's three
    finally:
        page.close()


def test_the_digit_page_generates_a_grid(server, browser):
    page = _open(browser, f"{server}/digits_generate?sampler=ddim&steps=10", wait_for=".js-plotly-plot")
    try:
        shape = page.evaluate("() => { const z = document.querySelector('.js-plotly-plot')._fullData[0].z;"
                              " return z ? [z.length, z[0].length] : null; }")
        assert shape is not None and shape[0] >= 28 and shape[1] >= 28
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        page.close()


def test_the_click_grid_fills_the_axes_of_page_8(server, browser):
    """The axes of the canvas show exactly the clickable grid's range (equal axes must not widen one of them)."""
    page = _open(browser, f"{server}/your_data")
    try:
        page.get_by_role("tab", name="Click to place points").click()
        time.sleep(1.0)
        ranges = page.evaluate("() => { const p = [...document.querySelectorAll('.js-plotly-plot')]"
                               ".find(e => e.offsetParent && e._fullLayout.title.text.startsWith('Your points'));"
                               " const x = p._fullData[0].x; const y = p._fullData[0].y;"
                               " return [p._fullLayout.xaxis.range, p._fullLayout.yaxis.range,"
                               " [Math.min(...x), Math.max(...x)], [Math.min(...y), Math.max(...y)]]; }")
        (ax, ay, gx, gy) = ranges
        assert ax == pytest.approx(gx, abs=1e-6) and ay == pytest.approx(gy, abs=1e-6), ranges
    finally:
        page.close()


def test_live_digits_show_progress_and_can_be_stopped_and_continued(server, browser):
    """A digit view that was not computed ahead (seed 7, 8 per digit) samples row by row with a progress bar
    and a Stop button where the grid will be; Stop keeps what is done, Continue finishes it."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.goto(f"{server}/digits_generate?digits.seed=7&digits.per=8", timeout=120_000)
        stop = page.get_by_test_id("stButton").get_by_role("button", name="Stop")
        stop.wait_for(timeout=120_000)
        assert "of 4 rows" in page.locator('[data-testid="stProgress"]').first.inner_text()
        stop.click()
        page.get_by_text("Stopped:").wait_for(timeout=120_000)
        page.get_by_role("button", name=re.compile(r"Continue$")).click()
        time.sleep(1.0)
        _settle(page)
        assert page.get_by_text("Stopped:").count() == 0
        assert page.locator('[data-testid="stException"]').count() == 0
        z = page.evaluate("() => document.querySelector('.js-plotly-plot')._fullData[0].z.length")
        assert z >= 4 * 28  # four rows of digits drawn
    finally:
        page.close()
