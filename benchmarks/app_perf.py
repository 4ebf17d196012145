"""How fast the app answers: cold start in Chromium, server time per widget change, sampling and drawing.

    python benchmarks/app_perf.py                 # everything (needs Debian's chromium for the cold start)
    python benchmarks/app_perf.py --skip-browser  # server-side figures only
    python benchmarks/app_perf.py --views         # the views table: cold and warm open, control changes
    python benchmarks/app_perf.py --lesson        # the lesson: each step's cold and warm first view, Next

Server time per widget change is the wall time of the script rerun that the change triggers, measured
with streamlit.testing.v1.AppTest (the same script run a browser would trigger, without the network),
after each page's first load, as the median over a sequence of changes.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# (page file, [(widget kind, key, values to cycle through)]); sidebar keys first, then the page's own.
CHANGES = {
    "pages/home.py": [("sidebar.slider", "t", [0.2, 0.5, 0.8]), ("sidebar.selectbox", "label", ["upper moon", "none"])],
    "pages/data.py": [("sidebar.selectbox", "label", ["upper moon", "lower moon", "none"]),
                      ("select_slider", "data.n", [200, 800])],
    "pages/energy.py": [("slider", "energy.n", [40, 120]), ("number_input", "energy.c", [3.0, -2.0]),
                        ("sidebar.selectbox", "label", ["upper moon", "none"])],
    "pages/score.py": [("sidebar.slider", "t", [0.2, 0.5, 0.8]), ("select_slider", "score.arrows", [11, 15])],
    "pages/forward.py": [("sidebar.slider", "t", [0.2, 0.5, 0.8]), ("sidebar.selectbox", "label", ["upper moon", "none"])],
    "pages/denoise.py": [("sidebar.slider", "t", [0.2, 0.5, 0.8]), ("slider", "denoise.x1", [0.5, -1.0]),
                         ("select_slider", "denoise.n", [64, 16])],
    "pages/reverse.py": [("sidebar.slider", "t", [0.2, 0.5, 0.8]), ("radio", "reverse.model", ["Exact oracle only",
                                                                                               "Exact and learned"])],
}


# The views of docs/measurements.md's "Views" table: (view, page, URL query, [(widget kind, key, values)]). Each is
# opened once to warm the server, then opened again in a fresh session (the warm open) and its controls changed.
VIEWS = [
    ("Z_θ of a learned energy (2)", "pages/energy.py", {"dataset": "moons"},
     [("sidebar.slider", "t", [0.5, 0.3])]),
    ("One coordinate at a time (2)", "pages/energy.py", {"dataset": "moons"},
     [("slider", "energy.a", [1.0, -1.0])]),
    ("Denoising score matching, seen (6)", "pages/denoise.py", {"dataset": "moons"},
     [("select_slider", "denoise.dsm.n", [4096, 16]), ("slider", "denoise.dsm.x1", [0.0, -1.0])]),
    ("Live KL beside the loss (5)", "pages/train.py", {"dataset": "moons"}, []),
    ("Memorising vs generalising (6)", "pages/denoise.py", {"dataset": "moons"},
     [("select_slider", "denoise.n", [16, 256])]),
    # page 7's sections sample for seconds per value: the values one slider step away are computed ahead
    # (ui/prefetch.py), so a step answers at once and a far jump waits; both are measured
    ("What guidance samples (7): one step", "pages/reverse.py", {"dataset": "moons", "label": "upper moon", "w": "2"},
     [("slider", "reverse.gw", [2.5, 3.0, 2.5, 2.0])]),
    ("What guidance samples (7): a far jump", "pages/reverse.py", {"dataset": "moons", "label": "upper moon", "w": "2"},
     [("slider", "reverse.gw", [6.0])]),
    ("A composed prompt (7): one step", "pages/reverse.py", {"dataset": "moons"},
     [("slider", "reverse.w_and", [2.5, 2.0]), ("slider", "reverse.w_not", [1.5, 1.0])]),
    ("A composed prompt (7): a far jump", "pages/reverse.py", {"dataset": "moons"},
     [("slider", "reverse.w_and", [4.0])]),
    ("Three targets, one prediction (5)", "pages/train.py", {"dataset": "moons"},
     [("slider", "train.targets_t", [0.2, 0.8]), ("number_input", "train.targets_draw", [1, 2])]),
]


def view_times(repeats: int = 2) -> list:
    """[(view, cold open s, warm open s, median change s, max change s, changes)]: the cold open is the first
    session's (it fills the server's caches), the warm open a second session's. Each change is made `repeats`
    times, so the first visit of a value and the cached revisit both count (a far jump once only: its revisit is
    cached). Before each change the background work a view started is let finish, as it would while a student
    looks at the figure."""
    from streamlit.testing.v1 import AppTest

    from ui.prefetch import wait_all

    def open_page(page, query):
        at = AppTest.from_file(os.path.join(ROOT, "app.py"), default_timeout=600)
        at.query_params.update(query)
        start = time.perf_counter()
        at.run()
        if page != "pages/home.py":
            at.switch_page(page).run()
        return at, time.perf_counter() - start

    rows = []
    for name, page, query, changes in VIEWS:
        _, cold = open_page(page, query)
        at, warm = open_page(page, query)
        if at.exception:
            rows.append((name, "error", str(at.exception[0].message)[:200]))
            continue
        times = []
        for _ in range(1 if "jump" in name else repeats):
            for kind, key, values in changes:
                for value in values:
                    wait_all(300)
                    _set(_widget(at, kind, key), value)
                    t0 = time.perf_counter()
                    at.run()
                    times.append(time.perf_counter() - t0)
        rows.append((name, cold, warm, statistics.median(times) if times else None, max(times, default=None),
                     len(times)))
    return rows


def lesson_times() -> list:
    """[(step, cold open s, warm open s, warm open in presenter mode s, Next s)] for every step of the lesson:
    the cold open is the first session's at ?step=k (it fills the server's figure cache), the warm opens a second
    and third session's, and Next is the rerun that moves a warm session on to step k + 1 (whose figure the first pass cached)."""
    from streamlit.testing.v1 import AppTest

    from ui.lesson import STEPS

    def open_step(k, **query):
        at = AppTest.from_file(os.path.join(ROOT, "app.py"), default_timeout=600)
        at.query_params.update({"step": str(k), **query})
        start = time.perf_counter()
        at.run()
        at.switch_page("pages/lesson.py").run()
        return at, time.perf_counter() - start

    cold = [open_step(k)[1] for k in range(1, len(STEPS) + 1)]  # a first pass fills the cache, step by step
    rows = []
    for k in range(1, len(STEPS) + 1):
        at, warm = open_step(k)
        _, present = open_step(k, present="1")
        nxt = None
        if k < len(STEPS):
            t0 = time.perf_counter()
            at.button(key="lesson.next").click().run()
            nxt = time.perf_counter() - t0
        error = str(at.exception[0].message)[:200] if at.exception else ""
        if nxt is not None and not at.header[0].value.startswith(f"{k + 1} · "):
            error += f" Next showed {at.header[0].value!r}"
        rows.append((f"{k} · {STEPS[k - 1].title}", cold[k - 1], warm, present, nxt, error))
    return rows


