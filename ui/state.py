"""The shared sidebar: dataset, schedule and its parameters, model, t, label, guidance, sampler, steps.

Every control here is created in the entry point (app.py), so it keeps its value across pages, and is
bound to a URL query parameter, so a link reopens the same view. `View` is what the pages read.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import streamlit as st

from diffusion.samplers import SAMPLERS
from diffusion.schedules import SCHEDULES, Schedule, make_schedule
from toy_data import DATASETS, get_dataset

SAMPLER_NAMES = {"ddpm": "DDPM (ancestral)", "ddim": "DDIM", "euler": "Euler (ODE)", "heun": "Heun (ODE)",
                 "dpmpp_2m": "DPM-Solver++(2M)", "sde": "Reverse SDE (Euler-Maruyama)"}
SCHEDULE_NAMES = {"linear": "DDPM linear β", "cosine": "Cosine", "sigmoid": "Sigmoid", "edm": "EDM / Karras",
                  "ve": "Variance exploding", "flow": "Rectified flow"}
# Slider ranges for every schedule parameter: (min, max, step). Wide enough to explore, narrow enough
# that every value is valid for the schedule's own checks.
PARAM_RANGES = {
    "beta_min": (0.01, 1.0, 0.01), "beta_max": (1.0, 40.0, 0.5), "s": (0.0, 0.2, 0.002),
    "start": (-8.0, 0.0, 0.5), "end": (0.5, 8.0, 0.5), "tau": (0.1, 3.0, 0.1),
    "sigma_min": (0.002, 0.1, 0.001), "sigma_max": (5.0, 100.0, 1.0), "rho": (1.0, 10.0, 0.5),
}
MAX_STEPS = 200  # sampler steps a page may ask for (server-side cap)


@dataclass(frozen=True)
class View:
    dataset: str
    schedule: Schedule
    t: float
    label: int | None
    guidance: float
    sampler: str
    steps: int

    @property
    def dist(self):
        return get_dataset(self.dataset)


def _schedule_params(name: str) -> dict:
    defaults = SCHEDULES[name]()
    params = {}
    for f in fields(SCHEDULES[name]):
        lo, hi, step = PARAM_RANGES[f.name]
        params[f.name] = st.slider(f"{f.name}", lo, hi, float(getattr(defaults, f.name)), step,
                                   key=f"{name}.{f.name}", bind="query-params", persist_state="session")
    return params


def sidebar() -> View:
    """Draw the shared controls (call once, from app.py) and return the current view."""
    with st.sidebar:
        dataset = st.selectbox("Dataset", list(DATASETS), key="dataset", bind="query-params",
                               persist_state="session")
        name = st.selectbox("Noise schedule", list(SCHEDULES), index=list(SCHEDULES).index("cosine"),
                            format_func=SCHEDULE_NAMES.get, key="schedule", bind="query-params",
                            persist_state="session")
        with st.expander("Schedule parameters", expanded=False):
            params = _schedule_params(name)
            if name == "flow":
                st.caption("Rectified flow has no parameters: α = 1 − t, σ = t.")
        try:
            schedule = make_schedule(name, **params)
        except ValueError as e:  # e.g. sigmoid start >= end: say which, fall back to the defaults
            st.warning(f"{e}. Using the default {name} schedule.")
            schedule = make_schedule(name)
        t = st.slider("Time t", 0.0, 1.0, 0.3, 0.01, key="t", bind="query-params", persist_state="session")
        lam = schedule.logsnr(t).item()
        st.caption(f"log-SNR λ = {lam + 0.0:.2f} · SNR = {10 ** (lam / 2.302585):.3g}")
        dist = get_dataset(dataset)
        label_choice = st.selectbox("Label (the prompt)", ["none"] + list(dist.label_names), key="label",
                                    bind="query-params", persist_state="session")
        label = None if label_choice == "none" else dist.label_names.index(label_choice)
        guidance = st.slider("Guidance weight w", 0.0, 8.0, 0.0, 0.5, key="w", bind="query-params",
                             persist_state="session")
        sampler = st.selectbox("Sampler", list(SAMPLERS), index=list(SAMPLERS).index("heun"),
                               format_func=SAMPLER_NAMES.get, key="sampler", bind="query-params",
                               persist_state="session")
        steps = st.slider("Sampler steps", 1, MAX_STEPS, 25, key="steps", bind="query-params",
                          persist_state="session")
    return View(dataset, schedule, t, label, guidance, sampler, steps)
