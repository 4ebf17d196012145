"""The lesson as one self-contained HTML file, to open in any browser without the lab's server.

`html()` writes every step of ui.lesson.STEPS at its control's default value: the text, the formula as an inline
SVG (drawn by matplotlib's mathtext, so no MathJax or KaTeX is fetched), the figure drawn by plotly.js carried
inside the file once (its animation frames included, so the ▶ player and the slider under a figure work), the
"try this", the check question with its answer behind a click, and the address of the full page in the live lab.
Nothing in the file is fetched from the network.

    python -m ui.lesson_file [OUT]     # writes lesson.html (or OUT); about 10 MB, 10-20 s on two cores
"""

from __future__ import annotations

import html as markup
import io
import re
import sys
import time

import plotly.io as pio
from plotly.offline import get_plotlyjs

from diffusion.checkpoints import atomic_write
from diffusion.cli import check_writable

from .lesson import STEPS
from .lesson_figures import build

TITLE = "Lesson: how a diffusion model learns a distribution"
LAB = "http://localhost:8501"  # where `streamlit run app.py` serves the lab by default
FORMULA_PT = 24  # formula font size in points (32 px, as large as the headings)
# LaTeX that st.latex (KaTeX) draws but matplotlib's mathtext does not know, and what mathtext draws instead.
MATHTEXT = ((r"\tfrac", r"\frac"), (r"\dfrac", r"\frac"), (r"\operatorname", r"\mathrm"), (r"\lvert", "|"),
            (r"\rvert", "|"), (r"\lVert", r"\|"), (r"\rVert", r"\|"), (r"\coloneqq", ":="))
PLOT_CONFIG = '{"responsive": true, "displaylogo": false, "scrollZoom": false}'

STYLE = """
body { font: 19px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1b1b1b;
       background: #fff; margin: 0; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 80px; }
h1 { font-size: 34px; line-height: 1.2; } h2 { font-size: 28px; line-height: 1.25; margin-top: 0; }
h3 { font-size: 22px; margin: 18px 0 6px; }
a { color: #0b5cab; }
nav ol { columns: 2; column-gap: 40px; padding-left: 28px; }
.step { border-top: 3px solid #e3e3e3; padding-top: 28px; margin-top: 44px; }
.formula { margin: 18px 0; text-align: center; overflow-x: auto; }
.formula svg { max-width: 100%; height: auto; }
.figure { width: 100%; min-height: 420px; }
.setting { color: #555; font-size: 17px; }
.try { background: #eef5fc; border-left: 5px solid #0072B2; padding: 10px 16px; margin: 18px 0; }
.question { background: #f7f7f7; padding: 6px 18px 14px; margin: 18px 0; }
.question ol { margin: 6px 0 10px; }
details { margin-top: 8px; } summary { cursor: pointer; color: #0b5cab; font-weight: 600; }
details p { background: #eaf6ee; border-left: 5px solid #009E73; padding: 8px 14px; }
.deeper, .pager { font-size: 17px; } .pager { color: #555; }
code { font-size: 16px; word-break: break-all; }
"""


def inline(text: str) -> str:
    """The lesson's markdown (**bold** and *italic* only) as HTML, everything else escaped."""
    out = markup.escape(text, quote=False)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"\*(?!\s)(.+?)(?<!\s)\*", r"<em>\1</em>", out)


def mathtext(tex: str) -> str:
    """`tex` with the commands mathtext lacks replaced by ones it draws the same way (MATHTEXT)."""
    for command, replacement in MATHTEXT:
        tex = re.sub(re.escape(command) + r"(?![A-Za-z])", lambda _: replacement, tex)
    return tex


