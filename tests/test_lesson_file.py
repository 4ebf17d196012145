"""The lesson as one offline HTML file (ui/lesson_file.py).

The fast tests build the file with small stand-in figures (one of them animated), which checks its structure:
one copy of plotly.js, one figure per step, every formula an inline SVG, the answers behind a click, nothing
fetched from the network. The slow ones run the command `python -m ui.lesson_file` once with the real figures
(10-20 s on two cores) and check its size and its animations; the browser test opens that file from disk in
Chromium with networking off and checks that every figure draws, a player plays and every answer reveals.
"""

from __future__ import annotations

import html as markup
import json
import os
import pathlib
import re
import subprocess
import sys
import time

import plotly.graph_objects as go
import pytest
from plotly.offline import get_plotlyjs

from tests.test_browser import CHROMIUM, NO_BROWSER, browser  # noqa: F401 (browser: the shared Chromium fixture)
from ui import lesson_file
from ui.lesson import STEPS

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHOTS = ROOT / "screenshots"
MAX_BYTES = 25 * 10**6  # the limit on the file
# A stand-in figure gets frames on this step (any step's figure may have them; the real animated ones are the
# score field, the forward process and the learned denoiser).
ANIMATED = "score"


def stand_in(step_key: str, value) -> go.Figure:
    """A small figure, titled by its step; with two animation frames on ANIMATED."""
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], name=step_key), layout=dict(title=f"{step_key} at {value}"))
    if step_key == ANIMATED:
        fig.frames = [go.Frame(name=str(k), data=[go.Scatter(x=[0, 1], y=[k, 2 * k])]) for k in range(2)]
    return fig


@pytest.fixture(scope="module")
def small():
    done = []
    text = lesson_file.html(stand_in, progress=lambda n, total: done.append((n, total)))
    return text, done


def outside_scripts(text: str) -> str:
    """The document without the contents of its <script> elements (plotly.js, the figures' data)."""
    return re.sub(r"<script\b[^>]*>.*?</script>", "<script></script>", text, flags=re.S)


def figure_specs(text: str) -> dict[int, dict]:
    """Step number -> the figure dict handed to draw() in the file."""
    return {int(m.group(1)): json.loads(m.group(2))
            for m in re.finditer(r'<script>draw\("figure-(\d+)", (.*?)\);</script>', text, flags=re.S)}


def check_structure(text: str) -> None:
    n = len(STEPS)
    assert text.count(get_plotlyjs()) == 1, "plotly.js must be carried exactly once"
    assert outside_scripts(text).count("<script") == n + 2, "plotly.js, draw(), and one script per figure"
    assert len(re.findall(r'<div class="figure" id="figure-\d+"></div>', text)) == n
    assert sorted(figure_specs(text)) == list(range(1, n + 1))
    body = outside_scripts(text)
    for k in range(1, n + 1):
        assert f'id="step-{k}"' in body and f'href="#step-{k}"' in body  # the step and its line in the contents
    # every formula an inline SVG, the glyphs as paths: no fonts, no images, no external references
    formulas = re.findall(r'<div class="formula">(.*?)</div>', body, flags=re.S)
    assert len(formulas) == n
    for svg in formulas:
        assert svg.startswith("<svg ") and svg.endswith("</svg>") and "<path" in svg and "<use" in svg
        assert not re.search(r"<image|<text|@font-face|url\((?!#)|href=\"(?!#)", svg)
    ids = re.findall(r'\bid="([^"]+)"', body)
    assert len(ids) == len(set(ids)), "ids repeated between formulas"
    # nothing fetched from the network: no script, style, font or image with an http(s) address
    assert not re.search(r"""\bsrc\s*=\s*["']?\s*(https?:)?//""", body, flags=re.I)
    assert not re.search(r"""<link\b""", body, flags=re.I)
    assert not re.search(r"""@import|url\(\s*["']?(https?:)?//""", body, flags=re.I)
    # the only addresses outside the scripts are the plain links to the live lab
    for url in re.findall(r"https?://[^\s\"'<]+", body):
        assert url.startswith(lesson_file.LAB + "/"), url


