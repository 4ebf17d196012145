"""The shared sidebar and the `View` every page reads.

Every control here is created in the entry point (app.py) before the page runs, so it keeps its
value when you change page, and is bound to a URL query parameter, so a shared link reopens the same
view (the page itself is the URL's path). Pages call `view()`; they never build these widgets.
"""

from __future__ import annotations

import math
import os
import runpy
from dataclasses import dataclass, fields

import streamlit as st
import torch

from diffusion.models import oracle_model, reschedule
from diffusion.samplers import SAMPLERS
from diffusion.schedules import LOGSNR_MAX, SCHEDULES, Schedule, make_schedule
from toy_data import DATASETS, get_dataset

from . import models as model_store

APP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "app.py")
CUSTOM = "yours"  # the dataset name of the user's own points (pages/your_data.py)
SAMPLER_NAMES = {"ddpm": "DDPM (ancestral)", "ddim": "DDIM", "euler": "Euler in t (ODE)",
                 "heun": "Heun in t (ODE)", "euler_sigma": "Euler in σ (ODE, as k-diffusion)",
                 "heun_sigma": "Heun in σ (ODE, EDM's Algorithm 1)", "dpmpp_2m": "DPM-Solver++(2M)",
                 "sde": "Reverse SDE (Euler-Maruyama)"}
SAMPLER_HELP = ("Euler and Heun in t step in the schedule's own time t; in σ they step in σ/α, as EDM and "
                "k-diffusion do, and end at σ = 0 (their last step returns the predicted x0).")
SCHEDULE_NAMES = {"linear": "DDPM linear β", "cosine": "Cosine", "sigmoid": "Sigmoid", "edm": "EDM / Karras",
                  "ve": "Variance exploding", "flow": "Rectified flow"}
SIGMA_END = math.exp(-LOGSNR_MAX / 2)  # sigma / alpha where every time grid ends
SCHEDULE_HELP = (f"Every time grid here ends at log-SNR λ = {LOGSNR_MAX:g}, σ/α = e^-{LOGSNR_MAX / 2:g} ≈ "
                 f"{SIGMA_END:.4f}; for EDM that is not the paper's σ_min = 0.002, so its step grid is Karras' "
                 f"ρ = 7 grid from σ_max down to {SIGMA_END:.4f}.")
# Per-parameter slider help, where a value does something other than it seems.
PARAM_HELP = {"sigma_min": f"At or below e^-{LOGSNR_MAX / 2:g} ≈ {SIGMA_END:.4f} this changes only which t maps to "
                           f"which σ: every time grid ends at σ = {SIGMA_END:.4f} (λ = {LOGSNR_MAX:g}) either way, "
                           "so the steps and the samples are the same."}
DATASET_NAMES = {"moons": "Two moons", "swiss_roll": "Swiss roll", "circles": "Circles", "spiral": "Spiral",
                 "8gaussians": "8 Gaussians", "grid": "Grid", "checkerboard": "Checkerboard",
                 "pinwheel": "Pinwheel", CUSTOM: "Your own data"}
# Slider ranges for every schedule parameter: (min, max, step). Wide enough to explore; a combination
# the schedule itself rejects (say sigmoid start >= end) is reported and the defaults are used.
PARAM_RANGES = {
    "beta_min": (0.01, 1.0, 0.01), "beta_max": (1.0, 40.0, 0.5), "s": (0.0, 0.2, 0.002),
    "start": (-8.0, 0.0, 0.5), "end": (0.5, 8.0, 0.5), "tau": (0.1, 3.0, 0.1),
    "sigma_min": (0.002, 0.1, 0.001), "sigma_max": (5.0, 100.0, 1.0), "rho": (1.0, 10.0, 0.5),
}
PARAM_LABELS = {"beta_min": "β_min", "beta_max": "β_max", "s": "offset s", "start": "start", "end": "end",
                "tau": "temperature τ", "sigma_min": "σ_min", "sigma_max": "σ_max", "rho": "ρ"}
MAX_STEPS = 200  # sampler steps a page may ask for (server-side cap)
T_STEP = 0.01  # the shared t moves on this grid, so per-t caches stay small
MODEL_CHOICES = {"shipped": "Shipped model", "session": "Trained in this session"}


