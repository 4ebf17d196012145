"""deploy/serve.py: replicas of the app behind nginx. The configuration it writes (sticky sessions by nginx's
own cookie, WebSocket proxying, failover), and the real thing: two replicas and nginx, two visitors training
on different replicas, one replica killed while both train.

The visitors are WebSocket clients speaking Streamlit's protocol (benchmarks/load.py's Session, the one
`benchmarks/load.py` drives a class with), so a visitor's cookie, URL and reload are under the test's
control. The end-to-end tests skip where nginx is not installed (apt-get install nginx; .ci/run does)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
import urllib.request

import pytest

from benchmarks.load import Session
from tests.test_browser import CHROMIUM, NO_BROWSER, browser  # noqa: F401 (a fixture)
from deploy.serve import Stack, find_nginx, free_port, parse_address, render_config
from ui import runs

NGINX = find_nginx()
NO_NGINX = "nginx is not installed (apt-get install nginx; .ci/run installs it)"


# --- the configuration ---------------------------------------------------------------------------------------

def test_the_config_names_every_replica_and_hashes_on_its_own_cookie(tmp_path):
    conf = render_config(["127.0.0.1:8501", "10.0.0.7:8502"], "0.0.0.0:80", tmp_path)
    assert "@" not in re.sub(r"#.*", "", conf)  # every placeholder filled
    servers = re.findall(r"^\s*server (\S+) max_fails=1 fail_timeout=\d+s;", conf, flags=re.M)
    assert servers == ["127.0.0.1:8501", "10.0.0.7:8502"]
    assert "hash $lab_affinity consistent;" in conf and "ip_hash" not in re.sub(r"#.*", "", conf)
    assert re.search(r'""\s+\$request_id;', conf)  # a browser without the cookie is named by its first request
    assert "listen 0.0.0.0:80;" in conf and "daemon off;" in conf
    for line in re.findall(r"^\s*(?:pid|error_log|access_log|\w+_temp_path) (\S+)", conf, flags=re.M):
        assert line.startswith(str(tmp_path.resolve())), line  # nothing written outside the run folder
    stream = conf[conf.index("location /_stcore/stream"):]
    assert "proxy_set_header Upgrade $http_upgrade;" in stream and "proxy_read_timeout 1d;" in stream
    assert "proxy_next_upstream error timeout" in conf


@pytest.mark.parametrize("bad", ["8501", "host:", ":8501", "host:0", "host:70000", "host:port"])
def test_a_bad_replica_address_is_refused_by_name(bad, tmp_path):
    with pytest.raises(ValueError, match="host:port"):
        parse_address(bad)
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        render_config(["127.0.0.1:8501", bad], "8080", tmp_path)


def test_the_command_line_refuses_bad_settings_by_name():
    import sys

    from deploy.serve import ROOT

    for argv, word in ((["--replicas", "-1"], "--replicas"), (["--replicas", "0"], "nothing to serve"),
                       (["--remote", "nohost"], "host:port"), (["--no-proxy", "--remote", "a:1"], "--remote")):
        out = subprocess.run([sys.executable, str(ROOT / "deploy" / "serve.py"), *argv], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 2 and word in out.stderr and "Traceback" not in out.stderr, (argv, out.stderr)


@pytest.mark.skipif(NGINX is None, reason=NO_NGINX)
def test_nginx_accepts_the_config(tmp_path):
    conf = tmp_path / "nginx.conf"
    conf.write_text(render_config(["127.0.0.1:8501", "127.0.0.1:8502"], f"127.0.0.1:{free_port()}", tmp_path))
    out = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr


# --- two replicas behind nginx -------------------------------------------------------------------------------

def _replica_of(url: str, cookie: str) -> str:
    """The replica nginx sends a request carrying this affinity cookie to (its X-Replica header)."""
    req = urllib.request.Request(f"{url}/_stcore/health", headers={"Cookie": cookie})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.headers["X-Replica"]


def _cookie_per_replica(url: str, replicas: list[str]) -> dict[str, str]:
    """{replica: an affinity cookie that nginx hashes onto it}: which cookie lands where depends on the ports."""
    found = {}
    for i in range(200):
        cookie = f"lab_replica=visitor{i}"
        found.setdefault(_replica_of(url, cookie), cookie)
        if set(found) == set(replicas):
            return found
    raise AssertionError(f"200 cookies all landed on {sorted(found)}")


def _step(s: Session) -> int:
    m = re.match(r"step (\d+) /", s.progress_text)
    return int(m.group(1)) if m else 0


async def _visitor(url: str, cookie: str) -> Session:
    """A visitor who opens the Train page and presses Train (a run long enough to outlast the test)."""
    s = Session(url, request_timeout=60, cookie=cookie)
    await s.connect()
    assert await s.open("train") is not None, s.errors
    assert s.set("Training steps", 20_000) and s.set("Batch size", 64)
    assert await s.run() is not None, s.errors
    assert s.set("Train", True)
    assert await s.run() is not None, s.errors
    assert re.search(rf"{runs.param('train')}=\w+", s.query), s.query  # the run names itself in the URL
    return s


async def _advances(s: Session, limit_s: float = 60) -> tuple[int, int]:
    """Rerun the live view as the browser's timer does until it shows the training step move on:
    (the first step seen, a later one). The limit only bounds a broken run: a step takes milliseconds."""
    first, deadline = _step(s), time.monotonic() + limit_s
    while time.monotonic() < deadline:
        await asyncio.sleep(s.poll_interval())
        assert await s.poll() is not None, s.errors
        if not first:
            first = _step(s)  # still starting (building the network) when 0
        elif _step(s) > first:
            return first, _step(s)
    raise AssertionError(f"the training shown stayed at step {first} for {limit_s:.0f} s: {s.progress_text!r}")


async def _reload(url: str, cookie: str, query: str) -> Session:
    """The visitor's browser reloading its tab: a new session, with its cookie and the URL it had."""
    s = Session(url, request_timeout=60, cookie=cookie)
    s.query = query
    await s.connect()
    assert await s.open("train") is not None, s.errors
    return s


