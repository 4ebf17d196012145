"""Small helpers every page uses: the source expander, figure downloads, the 'no model' notice."""

from __future__ import annotations

import inspect
import re
import threading

import streamlit as st

_SOURCES: dict = {}
_SOURCES_LOCK = threading.Lock()


def source_of(obj) -> str:
    """inspect.getsource(obj), read once per object and server. For a class, getsource parses the whole
    module with `ast`, which is slow on every rerun, and in CPython 3.11 not safe in two threads at once
    (two parses at the same time can raise "SystemError: AST constructor recursion depth mismatch"). The
    lock lets one thread at a time read a source."""
    with _SOURCES_LOCK:
        if obj not in _SOURCES:
            _SOURCES[obj] = inspect.getsource(obj)
        return _SOURCES[obj]


def show_source(*objects, title: str = "Show the code that drew this") -> None:
    """An expander with the source of the core functions behind the page (as Streamlit's hello demo does)."""
    with st.expander(title):
        for obj in objects:
            st.code(source_of(obj), language="python")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "figure"


def downloads(fig, name: str, key: str, gif: bool = False, png_kwargs: dict | None = None) -> None:
    """Download buttons for `fig` as PNG and, where it has animation frames, as GIF.

    The files are drawn only when a button is clicked (deferred callables), so they cost the page
    nothing on a rerun.
    """
    row = st.container(horizontal=True)  # buttons as wide as their labels, also in a narrow column
    from . import export  # matplotlib loads on the first page that offers a download, not at start-up

    slug = _slug(name)
    real = getattr(fig, "figure", lambda: fig)  # a LazyFigure is built only when a file is asked for
    row.download_button("Download PNG", lambda: export.to_png(real(), **(png_kwargs or {})), f"{slug}.png",
                            "image/png", key=f"{key}.png", on_click="ignore", icon=":material/image:")
    if gif and fig.frames:
        row.download_button("Download GIF", lambda: export.to_gif(real()), f"{slug}.gif", "image/gif",
                                key=f"{key}.gif", on_click="ignore", icon=":material/animation:")


def need_model(v) -> bool:
    """True when a learned model exists for the view; otherwise say how to get one."""
    if v.learned() is None:
        st.info("There is no learned model for this dataset yet, so only the exact side is drawn. "
                "Train one on the **Train** page (it then serves every page in this session).")
        return False
    return True


QUALITY_STEPS = 4000  # below this many training steps the shipped MNIST checkpoint is an early snapshot


def digit_model():
    """(model, config, config_id) of the digit model this session uses (ui.models.digit_source: the shipped MNIST
    model, or the one trained on page 12), with a line saying which; on any problem, say what and stop the page.

    config_id is a short hash of the model's config: the digit pages' cache key for the model.
    """
    import hashlib
    import json

    from ui import digits
    from ui.models import digit_entry, digit_source

    model, config = digit_entry()
    if digit_source() == "session":
        train = config.get("train", {})
        st.info(f"Digit model: **the one you trained** on page 12 ({train.get('steps_done', '?')} steps, "
                f"{train.get('seconds', '?')} s). Page 12 switches back to the shipped model.", icon=":material/person:")
        return model, config, hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]
    st.caption("Digit model: **the shipped model** (checkpoints/mnist.safetensors); page 12 trains your own.")
    if model is None:
        st.error(f"The MNIST model could not be loaded: {config.get('error', 'unknown error')}")
        st.stop()
    try:
        digits.check_model(model)
    except ValueError as e:  # a checkpoint of the wrong kind saved as mnist.safetensors
        st.error(f"The MNIST checkpoint is of the wrong kind: {e}")
        st.stop()
    steps_done = int(config.get("train", {}).get("steps_done", 0))
    if steps_done < QUALITY_STEPS:
        st.warning(f"The shipped MNIST model is an early snapshot, trained for only {steps_done} steps: expect rough "
                   "digits and poor answers below. A longer-trained checkpoint replaces it (restart the app).")
    return model, config, hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]
