"""5 · Train: train a diffusion model live, watch its loss and its samples, and use it on every page."""

import streamlit as st

from diffusion.models import build_model
from diffusion.schedules import LOGSNR_NORMAL
from diffusion.training import diffusion_loss, train
from ui import models as model_store
from ui import runs
from ui.figures import density_grid
from ui.page import downloads, show_source
from ui.present import chart
from ui.state import DATASET_NAMES, SCHEDULE_NAMES, request, view
from diffusion.evaluate import kl_gaps
from diffusion.likelihood import ode_log_likelihood
from ui.live_metrics import FINAL_POINTS, LIVE_POINTS, LIVE_STEPS, SHARE, LiveKL, kl_text
from ui.training import (BATCH_CHOICES, DEFAULTS, LR_CHOICES, MAX_CONCURRENT, PARAM_NAMES, STEPS_RANGE,
                         T_SAMPLING_NAMES, TARGET_NAMES, WEIGHTING_NAMES, TrainingJob, eta_text, exact_points, loss_figure,
                         make_config, samples_figure, snapshot_samples)
from diffusion.parameterizations import PARAMETERIZATIONS, WEIGHTINGS
import pandas as pd
import torch
from diffusion.models import reschedule
from diffusion.schedules import make_schedule
from ui import targets as three
import plotly.graph_objects as go
from ui.figures import LEARNED_COLOR, PALETTE, LazyFigure, SpecFigure, patch
from ui.state import T_STEP, bound
from ui.threads import one_thread

v = view()

JOB = "_train_job"  # this session's TrainingJob (one at a time)
POLL_S = 1.0  # how often the live view redraws while training


@st.cache_data(show_spinner=False, max_entries=32)
def _density(data_key: str, _dist):
    return density_grid(_dist, 1.0, 0.0, n=90)


@st.cache_resource(show_spinner=False, max_entries=32)
def _before(data_key: str, _dist):
    """The samples figure before any training: the true points, and an empty panel for the model's."""
    x, y = exact_points(_dist)
    return samples_figure(_dist, x, y, None, "Learned (press Train)", density=_density(data_key, _dist))


@st.cache_resource(show_spinner=False)
def _empty_loss(total: int):
    return loss_figure([], [], total, kl=[])


def _collect(job) -> bool:
    """Put a finished job's EMA model in the session's model store (once). True when a model was stored."""
    job.collected = True
    if job.result is None or job.result.steps_done == 0:
        return False
    model_store.put_session(job.dataset, job.result.model, job.info())
    request(model="session")  # the sidebar switches to it (where this dataset is the one shown)
    return True


st.title("5 · Train a model")
st.markdown(
    """
Every page so far used the **exact** answer, which we can only compute because our toy data is a known
mixture of Gaussians. A real diffusion model has only samples. Training shows it one batch after another:
take clean points $x_0$, pick a random time $t$, add noise of that level, and ask the network to undo it.
What the network writes out (its *parameterization*) can be the noise, the clean point, the velocity $v$,
the score, the flow velocity, or an energy whose slope is the score. All of them carry the same
information; what changes the result is **how much each noise level counts** in the loss, the weighting
$w(\\lambda)$. Below, the loss is written in noise units, whatever the network outputs.
"""
)
st.latex(r"\mathcal{L}(\theta) = \mathbb{E}_{x_0,\,t,\,\varepsilon}\Big[\, w(\lambda_t)\,"
         r"\big\|\hat\varepsilon_\theta(\alpha_t x_0 + \sigma_t \varepsilon,\; t,\; c) - \varepsilon\big\|^2 \Big],"
         r"\qquad \lambda_t = \log\frac{\alpha_t^2}{\sigma_t^2}")
st.caption("c is the class label (the prompt); it is hidden from the network for 15% of the batches, so the same "
           "network also learns the unconditional model that classifier-free guidance needs.")

