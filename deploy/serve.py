"""N replicas of the lab behind nginx, with sticky sessions and WebSocket proxying (docs/deploy.md).

    python deploy/serve.py --replicas 2                      # http://127.0.0.1:8080, replicas on 8501, 8502
    python deploy/serve.py --replicas 4 --listen 0.0.0.0:80  # the whole local network
    python deploy/serve.py --replicas 2 --no-proxy --address 0.0.0.0   # an app machine of a larger class
    python deploy/serve.py --replicas 0 --remote 10.0.0.2:8501 10.0.0.2:8502 10.0.0.3:8501   # its proxy

Each replica is its own `streamlit run app.py` process; nginx (Debian's package) runs in the foreground
as whoever starts this script, with a configuration written from deploy/nginx.conf.template into a run
folder that also holds its pid file, logs and temporary files. Ctrl-C or SIGTERM stops nginx, then the
replicas (each with its worker processes), and removes a run folder this script made. A replica that dies
is reported and not restarted: nginx sends its visitors to the others.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
TEMPLATE = pathlib.Path(__file__).with_name("nginx.conf.template")
MAX_FAILS, FAIL_TIMEOUT_S = 1, 10  # one refused connection leaves a replica out for 10 s, then nginx retries it


def find_nginx() -> str | None:
    """The nginx binary (Debian puts it in /usr/sbin, which a normal user's PATH may lack), or None."""
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                          if os.access(p, os.X_OK)), None)


