"""Trainings that a page can tell apart from ones lost with their server process.

A visitor's session, and a training running in it, live in one server process. Behind a proxy with
several replicas (deploy/serve.py, docs/deploy.md) that process can stop while the visitor's tab stays
open; a reload then opens a fresh session on another replica, and without a trace of the training the
page would simply look as if nothing had happened. So a page that starts a training calls `start(kind)`:
it names the run with a random id, records the id in a registry of this process, and writes it into the
URL (`?<kind>_run=<id>`). On every run the page calls `notice(kind)`:

- the URL names this session's own run: nothing to say (the id is put back if the URL lost it);
- the URL names a run this process never started: its process has stopped, so the training is lost;
- the URL names a run of this process, but of another session: the page was reloaded (a reload opens a
  new Streamlit session), so the training belongs to a session this tab no longer shows.

In the two last cases the id leaves the URL, and the message stays on the page until the next `start`.
"""

from __future__ import annotations

import secrets
import threading

import streamlit as st

_STARTED: set[str] = set()  # every run id started by this process (a few bytes each, for the process's life)
_LOCK = threading.Lock()
LOST = ("The training started here ran on a server process that has stopped, so it is lost; "
        "press **Train** to start again.")
LEFT = ("The training started here belongs to the session this page had before it was reloaded, and a reload "
        "opens a new session; press **Train** to start again.")


def param(kind: str) -> str:
    """The URL query parameter that carries a `kind` run's id ('train' -> 'train_run')."""
    return f"{kind}_run"


def known(run_id: str) -> bool:
    """True when this server process started the run `run_id`."""
    with _LOCK:
        return run_id in _STARTED


def start(kind: str) -> str:
    """A new run id for a `kind` training of this session: registered in this process, kept in the session,
    written into the URL. Clears an earlier lost-run message."""
    run_id = secrets.token_hex(6)
    with _LOCK:
        _STARTED.add(run_id)
    st.session_state[f"_runs.{kind}"] = run_id
    st.session_state.pop(f"_runs.{kind}.message", None)
    st.query_params[param(kind)] = run_id
    return run_id


def notice(kind: str) -> str | None:
    """The message for a `kind` run named in the URL that this session cannot show (LOST or LEFT), or None.
    Keeps this session's own run id in the URL and drops any other."""
    key, name = f"_runs.{kind}", param(kind)
    own = st.session_state.get(key)
    in_url = st.query_params.get(name)
    if in_url and in_url != own:
        st.session_state[f"{key}.message"] = LEFT if known(in_url) else LOST
        del st.query_params[name]
        in_url = None
    if own and not in_url:
        st.query_params[name] = own
    return st.session_state.get(f"{key}.message")