def _widget(at, kind, key):
    if kind.startswith("sidebar."):
        return getattr(at.sidebar, kind.split(".", 1)[1])(key=key)
    return getattr(at, kind)(key=key)


def _set(widget, value):
    return widget.select(value) if hasattr(widget, "select") else widget.set_value(value)


def server_times(repeats: int = 2) -> dict:
    """{page: (first load s, median widget-change s, max widget-change s, n)}; each change is run twice so
    the second visit of a value (the cached case a class sees) and the first both count."""
    from streamlit.testing.v1 import AppTest

    out = {}
    for page, changes in CHANGES.items():
        at = AppTest.from_file(os.path.join(ROOT, "app.py"), default_timeout=300)
        if page != "pages/home.py":
            at.run().switch_page(page)
        start = time.perf_counter()
        at.run()
        first = time.perf_counter() - start
        if at.exception:
            out[page] = ("error", str(at.exception[0].message)[:200])
            continue
        times = []
        for _ in range(repeats):
            for kind, key, values in changes:
                for value in values:
                    _set(_widget(at, kind, key), value)
                    t0 = time.perf_counter()
                    at.run()
                    times.append(time.perf_counter() - t0)
        out[page] = (first, statistics.median(times), max(times), len(times))
    return out


def sampling_and_drawing(n: int = 2000, steps: int = 50) -> dict:
    """Seconds to sample n particles with Heun for `steps` steps with a shipped model and build the figure."""
    import plotly.graph_objects as go
    import torch

    from diffusion.checkpoints import load_checkpoint
    from diffusion.samplers import prior_sample, sample

    model, _ = load_checkpoint(os.path.join(ROOT, "checkpoints", "moons.safetensors"))
    g = torch.Generator().manual_seed(0)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        x = prior_sample(model.schedule, (n, 2), generator=g)
        with torch.no_grad():
            traj = sample(lambda x, t: model(x, t, None), x, model.schedule, "heun", steps, return_trajectory=True)
        xs = traj.xs.numpy()
        fig = go.Figure([go.Scattergl(x=xs[-1, :, 0], y=xs[-1, :, 1], mode="markers")],
                        frames=[go.Frame(data=[go.Scattergl(x=f[:, 0], y=f[:, 1])], name=str(i)) for i, f in enumerate(xs)])
        fig.to_json()
        times.append(time.perf_counter() - t0)
    return {"n": n, "steps": steps, "seconds_median": statistics.median(times)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cold_start(chromium: str = "/usr/bin/chromium") -> float:
    """Seconds from `streamlit run app.py` to the home page's chart drawn in an already open headless Chromium."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", os.path.join(ROOT, "app.py"),
                                 "--server.headless", "true", "--server.port", str(port)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    page.goto(f"http://127.0.0.1:{port}/", timeout=5000)
                    break
                except Exception:
                    if time.perf_counter() - t0 > 120:
                        raise
                    time.sleep(0.05)
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=120000)
            seconds = time.perf_counter() - t0
        finally:
            proc.terminate()
            proc.wait()
            browser.close()
    return seconds


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--skip-browser", action="store_true")
    p.add_argument("--views", action="store_true", help="only the views table")
    p.add_argument("--lesson", action="store_true", help="only the lesson's steps")
    args = p.parse_args()
    import torch

    print(f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    if args.lesson:
        print("\n| step | cold open s | warm open s | warm open, presenter s | Next s |\n|---|---|---|---|---|")
        for name, cold, warm, present, nxt, error in lesson_times():
            print(f"| {name} | {cold:.2f} | {warm:.2f} | {present:.2f} | {'-' if nxt is None else f'{nxt:.2f}'} |"
                  + (f" error: {error}" if error else ""))
        return
    if args.views:
        print("\n| view (page) | cold open s | warm open s | median change s | max change s | changes |\n"
              "|---|---|---|---|---|---|")
        for row in view_times():
            if row[1] == "error":
                print(f"| {row[0]} | error: {row[2]} | | | | |")
            else:
                med, mx = ("-", "-") if row[3] is None else (f"{row[3]:.3f}", f"{row[4]:.3f}")
                print(f"| {row[0]} | {row[1]:.2f} | {row[2]:.2f} | {med} | {mx} | {row[5]} |")
        return
    if not args.skip_browser:
        print(f"cold start to a drawn home page (Chromium): {cold_start():.2f} s")
    s = sampling_and_drawing()
    print(f"sample {s['n']} particles, Heun {s['steps']} steps, build the animated figure: {s['seconds_median']:.2f} s")
    print("\n| page | first load s | median change s | max change s | changes |\n|---|---|---|---|---|")
    for page, row in server_times().items():
        if row[0] == "error":
            print(f"| {page} | error: {row[1]} | | | |")
        else:
            print(f"| {page} | {row[0]:.2f} | {row[1]:.3f} | {row[2]:.3f} | {row[3]} |")


if __name__ == "__main__":
    main()