job = st.session_state.get(JOB)
busy = job is not None and job.active
lost = runs.notice("train")  # a training this URL names that this session cannot show (ui/runs.py)
if lost:
    st.warning(lost, icon=":material/cloud_off:")

st.subheader("Settings")
sched_title = SCHEDULE_NAMES[v.schedule.spec().split(":")[0]]
st.markdown(f"Data: **{DATASET_NAMES.get(v.dataset, v.dataset)}** · schedule: **{sched_title}** "
            f"(`{v.schedule.spec()}`) · device: **{v.device}** — change these in the sidebar.")
c1, c2, c3, c4, c5 = st.columns([1.3, 1.3, 1, 1, 1])
param = c1.selectbox("Network predicts", PARAMETERIZATIONS, index=PARAMETERIZATIONS.index(DEFAULTS["parameterization"]),
                     format_func=lambda k: f"{k}: {PARAM_NAMES[k]}", key="train.param", disabled=busy,
                     persist_state="session")
weighting = c2.selectbox("Loss weighting w(λ)", list(WEIGHTINGS), index=list(WEIGHTINGS).index(DEFAULTS["weighting"]),
                         format_func=lambda k: WEIGHTING_NAMES[k], key="train.weighting", disabled=busy,
                         persist_state="session")
steps = c3.number_input("Training steps", STEPS_RANGE[0], STEPS_RANGE[1], DEFAULTS["steps"], 100, key="train.steps",
                        disabled=busy, persist_state="session",
                        help=f"{STEPS_RANGE[0]}..{STEPS_RANGE[1]}; the default {DEFAULTS['steps']:,} take about 25 s "
                             "on one idle CPU core and reach the lab's quality targets on every toy set "
                             "(the shipped models: 4,000 or more of a slower recipe).")
batch = c4.select_slider("Batch size", BATCH_CHOICES, DEFAULTS["batch"], key="train.batch", disabled=busy,
                         persist_state="session")
lr = c5.select_slider("Learning rate", LR_CHOICES, DEFAULTS["lr"], format_func=lambda x: f"{x:g}", key="train.lr",
                      disabled=busy, persist_state="session", help="peak Adam step; warm-up, then cosine decay to 0")

c6, c7 = st.columns(2)
t_sampling = c6.selectbox("Noise levels drawn", list(T_SAMPLING_NAMES), format_func=T_SAMPLING_NAMES.get,
                          index=list(T_SAMPLING_NAMES).index(DEFAULTS["t_sampling"]), key="train.t_sampling",
                          disabled=busy, persist_state="session")
batch_target = c7.selectbox("Regression target", list(TARGET_NAMES), format_func=TARGET_NAMES.get,
                            index=list(TARGET_NAMES).index(DEFAULTS["batch_target"]), key="train.batch_target",
                            disabled=busy, persist_state="session")
with st.expander("Why the defaults learn in about half a minute"):
    st.markdown(
        "Two choices make the difference, each measured against the plain recipe (uniform t, each example's own "
        "noise as its target) on the three rings, where the plain recipe is slowest. **Where t falls:** a 2-D "
        "model's likelihood is lost at small noise, about the width of the data's own fine structure, so most "
        f"examples are drawn there: λ from a normal of mean {LOGSNR_NORMAL[0]:g} and spread {LOGSNR_NORMAL[1]:g}. "
        "**A calmer target:** at small noise each example's own ε is mostly unpredictable, so its squared error is "
        "mostly noise. Each example is instead asked for the average clean point that the whole batch suggests for "
        "its x_t, which has the same ideal answer and far less noise. With both, three rings reach a KL gap of "
        "0.03 nats in the time the plain recipe reaches 0.4 (docs/training.md).")
    st.latex(r"\hat x_0(x_t) = \sum_j w_j\, x_0^{(j)},\quad w_j \propto \exp\!\Big(-\frac{\|x_t - \alpha_t x_0^{(j)}\|^2}"
             r"{2\sigma_t^2}\Big),\qquad \bar\varepsilon = \frac{x_t - \alpha_t \hat x_0(x_t)}{\sigma_t}"
             r"\ \text{ replaces } \varepsilon")
