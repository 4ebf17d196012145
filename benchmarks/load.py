"""A classroom's load: many concurrent sessions drive all eleven pages of a local server (the 2-D pages and
the digit pages); then the same while one more session trains.

    python benchmarks/load.py                         # 20 sessions, idle phase then training phase
    python benchmarks/load.py --sessions 30 --actions 20 --think 1.0
    python benchmarks/load.py --replicas 2 --sessions 40 --phases idle   # 2 replicas behind nginx
    python benchmarks/load.py --url http://127.0.0.1:8080 --phases idle  # a server or proxy already running
    python benchmarks/load.py --replicas 1 --pages 2d --sessions 10 20 30 --phases idle idle   # a sweep

It starts `streamlit run app.py` on a free loopback port; with --replicas N, N of them behind nginx
(deploy/serve.py, each session landing on a replica by nginx's affinity cookie); with --url, none, and
it drives the server or proxy at that address (the only case in which it talks to another machine). It opens
--sessions sessions the way a browser does (a WebSocket to /_stcore/stream speaking Streamlit's own
protobuf messages, the BackMsg/ForwardMsg pair), and has each session

  1. open one of the pages (round-robin over the --pages workload) and wait for its first run to finish;
  2. --actions times: think for a random 0.5-1.5 x --think seconds, then move a control and time the
     script run it triggers: on a 2-D page mostly the shared time slider, sometimes the label; on a digit
     page one of that page's own controls (DIGIT_CONTROLS); sometimes a change of page.

The figures are reported for all changes, for the 2-D pages' and for the digit pages' changes apart, and
for the first view (page load) of each kind.

A response time is from sending the change to the server's "script finished" message, which comes
after every element of the run has been sent, so it includes the server's work, the page's figures
and their serialisation. Errors: an exception element in any run, a run that does not finish
successfully, a run over --request-timeout, a dropped connection. Memory: the peak resident size of
the server process together with its worker processes (ui/workers.py), sampled every 0.1 s from /proc
(with --replicas: of every replica and nginx together; with --url: not measured).

The training phase repeats the same workload while one extra session presses Train on page 5 with
its largest settings (20,000 steps, batch 2,048) and follows its progress as a browser would (the
page's auto-refreshing fragment). Everything is bounded: sessions x actions requests per phase, and
a --deadline in seconds after which the script stops by itself.

Several --sessions counts run one after another on the same server(s), each with all its --phases, and
the script ends with the largest count whose last phase kept the 2-D pages' p95 within --p95-target
seconds. Later counts run on caches the earlier ones filled; `--phases idle idle` measures every count
on warm caches.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES_2D = ["data", "energy", "score", "forward", "train", "denoise", "reverse", "your_data"]
DIGIT_PAGES = ["digits_generate", "digits_journey", "digits_prompts"]
PAGES = PAGES_2D + DIGIT_PAGES
WORKLOADS = {"all": PAGES, "2d": PAGES_2D, "digits": DIGIT_PAGES}  # --pages: which pages the sessions use
LABELS = ["none", "upper moon", "lower moon"]  # the default dataset's labels (moons)
# What a student moves on a digit page: (start of the widget's label, the values to choose from; None: any
# of the widget's own options). The common settings are computed ahead (checkpoints/digit_presets.npz),
# others are sampled live: both are part of a class's load.
DIGIT_CONTROLS = {
    "digits_generate": [("Guidance weight w", None), ("Guide only for", [True, False]), ("Samples per digit", [2, 3, 4]),
                        ("Digits (one row each)", [["1", "3", "7", "8"], ["0", "2"], ["5"], ["4", "9"]])],
    "digits_journey": [("Digit to draw", None), ("What each particle shows", None)],
    "digits_prompts": [("Samples per row", [4, 8, 12]), ("Also each prompt on its own", [True, False])],
}


# --- the server ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[int]:
    """pid and all its descendants (from /proc/<pid>/task/<tid>/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


class Server:
    """`streamlit run app.py` on 127.0.0.1:port, with its peak resident memory tracked."""

    def __init__(self, port: int):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.replica_urls = [self.url]  # where to warm the caches
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", os.path.join(ROOT, "app.py"), "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.peak_rss = 0
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._track, daemon=True)
        self._watch.start()

    def rss(self) -> int:
        """Resident bytes of the server process and its children (the worker pool, ui/workers.py); 0 once gone."""
        return sum(_rss(pid) for pid in _tree(self.proc.pid))

    def _track(self):
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, self.rss())
            time.sleep(0.1)

    def wait_ready(self, timeout: float = 120) -> None:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError("the server exited: " + self.proc.stderr.read().decode(errors="replace")[-2000:])
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the server did not answer within {timeout:.0f} s")

    def close(self):
        self._stop.set()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Replicas(Server):
    """n replicas on free loopback ports behind nginx (deploy/serve.py's Stack), their peak memory tracked."""

    def __init__(self, n: int):
        sys.path.insert(0, ROOT)
        from deploy.serve import Stack

        self.stack = Stack([free_port() for _ in range(n)], listen=f"127.0.0.1:{free_port()}")
        self.url = self.stack.url
        self.replica_urls = [f"http://{r}" for r in self.stack.replicas]
        self.peak_rss = 0
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._track, daemon=True)

    def rss(self) -> int:
        procs = [*self.stack.procs.values(), *([self.stack.nginx] if self.stack.nginx else [])]
        return sum(_rss(pid) for p in procs for pid in _tree(p.pid))

    def wait_ready(self, timeout: float = 180) -> None:
        self.stack.start(timeout)
        self._watch.start()

    def close(self):
        self._stop.set()
        self.stack.stop()