def parse_address(text: str) -> tuple[str, int]:
    """'host:port' -> (host, port); ValueError naming the bad address."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"an address must be host:port with a port in 1..65535; got {text!r}")
    return host, int(port)


def render_config(replicas: list[str], listen: str, run_dir: str | os.PathLike) -> str:
    """nginx.conf for `replicas` (host:port each) behind `listen` (port or host:port), files in `run_dir`."""
    if not replicas:
        raise ValueError("at least one replica (host:port) is needed")
    for r in replicas:
        parse_address(r)
    servers = "\n".join(f"        server {r} max_fails={MAX_FAILS} fail_timeout={FAIL_TIMEOUT_S}s;" for r in replicas)
    text = TEMPLATE.read_text()
    for name, value in (("RUN", str(pathlib.Path(run_dir).resolve())), ("LISTEN", listen), ("SERVERS", servers)):
        text = text.replace(f"@{name}@", value)
    return text


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_replica(port: int, address: str = "127.0.0.1", log=subprocess.DEVNULL) -> subprocess.Popen:
    """`streamlit run app.py` on address:port, in a process group of its own (its worker processes with it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
         "--server.address", address, "--server.port", str(port)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(url: str, timeout: float = 120, proc: subprocess.Popen | None = None) -> None:
    """Wait until `url`/_stcore/health answers 200; RuntimeError if `proc` exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with code {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def stop_group(proc: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 10) -> None:
    """Send `sig` to a process group this script started, then SIGKILL it if it is still there after `wait` s."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(wait)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Stack:
    """Local replicas (ports), remote ones (host:port), and nginx listening on `listen` in front of all."""

    def __init__(self, ports: list[int], remote: list[str] = (), listen: str = "127.0.0.1:8080",
                 address: str = "127.0.0.1", proxy: bool = True, run_dir: str | None = None):
        self.listen, self.address = listen, address
        self.own_run_dir = run_dir is None
        self.run_dir = pathlib.Path(run_dir or tempfile.mkdtemp(prefix="lab-nginx-"))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.own_run_dir:  # nginx started as root runs its workers as nobody, who must reach the temp folders
            self.run_dir.chmod(0o755)
        connect = "127.0.0.1" if address in ("0.0.0.0", "") else address
        self.replicas = [f"{connect}:{p}" for p in ports] + list(remote)
        self.procs: dict[str, subprocess.Popen] = {}
        self.nginx: subprocess.Popen | None = None
        self.ports, self.proxy = list(ports), proxy

    def start(self, timeout: float = 180) -> "Stack":
        try:
            if self.proxy:
                nginx = find_nginx()
                if nginx is None:
                    raise RuntimeError("nginx is not installed: apt-get install nginx (or pass --no-proxy)")
                conf = self.run_dir / "nginx.conf"
                conf.write_text(render_config(self.replicas, self.listen, self.run_dir))
                cmd = [nginx, "-p", str(self.run_dir), "-c", str(conf), "-e", str(self.run_dir / "error.log")]
                check = subprocess.run(cmd + ["-t", "-q"], capture_output=True, text=True)
                if check.returncode:
                    raise RuntimeError(f"nginx rejected {conf}: {check.stderr.strip()}")
            for port in self.ports:
                if not port_is_free(self.address, port):
                    raise RuntimeError(f"port {port} is in use: choose another --base-port")
            logs = self.run_dir / "replicas"
            logs.mkdir(exist_ok=True)
            for port, name in zip(self.ports, self.replicas):
                with open(logs / f"{port}.log", "ab") as log:
                    self.procs[name] = start_replica(port, self.address, log)
            for name, proc in self.procs.items():
                wait_healthy(f"http://{name}", timeout, proc)
            if self.proxy:
                self.nginx = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)
                wait_healthy(self.url, 30, self.nginx)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def url(self) -> str:
        host, port = parse_address(self.listen if ":" in self.listen else f"127.0.0.1:{self.listen}")
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '*') else host}:{port}"

    def kill(self, name: str) -> None:
        """A replica's sudden death (SIGKILL to its process group), as a crash or a lost machine would be."""
        stop_group(self.procs[name], signal.SIGKILL)

    def stop(self) -> None:
        """nginx first (no new requests reach a stopping replica), then every replica; the run folder if made here."""
        if self.nginx is not None:
            stop_group(self.nginx, signal.SIGQUIT)  # graceful: open WebSockets end as the replicas stop
            self.nginx = None
        for proc in self.procs.values():  # all at once: each may take seconds to close its sessions
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                stop_group(proc, signal.SIGKILL)
        if self.own_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--replicas", type=int, default=2, help="local app processes (0..64); 2 suit a 2-core machine")
    p.add_argument("--base-port", type=int, default=8501, help="the first local replica's port; the next ones follow")
    p.add_argument("--address", default="127.0.0.1", help="where the local replicas listen (0.0.0.0: other machines)")
    p.add_argument("--remote", nargs="*", default=[], metavar="HOST:PORT", help="replicas on other machines")
    p.add_argument("--listen", default="127.0.0.1:8080", help="nginx's address (port or host:port)")
    p.add_argument("--no-proxy", action="store_true", help="only the replicas (an app machine of a larger class)")
    p.add_argument("--run-dir", help="folder for nginx.conf, logs and temporary files (default: a new temp folder)")
    args = p.parse_args(argv)
    if not 0 <= args.replicas <= 64:
        p.error(f"--replicas must be in 0..64; got {args.replicas}")
    if not 1 <= args.base_port <= 65535 - args.replicas:
        p.error(f"--base-port must be in 1..{65535 - args.replicas}; got {args.base_port}")
    try:
        for r in args.remote:
            parse_address(r)
        parse_address(args.listen if ":" in args.listen else f"x:{args.listen}")
    except ValueError as e:
        p.error(str(e))
    if args.replicas + len(args.remote) == 0:
        p.error("nothing to serve: give --replicas 1 or more, or --remote addresses")
    if args.no_proxy and args.remote:
        p.error("--remote needs the proxy; leave out --no-proxy")

    stack = Stack(list(range(args.base_port, args.base_port + args.replicas)), args.remote, args.listen,
                  args.address, proxy=not args.no_proxy, run_dir=args.run_dir)
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM as Ctrl-C: out of any wait, into the cleanup below
    try:
        stack.start()
        print(f"{len(stack.replicas)} replica(s): {', '.join(stack.replicas)}", flush=True)
        print(f"open {stack.url}" if not args.no_proxy else "no proxy (--no-proxy)", f"(run folder {stack.run_dir};"
              " Ctrl-C stops everything)", flush=True)
        reported = set()
        while True:
            if stack.nginx is not None and stack.nginx.poll() is not None:
                print(f"nginx exited with code {stack.nginx.returncode}; see {stack.run_dir}/error.log", file=sys.stderr)
                return 1
            for name, proc in stack.procs.items():
                if proc.poll() is not None and name not in reported:
                    reported.add(name)
                    print(f"replica {name} exited with code {proc.returncode}; its visitors move to the others "
                          f"(log: {stack.run_dir}/replicas)", file=sys.stderr, flush=True)
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C does not cut the cleanup short
            signal.signal(sig, signal.SIG_IGN)
        stack.stop()
        print("stopped", file=sys.stderr, flush=True)


def _interrupt(*_):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