def test_every_step_figure_formula_and_contents_line_is_there_once(small):
    text, done = small
    check_structure(text)
    assert done == [(k, len(STEPS)) for k in range(1, len(STEPS) + 1)]


def test_every_answer_is_behind_a_click_and_nowhere_else(small):
    text, _ = small
    body = outside_scripts(text)
    details = re.findall(r"<details\b.*?</details>", body, flags=re.S)
    assert len(details) == len(STEPS)
    rest = re.sub(r"<details\b.*?</details>", "", body, flags=re.S)
    for step, block in zip(STEPS, details):
        q = step.question
        assert "<summary>Show the answer</summary>" in block
        answer = f"Answer: {lesson_file.inline(q.answer_text())}."
        why = lesson_file.inline(q.why)
        assert answer in block and why in block
        assert answer not in rest and why not in rest, step.key
        for choice in q.choices:  # the choices are shown beside the question, outside the answer
            assert f"<li>{lesson_file.inline(choice)}</li>" in rest


def test_text_markdown_is_converted_and_everything_else_escaped(small):
    text, _ = small
    body = outside_scripts(text)
    for step in STEPS:
        assert f"<p>{lesson_file.inline(step.text)}</p>" in body
        assert lesson_file.inline(step.try_this) in body
        assert step.page_url(lesson_file.LAB).replace("&", "&amp;") in body
    assert "*" not in re.sub(r"<svg\b.*?</svg>", "", body, flags=re.S).replace(lesson_file.STYLE, "")
    assert lesson_file.inline("a **b** *c* <d> & e*f") == "a <strong>b</strong> <em>c</em> &lt;d&gt; &amp; e*f"


def test_the_animated_figure_keeps_its_frames_and_the_others_draw_as_given(small):
    text, _ = small
    specs = figure_specs(text)
    for k, step in enumerate(STEPS, 1):
        spec = specs[k]
        assert spec["data"][0]["name"] == step.key
        assert spec["layout"]["title"]["text"] == f"{step.key} at {step.control.default}"  # the default value
        assert len(spec.get("frames", [])) == (2 if step.key == ANIMATED else 0)
    sections = re.findall(r'<section class="step".*?</section>', outside_scripts(text), flags=re.S)
    players = [k for k, section in enumerate(sections) if "the figure's own ▶ player and slider work" in section]
    assert players == [[s.key for s in STEPS].index(ANIMATED)]  # said only where the figure has a player


def test_every_formula_renders_with_mathtext_after_translation(small):
    text, _ = small
    for n, step in enumerate(STEPS, 1):  # drawn by mathtext, labelled with the LaTeX st.latex draws on the page
        label = markup.escape(step.formula, quote=True)
        assert f'<div class="formula"><svg role="img" aria-label="{label}" ' in text, step.key
        assert f'id="s{n}-' in text
    assert lesson_file.mathtext(r"\tfrac{1}{2}\dfrac{a}{b}\tfracx") == r"\frac{1}{2}\frac{a}{b}\tfracx"


def test_a_failed_write_leaves_no_file_and_no_temporary_file(tmp_path):
    out = tmp_path / "lesson.html"

    def broken(step_key, value):
        if step_key == STEPS[-1].key:
            raise RuntimeError("the last figure fails")
        return stand_in(step_key, value)

    with pytest.raises(RuntimeError):
        lesson_file.write(str(out), broken)
    assert list(tmp_path.iterdir()) == []
    out.write_text("the old lesson")
    with pytest.raises(RuntimeError):
        lesson_file.write(str(out), broken)
    assert out.read_text() == "the old lesson" and list(tmp_path.iterdir()) == [out]
    size = lesson_file.write(str(out), stand_in)
    assert size == out.stat().st_size and list(tmp_path.iterdir()) == [out]
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not mkstemp's private one


