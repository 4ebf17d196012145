"""What the digit pages share: the shipped presets, and live work shown as it goes (their controls are
bound to the URL by ui.state.bound).

* `stored(model, config_id, spec, kind, **args)`: an entry of checkpoints/digit_presets.npz (ui/digit_presets.py), only when it was
  made by the model the page uses, under the page's schedule.
* `run_jobs(jobs, ...)`: computes the entries that were not stored one at a time, each in a worker process
  (`ui.workers.offload`, through the caller's cached function), with a progress bar, an estimate of the time
  left and a Stop button at the place the result will be drawn. Stopping keeps the finished parts.
"""

from __future__ import annotations

import hashlib
import time

import streamlit as st

from . import digit_presets
from .energy_maps import weights_fingerprint


@st.cache_resource(show_spinner=False)
def _presets(path: str):
    """(store or None, problem or None), read once per server."""
    return digit_presets.load(path)


@st.cache_resource(show_spinner=False, max_entries=8)
def _fingerprint(config_id: str, _model) -> str:
    return weights_fingerprint(_model)


def presets_problem() -> str | None:
    """Why the presets file cannot be used (damaged, not such a file), or None."""
    return _presets(digit_presets.PATH)[1]


def warn_if_unusable() -> None:
    if problem := presets_problem():
        st.warning(f"The digits computed ahead of time cannot be used ({problem}), so every view is sampled "
                   "live and the first one takes longer.")


def stored(model, config_id: str, spec: str, kind: str, **args) -> dict | None:
    """The shipped entry `kind` with these arguments, or None (no file, another model or schedule, no entry)."""
    store, _ = _presets(digit_presets.PATH)
    if store is None or not store.matches(_fingerprint(config_id, model), spec):
        return None
    return store.get(kind, **args)


def _request_id(names) -> str:
    return hashlib.sha1("|".join(names).encode()).hexdigest()[:12]


def _stop(key: str, request: str) -> None:
    st.session_state[f"{key}.stopped"] = request


def _resume(key: str) -> None:
    st.session_state.pop(f"{key}.stopped", None)


def run_jobs(jobs, key: str, what: str, place=None) -> tuple[dict, bool]:
    """Run `jobs` [(name, label, fn)] in order; fn() returns the part called `name`.

    Returns ({name: part} for the parts done, stopped). While they run, `place` (a container at the spot
    where the result will appear; default: here) shows a progress bar with the time left, estimated from the
    parts done so far, and a Stop button. After Stop the page shows what is done and offers to continue;
    any change of the view starts afresh. Parts finished in this session are remembered by name, so that
    a stopped view can be drawn from them (their functions are cached, so calling them again is quick).
    """
    place = place if place is not None else st.container()
    names = [n for n, _, _ in jobs]
    request = _request_id(names)
    done_key = f"{key}.done"
    done_names = st.session_state.setdefault(done_key, set())
    if len(done_names) > 4096:  # a long session: start the record afresh (the parts stay cached)
        done_names.clear()
    if st.session_state.get(f"{key}.stopped") not in (None, request):
        _resume(key)  # a stop belongs to the view it was pressed on
    stopped = st.session_state.get(f"{key}.stopped") == request
    out = {}
    if stopped:
        for name, _, fn in jobs:
            if name in done_names:
                out[name] = fn()
        with place:
            c1, c2 = st.columns([4, 1], vertical_alignment="center")
            c1.info(f"Stopped: {len(out)} of {len(jobs)} {what} done; the rest are left blank.")
            c2.button("Continue", key=f"{key}.continue", on_click=_resume, args=(key,), icon=":material/play_arrow:",
                      width="stretch")
        return out, True
    with place:
        bar = st.empty()
        button = st.empty()
    start = time.perf_counter()
    live_seconds = []
    shown = False
    for i, (name, label, fn) in enumerate(jobs):
        if name not in done_names:  # not known to be cached: it may take a while
            left = ""
            if live_seconds:
                est = sum(live_seconds) / len(live_seconds) * (len(jobs) - i)
                left = f" · about {est:.0f} s left" if est >= 1 else " · under a second left"
            bar.progress(i / len(jobs), text=f"Sampling {label} ({i + 1} of {len(jobs)} {what}){left}")
            if not shown:
                button.button("Stop", key=f"{key}.stop", on_click=_stop, args=(key, request), icon=":material/stop:",
                              help="Stops after the part being computed; what is done stays on the page.")
                shown = True
        t0 = time.perf_counter()
        out[name] = fn()
        secs = time.perf_counter() - t0
        if secs > 0.05:  # a live computation, not a cached answer
            live_seconds.append(secs)
        done_names.add(name)
    bar.empty()
    button.empty()
    if time.perf_counter() - start > 0.05:
        st.session_state[done_key] = done_names
    return out, False