@dataclass(frozen=True)
class View:
    """What the sidebar says: the pages' whole shared state."""

    dataset: str
    schedule: Schedule
    t: float
    label: int | None  # None: unconditional
    guidance: float
    sampler: str
    steps: int
    model_source: str  # "shipped" or "session"
    device: str

    @property
    def dist(self):
        return dataset(self.dataset)

    @property
    def logsnr(self) -> float:
        return float(self.schedule.logsnr(self.t))

    @property
    def alpha_sigma(self) -> tuple[float, float]:
        a, s = self.schedule.alpha_sigma(self.t)
        return float(a), float(s)

    def oracle(self):
        """The exact denoiser of this dataset under this schedule."""
        return oracle_model(self.dist, self.schedule)

    def learned(self):
        """The learned model under this view's schedule, or None when there is none for this dataset."""
        model = model_store.get(self.dataset, self.model_source)
        return None if model is None else reschedule(model, self.schedule)

    @property
    def data_key(self) -> str:
        """A cache key for the dataset: its name, or for the user's own data a hash of the points."""
        return self.dataset if self.dataset != CUSTOM else f"{CUSTOM}:{st.session_state.get('custom_key', '')}"

    @property
    def model_key(self) -> str:
        """A cache key for the learned model (changes when a new one is trained in this session)."""
        info = self.learned_info() or {}
        return f"{self.model_source}:{self.data_key}:{info.get('id', '')}"

    def learned_info(self) -> dict | None:
        return model_store.info(self.dataset, self.model_source)


def dataset(name: str):
    """A toy distribution by name, or the session's own data."""
    if name == CUSTOM:
        return st.session_state["custom_dist"]
    return get_dataset(name)


