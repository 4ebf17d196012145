"""Where the pages get learned models: the shipped checkpoints (shared by every session, read-only)
and the models trained in this browser session (in st.session_state, never shared)."""

from __future__ import annotations

import os
import uuid

import streamlit as st

from diffusion.checkpoints import CheckpointError, load_checkpoint

CHECKPOINTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "checkpoints")


@st.cache_resource(show_spinner=False)
def shipped(dataset: str):
    """(model, config) of checkpoints/<dataset>.safetensors, or (None, {'error': ...})."""
    path = os.path.join(CHECKPOINTS, f"{dataset}.safetensors")
    if not os.path.exists(path):
        return None, {}
    try:
        model, config = load_checkpoint(path, expect={"net.arch": "mlp2d"})
    except CheckpointError as e:
        return None, {"error": str(e)}
    model.requires_grad_(False)  # shared across sessions: nobody trains it in place
    return model, {**config, "source": "shipped"}


def problem(dataset: str) -> str | None:
    """What is wrong with checkpoints/<dataset>.safetensors (corrupt, truncated, wrong kind), or None."""
    return shipped(dataset)[1].get("error")


def has_session(dataset: str) -> bool:
    return dataset in st.session_state.get("trained", {})


def put_session(dataset: str, model, info: dict) -> None:
    """Keep a model trained in this session; it then serves every page for `dataset`."""
    model.requires_grad_(False)
    info = {**info, "source": "session", "id": uuid.uuid4().hex[:8]}  # the id keys the pages' caches
    st.session_state.setdefault("trained", {})[dataset] = (model, info)


def get(dataset: str, source: str = "shipped"):
    if source == "session" and has_session(dataset):
        return st.session_state["trained"][dataset][0]
    return shipped(dataset)[0]


def info(dataset: str, source: str = "shipped") -> dict | None:
    if source == "session" and has_session(dataset):
        return st.session_state["trained"][dataset][1]
    model, config = shipped(dataset)
    return config if model is not None else None


def describe(info: dict) -> str:
    """One line for the sidebar: what this model is and how good it measured."""
    train = info.get("train", {})
    where = "shipped" if info.get("source") == "shipped" else "trained here"
    text = (f"{where}: {info.get('parameterization', '?')}-prediction, {info.get('schedule', '?').split(':')[0]} "
            f"schedule, {train.get('steps_done', train.get('steps', '?'))} steps")
    metrics = info.get("metrics") or {}
    if "kl_gap_nats" in metrics:
        text += f"; KL gap {metrics['kl_gap_nats']:.3f} nats, ED ratio {metrics['ed_ratio']:.2f}"
    return text


MNIST_CHECKPOINT = os.path.join(CHECKPOINTS, "mnist.safetensors")


@st.cache_resource(show_spinner=False)
def mnist(path: str = MNIST_CHECKPOINT):
    """(model, config) of the shipped MNIST model, or (None, {'error': message}) with what is wrong.

    A checkpoint of another kind (a 2-D model saved under this name) is refused with a clear message.
    """
    if not os.path.exists(path):
        return None, {"error": f"{path} is missing: train one with `python -m diffusion.train --dataset mnist "
                               f"--out {os.path.relpath(path)}`"}
    try:
        model, config = load_checkpoint(path, expect={"net.arch": "unet", "dataset": "mnist"})
    except CheckpointError as e:
        return None, {"error": str(e)}
    model.requires_grad_(False)
    return model, {**config, "source": "shipped"}


# --- which digit model pages 9-11 use ---------------------------------------------------------------------------
DIGITS = "mnist"  # the model store's name for a digit model trained in this session (page 12)
DIGIT_SOURCE = "digits.source"  # this session's choice for the digit pages: "session" or "shipped"
DIGIT_SOURCES = {"session": "the model you trained (page 12)", "shipped": "the shipped model"}


def digit_source() -> str:
    """The digit model this session's digit pages use: "session" once one was trained here (unless switched back
    to the shipped one), else "shipped"."""
    if not has_session(DIGITS):
        return "shipped"
    return st.session_state.get(DIGIT_SOURCE, "session")


def set_digit_source(source: str) -> None:
    if source not in DIGIT_SOURCES:
        raise ValueError(f"digit model must be one of {', '.join(DIGIT_SOURCES)}; got {source!r}")
    st.session_state[DIGIT_SOURCE] = source


def digit_entry():
    """(model, config) of the digit model in use (digit_source()): the one trained here, or mnist()'s answer."""
    if digit_source() == "session":
        return st.session_state["trained"][DIGITS]
    return mnist()