class Remote(Server):
    """A server or proxy that runs elsewhere (--url): nothing to start or stop, no memory to measure."""

    def __init__(self, url: str):
        self.url, self.replica_urls, self.peak_rss = url.rstrip("/"), [url.rstrip("/")], 0

    def rss(self) -> int:
        return 0

    def wait_ready(self, timeout: float = 30) -> None:
        with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=timeout) as r:
            if r.status != 200:
                raise RuntimeError(f"{self.url}/_stcore/health answered {r.status}")

    def close(self):
        pass


# --- one browser-like session ------------------------------------------------------------------

class Session:
    """One WebSocket session: open a page, move widgets, time each script run, count errors.

    `server` is a port on 127.0.0.1 or a base address (http://host:port, such as deploy/serve.py's proxy).
    `cookie` is sent with the WebSocket's opening request, as a browser sends its cookies; after `connect`,
    `cookie` holds the proxy's affinity cookie when it set one, and `replica` the replica that answered
    (nginx's X-Replica header, deploy/nginx.conf.template)."""

    def __init__(self, server: int | str, request_timeout: float, cookie: str = ""):
        base = f"http://127.0.0.1:{server}" if isinstance(server, int) else server.rstrip("/")
        self.url = "ws" + base.removeprefix("http") + "/_stcore/stream"
        self.request_timeout = request_timeout
        self.cookie, self.replica = cookie, ""
        self.alerts: list[tuple[str, str]] = []  # (kind, text) of the st.warning/error/info/success of the last run
        self.widgets: dict[str, object] = {}  # label -> the Element's widget proto (id, options, ...)
        self.states: dict[str, object] = {}  # widget id -> the WidgetState last sent
        self.page = ""
        self.query = ""
        self.errors: list[str] = []
        self.missing: set[str] = set()  # controls asked for that the page did not have
        self.progress_text = ""
        self.ws = None
        self._finished: asyncio.Queue | None = None
        self._auto: dict[str, float] = {}  # fragment id -> auto-rerun interval (s)
        self._reader: asyncio.Task | None = None

    async def connect(self):
        import websockets

        self.ws = await websockets.connect(self.url, subprotocols=["streamlit"], max_size=None, open_timeout=30,
                                           ping_interval=None,
                                           additional_headers={"Cookie": self.cookie} if self.cookie else None)
        headers = self.ws.response.headers
        self.replica = headers.get("X-Replica", "")
        for value in headers.get_all("Set-Cookie"):
            if value.startswith("lab_replica="):
                self.cookie = value.split(";")[0]
        self._finished = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    async def _read(self):
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        try:
            async for data in self.ws:
                msg = ForwardMsg()
                msg.ParseFromString(data)
                kind = msg.WhichOneof("type")
                if kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                    el = msg.delta.new_element
                    what = el.WhichOneof("type")
                    if what == "progress":
                        self.progress_text = el.progress.text
                    if what == "alert":
                        self.alerts.append((el.alert.Format.Name(el.alert.format).lower(), el.alert.body))
                    if what == "exception":
                        self.errors.append(f"exception on {self.page}: {el.exception.type}: {el.exception.message[:200]}")
                    elif what and hasattr(getattr(el, what), "id") and getattr(getattr(el, what), "id", ""):
                        w = getattr(el, what)
                        if getattr(w, "label", ""):
                            self.widgets[w.label] = (what, w)
                elif kind == "script_finished":
                    self._finished.put_nowait(msg.script_finished)
                elif kind == "auto_rerun":
                    self._auto[msg.auto_rerun.fragment_id] = msg.auto_rerun.interval
                elif kind == "stop_auto_rerun":
                    self._auto.clear()
                elif kind == "page_info_changed":  # the page changed its URL (st.query_params), as a browser keeps it
                    self.query = msg.page_info_changed.query_string
                elif kind == "page_not_found":
                    self.errors.append(f"page not found: {self.page}")
        except Exception as e:  # a dropped connection ends the reader; the next request notices
            if not isinstance(e, asyncio.CancelledError):
                self.errors.append(f"connection lost: {type(e).__name__}")

    async def run(self, fragment_id: str = "") -> float | None:
        """Send a rerun with the current widget states; seconds until it finished, or None on an error."""
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = self.query
        cs.page_name = self.page
        cs.widget_states.widgets.extend(self.states.values())
        if fragment_id:
            cs.fragment_id, cs.is_auto_rerun = fragment_id, True
        while not self._finished.empty():
            self._finished.get_nowait()
        self.alerts = []
        start = time.perf_counter()
        try:
            await self.ws.send(msg.SerializeToString())
            while True:
                status = await asyncio.wait_for(self._finished.get(), self.request_timeout)
                if status != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    break
        except asyncio.TimeoutError:
            self.errors.append(f"no answer within {self.request_timeout:.0f} s on {self.page}")
            return None
        except Exception as e:
            self.errors.append(f"send failed on {self.page}: {type(e).__name__}")
            return None
        finally:  # triggers (buttons) fire once
            for wid, st in list(self.states.items()):
                if st.WhichOneof("value") == "trigger_value":
                    del self.states[wid]
        if status not in (ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY):
            self.errors.append(f"run on {self.page} ended with status {status}")
            return None
        return time.perf_counter() - start

    async def poll(self) -> float | None:
        """Rerun the page's auto-refreshing fragment, as the browser does every interval; None when it has none."""
        if not self._auto:
            return None
        return await self.run(fragment_id=next(iter(self._auto)))

    def poll_interval(self, default: float = 1.0) -> float:
        """Seconds between the auto-refreshing fragment's reruns (`default` when the page has none)."""
        return next(iter(self._auto.values()), default)

    async def open(self, page: str) -> float | None:
        self.page, self.widgets = page, {}
        return await self.run()

    def set(self, label: str, value) -> bool:
        """Set the widget with this label, as the browser would; False if the page has no such widget."""
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        if label not in self.widgets:
            self.missing.add(f"{label!r} on {self.page}")
            return False
        kind, w = self.widgets[label]
        st = WidgetState(id=w.id)
        if kind == "slider" and len(w.options):  # a select_slider: the chosen option as shown
            st.string_array_value.data[:] = [str(value)]
        elif kind == "slider":
            st.double_array_value.data[:] = [float(value)]
        elif kind in ("selectbox", "radio"):
            st.string_value = str(value)
        elif kind in ("multiselect", "button_group"):  # the chosen options as shown
            st.string_array_value.data[:] = [str(v) for v in (value if isinstance(value, list) else [value])]
        elif kind in ("checkbox", "toggle"):
            st.bool_value = bool(value)
        elif kind == "button":
            st.trigger_value = True
        elif kind == "number_input":
            st.double_value = float(value)
        else:
            raise ValueError(f"cannot set a {kind}")
        self.states[w.id] = st
        return True

    def find(self, start: str) -> str | None:
        """The label of this page's widget whose label starts with `start`."""
        return next((label for label in self.widgets if label.startswith(start)), None)

    def options(self, label: str) -> list[str]:
        """A selectbox's, radio's, multiselect's or segmented control's options, as shown."""
        kind, w = self.widgets[label]
        return [o.content if hasattr(o, "content") else str(o) for o in w.options]

    async def close(self):
        if self._reader:
            self._reader.cancel()
        if self.ws is not None:
            await self.ws.close()