if param == "energy" and weighting != "eps":
    st.caption("An energy head learns its score through the slope of one number, and trains far better with the ε-MSE "
               "weighting: after 1,000 steps on moons its score at t = 0.25 was 10% off with it and 94% off with v-MSE "
               "(docs/energy.md). The shipped energy heads (page 2) use ε-MSE.")
b1, b2, b3 = st.columns([1, 1, 3])
if b1.button("Train", type="primary", icon=":material/play_arrow:", key="train.start", disabled=busy):
    try:
        config = make_config(steps, batch, lr, weighting, v.device, t_sampling=t_sampling, batch_target=batch_target)
        job = TrainingJob(v.dist, v.dataset, v.data_key, param, v.schedule, config).start()
        st.session_state[JOB] = job
        runs.start("train")
        st.rerun()
    except ValueError as e:
        st.error(f"Cannot train with these settings: {e}")
if model_store.has_session(v.dataset) and not busy:
    b3.caption("This session already has a model for this dataset: "
               + model_store.describe(model_store.info(v.dataset, "session")) + ". Training again replaces it.")


@st.fragment(run_every=POLL_S if busy else None)
def monitor():
    """The live view: redrawn on its own every POLL_S seconds while training, without rerunning the page."""
    job = st.session_state.get(JOB)
    if job is None:
        st.info("Press **Train** to start. The loss curve and the model's samples update here while it runs; "
                "you can stop at any time and keep the model trained so far.")
        left, right = st.columns([2, 3])
        chart(_empty_loss(int(steps)), left, width="stretch", theme=None, key="train.loss_chart")
        chart(_before(v.data_key, v.dist), right, width="stretch", theme=None, key="train.samples_chart")
        st.caption(f"{DATASET_NAMES.get(v.dataset, v.dataset)}: 300 true points over the exact density. The right "
                   "panel fills with the model's samples once it trains.")
        return
    pr = job.progress()
    state, step, total = pr["state"], pr["step"], pr["total"]
    if not job.active and not job.collected:
        if _collect(job):
            st.rerun()  # the whole app: the sidebar now offers the new model
    if job.active:
        if state == "queued":
            st.progress(0.0, text=f"Waiting for a free training slot (at most {MAX_CONCURRENT} trainings run at once "
                                  "on this server)...")
        elif state == "evaluating":
            st.progress(1.0, text="Training finished; measuring the model against the exact data...")
        else:
            st.progress(min(1.0, step / total), text=eta_text(step, total, pr["seconds"]))
        st.button("Stop and keep the model so far", icon=":material/stop:", key="train.stop",
                  on_click=job.request_stop, disabled=job.stop_requested)
    name = DATASET_NAMES.get(job.dataset, job.dataset)
    job_sched = SCHEDULE_NAMES[job.schedule.spec().split(":")[0]]
    if (job.data_key, job.schedule.spec()) != (v.data_key, v.schedule.spec()):  # the sidebar moved on since
        st.info(f"This run trains on **{name}** with the **{job_sched}** schedule (`{job.schedule.spec()}`), "
                f"{job.parameterization}-prediction, {WEIGHTING_NAMES[job.config.weighting]}: the settings it "
                "started with. The sidebar has changed since; press **Train** to train on what it shows now.",
                icon=":material/info:")
    if job.error:
        st.error(f"Training failed: {job.error}")
    elif state == "done":
        r = job.result
        if r.stopped and job.stop_requested:
            st.info(f"Stopped by you after {r.steps_done} of {total} steps; that model was kept." if r.steps_done
                    else "Stopped by you before the first step: there is no model to keep.")
        elif r.stopped:
            st.warning(f"Training could not go on: {r.stopped}. Try a smaller learning rate or another weighting.")
        if r.steps_done:
            st.success(f"The model trained on **{name}** now serves every page in this session "
                       "(sidebar, *Model*: **session**).")
            m1, m2, m3, m4, m5 = st.columns(5)
            m1.metric("Training time", f"{r.seconds:.1f} s")
            m2.metric("Steps", f"{r.steps_done:,}")
            m3.metric("ED ratio", f"{job.ed_ratio:.2f}",
                      help="Energy distance of 2,000 model samples to true samples, divided by what two "
                           "independent true samples of that size score: 1 means as close as a fresh true sample. "
                           "Even exact samples scatter: scored the same way they read from 0.3 to 1.6 (10 draws on "
                           "each toy set), so values in that range cannot be told from exact. Far above it, it "
                           "grows in proportion to the number of points: it says the samples are clearly "
                           "elsewhere, not how far (look at the samples below; page 7, Reverse sampling, shows "
                           "the scatter of exact samples beside its ratios).")
            if job.kl_final is not None:
                m4.metric("KL, nats", f"{job.kl_final[0]:.3f}",
                          help=f"KL(p_data ‖ p_θ) ± {job.kl_final[1]:.3f} (one standard error), on {FINAL_POINTS:,} "
                               "held-out true points: the figure `python -m diffusion.evaluate` reports as kl_gap_nats "
                               "(its ODE takes 128 steps, this one 48: 0.002 nats lower on the shipped models)")
            m5.metric("Final loss", f"{sum(r.losses[-100:]) / len(r.losses[-100:]):.4f}",
                      help="mean over the last 100 steps")
    left, right = st.columns([2, 3])
    snap = pr["snapshot"]
    fkey = (id(job), step, None if snap is None else snap[0], state, len(pr["losses"]), len(pr["kl"]),
            pr["kl_final"])
    cached = st.session_state.get("_train_figs")
    if cached is None or cached[0] != fkey:  # build the figures only when something changed
        title = "Learned (not yet sampled)" if snap is None else f"Learned, step {snap[0]:,}"
        cached = (fkey, loss_figure(pr["steps"], pr["losses"], total, kl=pr["kl"], kl_final=pr["kl_final"]),
                  samples_figure(job.dist, job.exact_x, job.exact_y, None if snap is None else snap[1], title,
                                 density=_density(job.data_key, job.dist)))
        st.session_state["_train_figs"] = cached
    _, fig_loss, fig_samples = cached
    with left:
        chart(fig_loss, width="stretch", theme=None, key="train.loss_chart")
    with right:
        chart(fig_samples, width="stretch", theme=None, key="train.samples_chart")
    st.caption(f"{name}. Left of the pair: 300 true points over the exact density. Right: 300 samples of the "
               f"current EMA model (Heun, 15 steps, always from the same starting noise), each asked for the class "
               f"its colour shows, redrawn every {job.snapshot_every} training steps. Below the loss: "
               f"KL(p_data ‖ p_θ) of the EMA model, ± one standard error. {kl_text(pr['kl'], pr['kl_final'])}")
    if not job.active:
        st.caption("The loss curve:")
        downloads(fig_loss, "training loss", key="train.dl_loss")
        st.caption("The samples beside the exact ones:")
        downloads(fig_samples, "training samples", key="train.dl_samples")