def devices() -> list[str]:
    out = ["cpu"]
    if torch.cuda.is_available():
        out.insert(0, "cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.insert(0, "mps")
    return out


def bound(widget, label, *args, key, **kwargs):
    """`widget(label, ...)` whose value is also the URL query parameter `key` (and kept across pages), so a
    shared link reopens the same view. The sidebar's controls and the pages' own use it."""
    return widget(label, *args, key=key, bind="query-params", persist_state="session", **kwargs)


def _schedule_params(name: str) -> dict:
    defaults = SCHEDULES[name]()
    params = {}
    for f in fields(SCHEDULES[name]):
        lo, hi, step = PARAM_RANGES[f.name]
        decimals = len(repr(float(step)).partition(".")[2].rstrip("0"))  # as many as the step has: s = 0.008
        params[f.name] = bound(st.slider, PARAM_LABELS[f.name], lo, hi, float(getattr(defaults, f.name)), step,
                               key=f"{name}.{f.name}", help=PARAM_HELP.get(f.name), format=f"%.{decimals}f")
    return params


def request(**values) -> None:
    """Ask the sidebar to take new values on the next run (say dataset="yours", model="session").

    A page runs after the sidebar, and Streamlit forbids setting a drawn widget's value in the same
    run, so the values wait here; follow with st.rerun() to apply them now.
    """
    st.session_state.setdefault("_requested", {}).update(values)


def sidebar() -> View:
    """Draw the shared controls (once, from app.py) and remember the view for the page."""
    for key, value in st.session_state.pop("_requested", {}).items():
        st.session_state[key] = value
    with st.sidebar:
        names = list(DATASETS) + ([CUSTOM] if "custom_dist" in st.session_state else [])
        if st.session_state.get("dataset") not in names:  # e.g. a shared link to someone else's data
            st.session_state.pop("dataset", None)
        name = bound(st.selectbox, "Dataset", names, key="dataset")
        st.caption(DATASET_NAMES[name] if name != CUSTOM else "Your own points (page 8)")
        sched_name = bound(st.selectbox, "Noise schedule", list(SCHEDULES), index=list(SCHEDULES).index("cosine"),
                           key="schedule",
                           help=" · ".join(f"{k}: {v}" for k, v in SCHEDULE_NAMES.items()) + ". " + SCHEDULE_HELP)
        with st.expander("Schedule parameters"):
            params = _schedule_params(sched_name)
            if sched_name == "flow":
                st.caption("Rectified flow has no parameters: α = 1 − t, σ = t.")
        try:
            schedule = make_schedule(sched_name, **params)
        except ValueError as e:  # e.g. sigmoid start >= end: say which, fall back to the defaults
            st.warning(f"{e}. Using the default {SCHEDULE_NAMES[sched_name]} parameters.")
            schedule = make_schedule(sched_name)
        t = bound(st.slider, "Time t", 0.0, 1.0, 0.3, T_STEP, key="t",
                  help="0 is clean data, 1 is pure noise. Shared by every page.")
        lam = float(schedule.logsnr(t))
        st.caption(f"log-SNR λ = {lam + 0.0:.2f} · SNR = e^λ = {torch.tensor(lam).exp().item():.3g}")
        dist = dataset(name)
        label_name = bound(st.selectbox, "Label (the prompt)", ["none"] + list(dist.label_names), key="label",
                           help="Condition on a class, or 'none' for the whole distribution.")
        label = None if label_name == "none" else list(dist.label_names).index(label_name)
        with st.expander("Model"):
            sources = ["shipped"] + (["session"] if model_store.has_session(name) else [])
            if st.session_state.get("model") not in sources:
                st.session_state.pop("model", None)
            source = bound(st.radio, "Learned model", sources, key="model", horizontal=True,
                           help="shipped: trained by us, in checkpoints/; session: the one you trained on the Train page")
            info = model_store.info(name, source)
            st.caption(model_store.describe(info) if info else "No learned model yet: train one on the Train page.")
        if source == "shipped" and (bad := model_store.problem(name)):
            st.warning(f"The shipped model cannot be used: {bad}. The pages show the exact side only; "
                       "a model trained on the Train page works as usual.")
        with st.expander("Sampler and device"):
            guidance = bound(st.slider, "Guidance weight w", 0.0, 8.0, 0.0, 0.5, key="w",
                             help="Classifier-free guidance; used only when a label is chosen.")
            sampler = bound(st.selectbox, "Sampler", list(SAMPLERS), index=list(SAMPLERS).index("heun"),
                            key="sampler",
                            help=" · ".join(f"{k}: {v}" for k, v in SAMPLER_NAMES.items()) + ". " + SAMPLER_HELP)
            steps = bound(st.slider, "Sampler steps", 1, MAX_STEPS, 25, key="steps")
            device = bound(st.selectbox, "Device", devices(), key="device",
                           help="Where training and sampling run. A GPU is used only when present.")
    v = View(name, schedule, float(t), label, float(guidance), sampler, int(steps), source, device)
    st.session_state["_view"] = v
    return v


def view() -> View:
    """The view the sidebar drew on this run. A page calls this once, at its top.

    app.py keeps the sidebar's view in st.session_state["_view"] while the page runs (`forget` drops it
    afterwards), so a page that finds none was started without app.py. Streamlit 1.67 does that because this
    app has a folder named pages/. A PagesManager (streamlit/runtime/pages_manager.py) created while no script
    has called st.navigation sets the class attribute `uses_pages_directory` to whether <app folder>/pages
    exists; while it is true the script runner (`_mpa_v1`, runtime/scriptrunner/script_runner.py) does not
    execute app.py but builds a navigation from the files in pages/ and runs the requested one alone. The
    setting is one per process and only st.navigation turns it off. So the first run on a fresh server opened
    at a page's URL (/forward) runs pages/forward.py alone, and so does every AppTest run of a page other than
    Home (AppTest sets the attribute back to None before each run). Home is not affected: in that mode app.py
    is the main page and runs as one.

    Here the page then runs app.py, as Streamlit runs it ("__main__"): its st.navigation turns the pages/ mode
    off for the server, and it draws the page config, the titled navigation, the sidebar and this same page;
    then this outer run stops. Without that, the page would show without app.py's page title and layout,
    navigation, sidebar and thread settings, and, as nothing would call st.navigation, every later session on
    the server would get pages run alone too until someone opened Home. Streamlit 1.67 has no setting that
    turns the pages/ detection off (client.showSidebarNavigation only hides that mode's navigation), and the
    folder's name is fixed by the project's layout. This reads no private Streamlit state: only the marker
    app.py leaves.
    """
    v = st.session_state.get("_view")
    if v is None:
        runpy.run_path(APP, run_name="__main__")
        st.stop()
    return v


def forget() -> None:
    """Called by app.py after the page ran, so the next run starts from the widgets again."""
    st.session_state.pop("_view", None)