# --- the workload --------------------------------------------------------------------------------

async def student(i: int, server: int | str, actions: int, think: float, rng: random.Random, deadline: float,
                  request_timeout: float, times: list, loads: list, errors: list, slow: list, replicas: list,
                  pages: list = PAGES):
    """One student: open one of `pages`, then `actions` changes with a think time before each."""
    s = Session(server, request_timeout)
    try:
        await s.connect()
        replicas.append(s.replica or "-")
        page = pages[i % len(pages)]
        t = await s.open(page)
        if t is not None:
            loads.append((page, t))
        for _ in range(actions):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(think * rng.uniform(0.5, 1.5))
            roll = rng.random()
            if roll < 0.1:  # another page
                page = rng.choice([p for p in pages if p != page] or pages)
                t = await s.open(page)
                if t is not None:
                    loads.append((page, t))
                continue
            if page in DIGIT_CONTROLS:
                start, values = rng.choice(DIGIT_CONTROLS[page])
                control = s.find(start) or start
                if values is None and control in s.widgets:
                    values = s.options(control)
                value = rng.choice(values) if values else None
            else:
                control, value = (("Label (the prompt)", rng.choice(LABELS)) if roll < 0.25
                                  else ("Time t", round(rng.uniform(0.0, 1.0), 2)))
            what = f"{control} = {value}"
            moved = s.set(control, value)
            if not moved:
                s.errors.append(f"no control to move on {page}: {sorted(s.missing)}")
                continue
            t = await s.run()
            if t is not None:
                times.append((page, t))
                slow.append((round(t, 1), page, what))
    except Exception as e:
        s.errors.append(f"session {i}: {type(e).__name__}: {e}")
    finally:
        errors.extend(s.errors)
        await s.close()