monitor()

st.subheader("The divergence we cannot train on")
st.markdown(
    f"""
Below the loss, the page draws the quantity we would *like* to minimise: the KL divergence from the data to the
model, the average over true points of how much less likely the model finds them than the data does. It can be
drawn here because both terms are known: $\\log p_\\text{{data}}$ exactly, since the toy data is a known
mixture, and $\\log p_\\theta$ by following each of {LIVE_POINTS} fixed held-out points along the probability-flow
ODE to pure noise ({LIVE_STEPS} Heun steps) and adding up how much the flow stretches space on the way. The estimates
run in the training thread, only while they take less than {SHARE:.0%} of the time spent training. When
training ends the same is measured on {FINAL_POINTS:,} held-out points.

Training on it directly is another matter. Its first term does not depend on $\\theta$, so minimising it is
maximising $\\mathbb E\\,\\log p_\\theta(x)$, which needs a *normalised* $p_\\theta$ for every training
point: either the normaliser $Z_\\theta$ of an energy (page 2: hopeless beyond a few dimensions) or a whole ODE
solve with the divergence of the network, differentiated through, per point and per step. For a 28x28 image that
divergence alone is 784 backward passes (or a noisy estimate of it). And for real data
$\\log p_\\text{{data}}$ is unknown, so even the curve can only be drawn for toy data. The denoising loss above
asks for one network call per point and needs neither.
"""
)
st.latex(r"\mathrm{KL}(p_\text{data} \,\|\, p_\theta) = \mathbb{E}_{x \sim p_\text{data}}"
         r"\big[\log p_\text{data}(x) - \log p_\theta(x)\big]")