@pytest.mark.slow
@pytest.mark.skipif(NGINX is None, reason=NO_NGINX)
def test_a_visitor_stays_on_its_replica_and_survives_the_death_of_the_other():
    with Stack([free_port(), free_port()], listen=f"127.0.0.1:{free_port()}") as stack:
        asyncio.run(_two_visitors_one_replica_killed(stack))


async def _two_visitors_one_replica_killed(stack: Stack):
    url = stack.url
    cookies = _cookie_per_replica(url, stack.replicas)
    doomed, survivor = stack.replicas
    a = await _visitor(url, cookies[doomed])  # a's replica will be killed
    b = await _visitor(url, cookies[survivor])
    assert (a.replica, b.replica) == (doomed, survivor)

    # Sticky: many fresh requests of each browser reach its own replica, and both trainings advance.
    for _ in range(25):
        assert _replica_of(url, a.cookie) == doomed and _replica_of(url, b.cookie) == survivor
    await asyncio.gather(_advances(a), _advances(b))
    # A reload of a's tab while its replica lives opens a new session in the same process: that process knows
    # the run (so the reload landed there), which belongs to the session before the reload.
    again = await _reload(url, a.cookie, a.query)
    assert again.replica == doomed and ("warning", runs.LEFT) in again.alerts, again.alerts
    await again.close()

    stack.kill(doomed)  # mid-training, as a crash would
    await asyncio.sleep(0.5)
    # b's session and training carry on, on the same connection.
    before = _step(b)
    _, after = await _advances(b)
    assert after > before and not b.errors, b.errors
    # a's connection is gone; its reload gets a working page from the survivor, which says the training is lost.
    assert await a.run() is None
    lost = await _reload(url, a.cookie, a.query)
    # nginx tried the dead replica first (the cookie still hashes to it), then the next (X-Replica lists both).
    assert lost.replica in (survivor, f"{doomed}, {survivor}") and not lost.errors, (lost.replica, lost.errors)
    assert ("warning", runs.LOST) in lost.alerts, lost.alerts
    assert runs.param("train") not in lost.query and _replica_of(url, a.cookie) == survivor
    assert b.set("Stop and keep the model so far", True) and await b.run() is not None
    for s in (a, b, lost):
        await s.close()


# --- the same in a real browser ----------------------------------------------------------------------------

def _idle(page, timeout: float = 120) -> None:
    """Wait until the page's script run ends (Streamlit's running indicator is gone)."""
    time.sleep(1.0)
    deadline = time.time() + timeout
    while time.time() < deadline and page.locator('[data-testid="stStatusWidget"]').count():
        time.sleep(0.3)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(NGINX is None, reason=NO_NGINX)
@pytest.mark.skipif(CHROMIUM is None, reason=NO_BROWSER)
def test_in_chromium_a_reload_after_the_replica_died_gets_a_page_that_says_the_training_is_lost(browser):
    """Chromium keeps nginx's cookie, talks to its replica over the proxied WebSocket, writes the run into its
    address bar, and on reload after that replica's death gets the page, with the message, from the other."""
    with Stack([free_port(), free_port()], listen=f"127.0.0.1:{free_port()}") as stack:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        try:
            page.goto(f"{stack.url}/train?dataset=moons", timeout=120_000)
            page.wait_for_selector('input[aria-label="Training steps"]', timeout=120_000)
            _idle(page)
            cookie = next(c["value"] for c in context.cookies() if c["name"] == "lab_replica")
            replica = _replica_of(stack.url, f"lab_replica={cookie}")
            steps = page.locator('input[aria-label="Training steps"]')
            steps.fill("20000")
            steps.press("Enter")
            _idle(page)
            page.locator('[data-testid="stMain"] button').filter(has_text="Train").first.click()
            page.get_by_text("steps/s").first.wait_for(timeout=120_000)  # steps are running
            assert re.search(rf"[?&]{runs.param('train')}=\w+", page.url), page.url
            stack.kill(replica)
            page.reload(timeout=120_000)
            page.get_by_text("ran on a server process that has stopped").wait_for(timeout=120_000)
            _idle(page)
            assert page.locator('[data-testid="stException"]').count() == 0
            assert f"{runs.param('train')}=" not in page.url, page.url  # dropped: another reload says nothing
            assert page.locator('input[aria-label="Training steps"]').count() == 1  # a working Train page
        finally:
            context.close()