async def trainer(server: int | str, request_timeout: float, stop: asyncio.Event, report: dict, page: str = "train"):
    """Start the largest training `page` allows (the 2-D Train page, or page 12's digits) and follow it like a
    browser until `stop`."""
    s = Session(server, request_timeout)
    try:
        await s.connect()
        await s.open(page)
        if not (s.set("Training steps", 20_000) and (page != "train" or s.set("Batch size", 2048))):
            raise RuntimeError(f"the {page} page has no steps or batch control")
        await s.run()
        if not s.set("Train", True):
            raise RuntimeError("the Train page has no Train button")
        await s.run()
        report["started"] = True
        polls = 0
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), s.poll_interval())
            except asyncio.TimeoutError:
                pass
            if not stop.is_set() and await s.poll() is not None:
                polls += 1
        report["polls"] = polls
        report["progress"] = s.progress_text
    except Exception as e:
        s.errors.append(f"trainer: {type(e).__name__}: {e}")
    finally:
        report["errors"] = list(s.errors)
        await s.close()


async def phase(server: int | str, args, seed: int, train: bool) -> dict:
    rng = random.Random(seed)
    times, loads, errors, slow, replicas = [], [], [], [], []
    deadline = time.monotonic() + args.deadline
    stop, report = asyncio.Event(), {}
    trainer_task = None
    if train:
        trainer_task = asyncio.create_task(trainer(server, args.request_timeout, stop, report, args.trainer))
        await asyncio.sleep(3)  # let it start before the class does
    start = time.perf_counter()
    await asyncio.gather(*(student(i, server, args.actions, args.think, random.Random(rng.random()), deadline,
                                   args.request_timeout, times, loads, errors, slow, replicas, WORKLOADS[args.pages])
                           for i in range(args.sessions)))
    wall = time.perf_counter() - start
    if trainer_task:
        stop.set()
        await trainer_task
        errors.extend(report.get("errors", []))
    row = {"phase": f"one session training ({args.trainer})" if train else "idle", "sessions": args.sessions,
           "pages": args.pages,
           "errors": len(errors), "error_samples": errors[:5], "wall_s": round(wall, 1),
           "slowest": sorted(slow, reverse=True)[:5],
           "sessions_per_replica": {r: replicas.count(r) for r in sorted(set(replicas))}}  # "-": no X-Replica
    for group, pages in (("", PAGES), ("2d_", PAGES_2D), ("digits_", DIGIT_PAGES)):
        row.update(_summary([t for p, t in times if p in pages], [t for p, t in loads if p in pages], group))
    if train:
        row.update(trainer_started=report.get("started", False), trainer_progress=report.get("progress"),
                   trainer_polls=report.get("polls"))
    return row