# --- three targets, one prediction ------------------------------------------------------------------------------
TARGETS_T, TARGETS_DRAW = "train.targets_t", "train.targets_draw"
DRAWS = 10_000  # draws 0..9999


@st.cache_resource(show_spinner=False, max_entries=64)
def _target_errors(data_key: str, model_key: str, spec: str, label, _dist, _model):
    """(lambdas, {'eps', 'x0', 'v'}): `_model`'s error against the ideal denoiser per noise level or, when `_model` is
    None, the ideal denoiser's own loss. `data_key` names `_dist`; `model_key` and `spec` name `_model`."""
    schedule = make_schedule(spec)
    lams = three.error_lambdas(schedule)
    with one_thread():
        if _model is None:
            return lams, three.loss_floor(_dist, schedule, lams, label)
        return lams, three.model_errors(_model, _dist, schedule, lams, label)


@st.cache_resource(show_spinner=False, max_entries=64)
def _weights_spec(spec: str, selected: str) -> dict:
    return three.weights_figure(make_schedule(spec), None, selected).to_dict()


@st.cache_resource(show_spinner=False, max_entries=64)
def _errors_spec(data_key: str, model_keys: tuple, spec: str, label, _lams, _floor, _curves) -> dict:
    """`data_key`, `model_keys`, `spec` and `label` name `_lams`, `_floor` and `_curves` (see _target_errors)."""
    return three.errors_figure(_lams, _floor, _curves).to_dict()


def _marked(spec: dict, lam: float, panels: int):
    """The cached figure dict with this section's lambda marked, for drawing; a real figure for the downloads."""
    marked = patch(spec, {}, {"shapes": three.marker_lines(lam, panels)})
    return SpecFigure(marked), LazyFigure(lambda: go.Figure(marked))