def formula_svg(tex: str, prefix: str = "f") -> str:
    """`tex` drawn by matplotlib's mathtext as an inline <svg>: glyphs as paths, no fonts or files referenced.
    Its ids start with `prefix` so that several formulas can share one page."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.text(0, 0, f"${mathtext(tex)}$", fontsize=FORMULA_PT, color="#1b1b1b")
    buf = io.StringIO()
    with rc_context({"svg.fonttype": "path", "svg.hashsalt": "lesson", "mathtext.fontset": "dejavusans"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.04, transparent=True,
                    metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]  # the XML declaration and DOCTYPE (which names a DTD by URL)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    svg = re.sub(r"<style[^>]*>.*?</style>", "", svg, flags=re.S)  # inline, its `*` rule would style the whole page
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg)
    svg = svg.replace("xlink:href=", "href=")
    svg = re.sub(r'\b(id="|href="#|url\(#)', lambda m: m.group(1) + prefix + "-", svg)
    svg = re.sub(r"\s*\n\s*", " ", svg).strip()
    label = markup.escape(tex, quote=True)
    return svg.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1)


def figure_spec(fig) -> dict:
    """A plotly figure (go.Figure, or the dict ui.figures.figure_dict makes) as a dict, frames included. A
    go.Figure's numpy arrays become plotly's base64 typed arrays (as a figure sent back from a worker process
    has them): a third smaller than written out in digits."""
    return fig.to_dict() if hasattr(fig, "to_dict") else fig


def figure_json(spec: dict) -> str:
    """A figure dict as compact JSON, with <, > and / escaped so that it can sit inside a <script>."""
    return pio.to_json(spec, validate=False, pretty=False)


def _question(step, n: int) -> str:
    q = step.question
    parts = ['<div class="question">', "<h3>Check yourself</h3>", f"<p>{inline(q.prompt)}</p>"]
    if q.choices:
        parts.append('<ol type="A">' + "".join(f"<li>{inline(c)}</li>" for c in q.choices) + "</ol>")
    else:
        parts.append("<p><em>Guess a number, then look.</em></p>")
    parts.append(f'<details id="answer-{n}"><summary>Show the answer</summary>'
                 f"<p><strong>Answer: {inline(q.answer_text())}.</strong> {inline(q.why)}</p></details></div>")
    return "\n".join(parts)


def step_html(n: int, step, spec: dict) -> str:
    """Step number `n` (1-based) as a <section>, its figure drawn from the dict `spec` by the inline plotly.js."""
    c = step.control
    here = ("in this file the figure's own ▶ player and slider work" if spec.get("frames")
            else "this file draws the figure at the value above; hover over it to read its values")
    url = step.page_url(LAB)
    pager = [f'<a href="#step-{n - 1}">Previous step</a>'] if n > 1 else []
    pager.append('<a href="#contents">Contents</a>')
    if n < len(STEPS):
        pager.append(f'<a href="#step-{n + 1}">Next step</a>')
    return "\n".join([
        f'<section class="step" id="step-{n}">',
        f"<h2>{n} · {inline(step.title)}</h2>",
        f"<p>{inline(step.text)}</p>",
        f'<div class="formula">{formula_svg(step.formula, f"s{n}")}</div>',
        f'<div class="figure" id="figure-{n}"></div>',
        f'<script>draw("figure-{n}", {figure_json(spec)});</script>',
        f'<p class="setting">Drawn with <strong>{inline(c.label)}</strong> = {inline(str(c.default))}.</p>',
        f'<div class="try"><strong>Try this.</strong> {inline(step.try_this)}<br><em>The control named here is in '
        f"the live lab (the link below); {here}.</em></div>",
        _question(step, n),
        f'<p class="deeper">Go deeper: the full page on the same view, in the live lab (<code>streamlit run '
        f'app.py</code>): <a href="{markup.escape(url)}">{markup.escape(url)}</a></p>',
        f'<p class="pager">{" · ".join(pager)}</p>',
        "</section>",
    ])


def html(figure=None, progress=None) -> str:
    """The whole lesson as one self-contained HTML document, every step at its control's default value.

    `figure(step_key, value)` gives a step's plotly figure (go.Figure or its dict; default
    ui.lesson_figures.build); `progress(done, total)` is called after each step."""
    figure = build if figure is None else figure
    toc = "".join(f'<li><a href="#step-{n}">{inline(s.title)}</a></li>' for n, s in enumerate(STEPS, 1))
    sections = []
    for n, step in enumerate(STEPS, 1):
        sections.append(step_html(n, step, figure_spec(figure(step.key, step.control.default))))
        if progress is not None:
            progress(n, len(STEPS))
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{markup.escape(TITLE)}</title>",
        f"<style>{STYLE}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "<script>function draw(id, fig) {\n"
        f"  fig.config = {PLOT_CONFIG};\n"
        "  delete fig.layout.width; fig.layout.autosize = true;\n"
        "  Plotly.newPlot(document.getElementById(id), fig);\n}</script>",
        "</head><body><main>",
        f"<h1>{markup.escape(TITLE)}</h1>",
        f"<p>The lab's whole argument in {len(STEPS)} steps, from “{STEPS[0].title}” to “{STEPS[-1].title}”, "
        "each with its formula, a figure (most set the exact answer beside the trained network's), and a "
        "question to check yourself. This file needs no server and no network: the figures are drawn inside it, "
        "and their ▶ players and sliders work. The controls that <em>Try this</em> names are in the live lab "
        "(<code>streamlit run app.py</code>), linked under each step.</p>",
        f'<nav id="contents"><h2>Steps</h2><ol>{toc}</ol></nav>',
        *sections,
        "</main></body></html>",
    ])


def write(path: str, figure=None, progress=None) -> int:
    """Write the lesson to `path` atomically (diffusion.checkpoints.atomic_write): a failure leaves the old file
    or none, never part of one. Returns the size in bytes."""
    data = html(figure, progress).encode("utf-8")
    atomic_write(path, data)
    return len(data)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) > 1 or any(a.startswith("-") for a in argv):
        print("usage: python -m ui.lesson_file [OUT]   (OUT: the HTML file to write, default lesson.html)",
              file=sys.stderr)
        return 2
    out = argv[0] if argv else "lesson.html"
    try:
        check_writable(out, ".html", "OUT")
    except ValueError as e:
        print(f"cannot write {out}: {e}", file=sys.stderr)
        return 2
    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        step = STEPS[done - 1]
        print(f"step {done:2d}/{total} {step.key:<10} {time.perf_counter() - start:6.1f} s", flush=True)

    try:
        size = write(out, progress=progress)
    except OSError as e:
        print(f"cannot write {out}: {e.strerror or e}", file=sys.stderr)
        return 1
    print(f"wrote {out}: {size / 1e6:.1f} MB in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