def _summary(times: list, loads: list, prefix: str) -> dict:
    """Counts, median, p95 and max of the changes' times, and the page loads' median and p95."""
    def p95(xs):
        return round(statistics.quantiles(xs, n=20, method="inclusive")[18], 3) if len(xs) >= 2 else None

    return {f"{prefix}changes": len(times), f"{prefix}median_s": round(statistics.median(times), 3) if times else None,
            f"{prefix}p95_s": p95(times), f"{prefix}max_s": round(max(times), 3) if times else None,
            f"{prefix}page_loads": len(loads),
            f"{prefix}page_load_median_s": round(statistics.median(loads), 3) if loads else None,
            f"{prefix}page_load_p95_s": p95(loads)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, nargs="+", default=[20], help="concurrent sessions (1..100); several "
                                                                         "counts run in turn")
    p.add_argument("--p95-target", type=float, default=1.0, help="the 2-D pages' p95 (s) a sweep looks for")
    p.add_argument("--actions", type=int, default=15, help="changes per session and phase (1..200)")
    p.add_argument("--think", type=float, default=1.0, help="mean seconds between a session's changes (0..10)")
    p.add_argument("--request-timeout", type=float, default=60.0, help="seconds before a run counts as an error")
    p.add_argument("--deadline", type=float, default=300.0, help="seconds after which a phase stops by itself")
    p.add_argument("--phases", nargs="+", default=["idle", "train"], choices=["idle", "train"])
    p.add_argument("--trainer", default="train", choices=["train", "digits_train"],
                   help="the page the training session of a 'train' phase uses: the 2-D Train page or page 12")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pages", choices=list(WORKLOADS), default="all", help="the pages the sessions use (2d: pages 1-8)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--replicas", type=int, default=0, help="start this many replicas behind nginx (1..16; "
                                                                 "deploy/serve.py) instead of one server")
    where.add_argument("--url", help="drive the server or proxy at this address (http://host:port) instead")
    args = p.parse_args()
    counts = args.sessions
    for name, lo, hi in (("actions", 1, 200), ("think", 0, 10), ("deadline", 10, 3600), ("request_timeout", 1, 600),
                         ("p95_target", 0.01, 600), *(("sessions", 1, 100) for _ in counts)):
        for value in (counts if name == "sessions" else [getattr(args, name)]):
            if not lo <= value <= hi:
                p.error(f"--{name.replace('_', '-')} must be in [{lo}, {hi}]; got {value}")
    if args.replicas and not 1 <= args.replicas <= 16:
        p.error(f"--replicas must be in [1, 16]; got {args.replicas}")
    if args.url and not args.url.startswith(("http://", "https://")):
        p.error(f"--url must start with http:// or https://; got {args.url!r}")
    server = Remote(args.url) if args.url else Replicas(args.replicas) if args.replicas else Server(free_port())
    signal.signal(signal.SIGTERM, _interrupt)  # as Ctrl-C: the `finally` below stops what was started
    results = []
    try:
        server.wait_ready()
        baseline = server.rss()
        for url in server.replica_urls:  # load the models and first-run caches once, on every replica
            asyncio.run(_warm(url, args.request_timeout, WORKLOADS[args.pages]))
        for n in counts:
            args.sessions = n
            for i, ph in enumerate(args.phases):
                server.peak_rss = server.rss()
                row = asyncio.run(phase(server.url, args, args.seed + i, ph == "train"))
                row["server_peak_rss_mib"] = round(server.peak_rss / 2**20)
                row["server_start_rss_mib"] = round(baseline / 2**20)
                results.append(row)
                print(json.dumps(row), flush=True)
    finally:
        server.close()
    import torch

    where = (f"{args.replicas} replicas behind nginx" if args.replicas else f"the server at {args.url}" if args.url
             else "one server")
    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
          f"{where}; {', '.join(map(str, counts))} sessions x {args.actions} changes on pages {args.pages}, "
          f"think {args.think} s\n")
    print("| sessions | phase | pages | changes | errors | median s | p95 s | max s | page load median s |"
          " page load p95 s | server peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        for prefix, name in (("", "all"), ("2d_", "2-D"), ("digits_", "digits")):
            if not r[prefix + "changes"] and prefix:
                continue
            print(f"| {r['sessions']} | {r['phase']} | {name} | {r[prefix + 'changes']} | {r['errors'] if not prefix else ''} | "
                  f"{r[prefix + 'median_s']} | {r[prefix + 'p95_s']} | {r[prefix + 'max_s']} | "
                  f"{r[prefix + 'page_load_median_s']} | {r[prefix + 'page_load_p95_s']} | "
                  f"{r['server_peak_rss_mib'] if not prefix else ''} |")
    last = [r for i, r in enumerate(results) if i + 1 == len(results) or results[i + 1]["sessions"] != r["sessions"]]
    within = [r["sessions"] for r in last if not r["errors"] and r["2d_p95_s"] is not None
              and r["2d_p95_s"] <= args.p95_target]
    if len(counts) > 1:
        print(f"\nLargest session count with the 2-D pages' p95 <= {args.p95_target:g} s and no error (last phase of "
              f"each count): {max(within) if within else 'none'}"
              + (f", {max(within) / os.cpu_count():.1f} per core ({os.cpu_count()} cores)" if within else ""))
    by = {r["phase"]: r for r in results}
    training = f"one session training ({args.trainer})"
    if len(counts) == 1 and len(by) == 2 and by["idle"]["p95_s"]:
        second = results[1]["phase"]
        print(f"\np95 with one session training / idle: {by[training]['p95_s'] / by['idle']['p95_s']:.2f}x "
              f"(the {second} phase ran second, on caches the first one filled; compare like with like by "
              "also running --phases train idle)")
    return 1 if any(r["errors"] for r in results) else 0


def _interrupt(*_):
    raise KeyboardInterrupt


async def _warm(server: int | str, request_timeout: float, pages: list = PAGES):
    s = Session(server, request_timeout)
    await s.connect()
    for page in pages:
        await s.open(page)
    await s.close()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM, after main() stopped the server(s) it started
        sys.exit(130)