@st.fragment
def targets_section():
    """Reruns alone when this section's t or draw changes."""
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    with c1:
        t = bound(st.slider, "Time t of this draw", 0.0, 1.0, 0.5, T_STEP, key=TARGETS_T)
    with c2:
        seed = bound(st.number_input, "Draw (+ for a new one)", 0, DRAWS - 1, 0, 1, key=TARGETS_DRAW,
                     help=f"Which clean point and noise: 0..{DRAWS - 1}")
    if not (0 <= t <= 1) or seed is None or not 0 <= seed < DRAWS:
        st.error(f"Time t must lie in [0, 1] and the draw in 0..{DRAWS - 1}; got t = {t}, draw = {seed}.")
        return
    lvl = three.noise_at(v.schedule, t)
    x0, eps = three.draw_pair(v.dist, int(seed), v.label)
    tg = three.targets(x0, eps, lvl)
    worst = max(float(torch.max(torch.abs(a - b))) for r in three.recovered(tg, lvl).values() for a, b in zip(r, (x0, eps)))
    learned = v.learned()
    with one_thread():
        exact = three.predictions(v.oracle(), tg["x_t"], t, v.label, torch.float64)
        guess = None if learned is None else three.predictions(learned, tg["x_t"], t, v.label)
    fig = three.targets_figure(tg, three.sample_path(v.schedule, x0, eps), three.is_vp(lvl), exact, guess,
                               _density(v.data_key, v.dist))
    left, right = st.columns([3, 2])
    with left:
        chart(fig, width="stretch", theme=None, key="train.targets_plane")
        downloads(fig, f"targets-{v.dataset}-t{t:.2f}", key="train.dl_targets_plane")
    with right:
        for line in three.CONVERSIONS:
            st.latex(line)
        st.latex(three.VP_FORMS)
        st.caption(three.level_text(t, lvl, worst))
        if not three.is_vp(lvl):
            st.caption(three.non_vp_text(lvl, sched_title))
        st.table(pd.DataFrame(three.targets_table(tg, exact, guess)).set_index("target"))
    st.caption("ε and x₀ are drawn from the origin, v from x_t: along the dotted path x_t = α x₀ + σ ε, traced for "
               "t from 0 to 1, v is the direction in which x_t moves as the noise grows (for a variance-preserving "
               "schedule). Diamonds: where the ideal denoiser's and the network's predictions put each tip; they "
               "differ from this draw's targets because x_t alone does not tell which x₀ and ε made it.")
    spec, lam = v.schedule.spec(), float(lvl.logsnr)
    weights = _marked(_weights_spec(spec, weighting), lam, 2)
    models = {"shipped model": (f"shipped:{v.data_key}", model_store.get(v.dataset, "shipped"), LEARNED_COLOR, "solid")}
    if model_store.has_session(v.dataset):
        sid = model_store.info(v.dataset, "session").get("id", "")
        models["trained in this session"] = (f"session:{v.data_key}:{sid}", model_store.get(v.dataset, "session"),
                                             PALETTE[3], "dash")
    lams, floor = _target_errors(v.data_key, "exact", spec, v.label, v.dist, None)
    curves = {name: (_target_errors(v.data_key, key, spec, v.label, v.dist, reschedule(m, v.schedule))[1], color, dash)
              for name, (key, m, color, dash) in models.items() if m is not None}
    keys = tuple(key for key, m, _, _ in models.values() if m is not None)
    errors = _marked(_errors_spec(v.data_key, keys, spec, v.label, lams, floor, curves), lam, 3)
    chart(weights[0], width="stretch", theme=None, key="train.targets_weights")
    st.caption("Each weighting's w(λ), the weight the loss puts on the ε error at that noise level (the one chosen "
               "above drawn thick); shaded: how often training draws each λ under this schedule, with t uniform.")
    downloads(weights[1], "loss-weightings", key="train.dl_targets_weights")
    st.latex(three.ERROR_LAW)
    chart(errors[0], width="stretch", theme=None, key="train.targets_errors")
    st.caption(three.ERRORS_CAPTION)
    downloads(errors[1], f"errors-per-noise-level-{v.dataset}", key="train.dl_targets_errors")


st.header("Three targets, one prediction")
st.markdown(three.INTRO)
targets_section()

with st.expander("Why the page stays responsive"):
    st.markdown(
        """
Training runs in a background thread of the server; this page only looks at its progress once a second
(a Streamlit fragment redraws the live view and nothing else). The thread uses one CPU thread, and only a
limited number of trainings run at once on the server, so other visitors' pages stay quick. When it ends,
or when you press Stop, the *EMA* copy of the weights (a running average that is smoother than the last
step's weights) becomes this session's model. Switching pages does not stop it; come back here to collect it.
"""
    )
show_source(diffusion_loss, train, build_model, snapshot_samples, LiveKL.update, kl_gaps, ode_log_likelihood,
            three.targets, three.predictions, three.lambda_density, three.model_errors, three.loss_floor)