def test_the_command_says_what_is_wrong_with_its_argument(tmp_path, capsys):
    assert lesson_file.main([str(tmp_path / "missing" / "lesson.html")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert lesson_file.main([str(tmp_path / "lesson.txt")]) == 2
    assert "must name a .html file" in capsys.readouterr().err
    (tmp_path / "folder.html").mkdir()
    assert lesson_file.main([str(tmp_path / "folder.html")]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert lesson_file.main(["a.html", "b.html"]) == 2
    assert "usage" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["folder.html"]


# --- the real file, written by the command --------------------------------------------------------------------

@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("lesson") / "lesson.html"
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "ui.lesson_file", str(out)], cwd=ROOT, capture_output=True,
                         text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    seconds = time.perf_counter() - start
    assert run.returncode == 0, run.stderr[-3000:]
    return out, run.stdout, seconds


@pytest.mark.slow
def test_the_command_writes_the_whole_lesson_under_25_mb(written):
    out, stdout, seconds = written
    lines = stdout.splitlines()
    assert [line.split()[1] for line in lines[:-1]] == [f"{k}/{len(STEPS)}" for k in range(1, len(STEPS) + 1)]
    assert lines[-1].startswith(f"wrote {out}: ")
    assert [p.name for p in out.parent.iterdir()] == ["lesson.html"]  # the temporary file is gone
    size = out.stat().st_size
    assert size <= MAX_BYTES
    text = out.read_text(encoding="utf-8")
    check_structure(text)
    specs = figure_specs(text)
    animated = [STEPS[k - 1].key for k, spec in specs.items() if spec.get("frames")]
    assert {"score", "forward", "learned"} <= set(animated)
    for k, spec in specs.items():  # a player's steps name frames the figure carries
        names = {f["name"] for f in spec.get("frames", [])}
        for slider in spec["layout"].get("sliders", []):
            assert {s["args"][0][0] for s in slider["steps"]} <= names, STEPS[k - 1].key
    print(f"lesson.html: {size / 1e6:.1f} MB, written in {seconds:.1f} s")


# --- the file in a browser, from disk, with networking off ----------------------------------------------------

DRAWN = """() => [...document.querySelectorAll('.js-plotly-plot')]
    .filter(d => d.querySelector('.main-svg') && d._fullData && d._fullData.length > 0).length"""
ANIMATED_DIVS = """() => [...document.querySelectorAll('.js-plotly-plot')]
    .filter(d => d._transitionData && d._transitionData._frames.length > 0).map(d => d.id)"""


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason=NO_BROWSER)
def test_the_file_opens_offline_in_chromium_draws_every_figure_and_reveals_the_answers(written, browser):  # noqa: F811
    out, _, _ = written
    context = browser.new_context(offline=True, viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    fetched, errors = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))

    def only_files(route):
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            fetched.append(route.request.url)
            route.abort()

    page.route("**/*", only_files)
    page.goto(out.as_uri(), wait_until="load", timeout=120_000)
    page.wait_for_function(f"({DRAWN})() === {len(STEPS)}", timeout=120_000)
    assert page.evaluate(DRAWN) == len(STEPS)

    animated = page.evaluate(ANIMATED_DIVS)
    assert len(animated) >= 3
    # Press ▶ Play: the player steps through the file's own frames. (Pause is not pressed: plotly.js rejects the
    # interrupted Plotly.animate promise unhandled, a page error of plotly's own that the live lab shows as well.)
    page.evaluate("() => { window.played = {}; }")
    for div in animated:
        page.evaluate("id => { window.played[id] = [];"
                      " document.getElementById(id).on('plotly_animatingframe', e => window.played[id].push(e.name)); }",
                      div)
        page.locator(f"#{div} .updatemenu-button", has_text="Play").first.click()
        page.wait_for_function("id => window.played[id].length >= 2", arg=div, timeout=30_000)

    summaries = page.locator("details summary")
    assert summaries.count() == len(STEPS)
    for k, step in enumerate(STEPS):
        answer = page.locator("details p").nth(k)
        assert not answer.is_visible()
        summaries.nth(k).click()
        assert answer.is_visible()
        assert markup.unescape(re.sub(r"<[^>]+>", "", lesson_file.inline(step.question.why))) in answer.inner_text()

    assert fetched == [] and errors == []
    SHOTS.mkdir(exist_ok=True)
    page.evaluate("() => window.scrollTo(0, 0)")
    page.set_viewport_size({"width": 1920, "height": 4000})
    page.screenshot(path=str(SHOTS / "lesson-offline.png"))
    page.locator("#step-5").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "lesson-offline-step5.png"))
    context.close()
