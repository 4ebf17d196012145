"""12 · Train digits: train a class-conditional MNIST model live, watch the digits form, and use it on pages 9-11."""

import streamlit as st

from ui.present import chart
from ui.state import view

v = view()

from diffusion.checkpoints import CheckpointError  # noqa: E402
from diffusion.classifier import DEFAULT_PATH, load_classifier  # noqa: E402
from diffusion.training import diffusion_loss, train  # noqa: E402
from ui import models as model_store  # noqa: E402
from ui import runs  # noqa: E402
from ui.digit_training import (GRID_SAMPLER, GRID_STEPS, GRID_W, JUDGE_NFE, JUDGE_SAMPLER,  # noqa: E402
                               PER_DIGIT, REDRAW_S, STEPS_RANGE, DigitTrainingJob, grid_samples, judge, live_config,
                               recipe_for)
from ui.images import grid_figure  # noqa: E402
from ui.page import downloads, show_source  # noqa: E402
from ui.state import SAMPLER_NAMES  # noqa: E402
from ui.training import MAX_CONCURRENT, eta_text, loss_figure  # noqa: E402

JOB = "_digit_train_job"  # this session's DigitTrainingJob (one at a time)
POLL_S = 1.0  # how often the live view redraws while training
SOURCE = "digits_train.source"  # the model-choice widget, a mirror of ui.models.digit_source()
DIGIT_ROWS = [str(d) for d in range(10)]
LIVE = recipe_for(v.device)  # a small network on the CPU, the shipped model's on a GPU
ON_CPU = LIVE["base"] == recipe_for("cpu")["base"]


@st.cache_resource(show_spinner=False)
def _classifier(path: str):
    """(the lab's MNIST classifier or None, the problem or None), read once per server."""
    try:
        return load_classifier(path)[0], None
    except CheckpointError as e:
        return None, str(e)


@st.cache_resource(show_spinner=False)
def _empty_loss(total: int):
    return loss_figure([], [], total)


def _collect(job) -> bool:
    """Put a finished job's EMA model in the session's model store (once); pages 9-11 then use it."""
    job.collected = True
    if job.result is None or job.result.steps_done == 0:
        return False
    model_store.put_session(model_store.DIGITS, job.result.model, job.info())
    model_store.set_digit_source("session")
    return True


st.title("12 · Train digits")
st.markdown(
    f"""
Pages 9 to 11 use a model that trained for an hour. Here you train your own, live, with the same loss as the 2-D
models on page 5: take real digits, noise them to a random level, and ask a U-Net to undo the noise,
told which digit it is (except for {LIVE['label_dropout']:.0%} of the digits, so that it also learns the
unconditional model that guidance needs). The grid below is redrawn every few seconds from the **same starting
noise**, so what changes is only the model: watch blurs turn into digits. """
    + ("The network is small enough to learn in about two minutes on one CPU core." if ON_CPU else
       "On this GPU it is the shipped model's own network and recipe.")
)
st.latex(r"\mathcal{L}(\theta) = \mathbb{E}_{x_0,\,c,\,t,\,\varepsilon}\Big[\, w(\lambda_t)\,"
         r"\big\|\hat\varepsilon_\theta(\alpha_t x_0 + \sigma_t \varepsilon,\; t,\; c) - \varepsilon\big\|^2 \Big],"
         r"\qquad \lambda_t = \log\frac{\alpha_t^2}{\sigma_t^2}")
st.caption(f"x₀ is a 28 × 28 digit, c its label (hidden {LIVE['label_dropout']:.0%} of the time). The network "
           "predicts v, whose loss is this ε error weighted by w(λ) = (1 + SNR)/SNR, on the cosine schedule, as the "
           "shipped digit model does.")

classifier, classifier_problem = _classifier(DEFAULT_PATH)
job = st.session_state.get(JOB)
busy = job is not None and job.active
lost = runs.notice("digits_train")  # a training this URL names that this session cannot show (ui/runs.py)
if lost:
    st.warning(lost, icon=":material/cloud_off:")

c1, c2, c3 = st.columns([1, 1, 3])
steps = c1.number_input("Training steps", STEPS_RANGE[0], STEPS_RANGE[1], LIVE["steps"], 100, key="digits_train.steps",
                        disabled=busy, persist_state="session",
                        help=f"{STEPS_RANGE[0]}..{STEPS_RANGE[1]}; batches of {LIVE['batch']} digits"
                             + ("; 1,200 take about two minutes on one idle CPU core." if ON_CPU else "."))
if c2.button("Train", type="primary", icon=":material/play_arrow:", key="digits_train.start", disabled=busy):
    try:
        config = live_config(steps, batch=LIVE["batch"], lr=LIVE["lr"], ema=LIVE["ema"],
                             label_dropout=LIVE["label_dropout"], device=v.device)
        job = DigitTrainingJob(config, classifier).start()
        st.session_state[JOB] = job
        runs.start("digits_train")
        st.rerun()
    except ValueError as e:
        st.error(f"Cannot train with these settings: {e}")
if model_store.has_session(model_store.DIGITS):
    st.session_state[SOURCE] = model_store.digit_source()  # the session's choice, also after a new model arrived
    c3.radio("Digit model for pages 9-11", list(model_store.DIGIT_SOURCES), format_func=model_store.DIGIT_SOURCES.get,
             key=SOURCE, horizontal=True, on_change=lambda: model_store.set_digit_source(st.session_state[SOURCE]),
             help="In this session only. Training again replaces your model.")
if classifier_problem:
    st.warning(f"The lab's digit classifier could not be loaded ({classifier_problem}), so the finished model's "
               "accuracy is not measured. Training works as usual.")


def accuracy_text(accuracy: dict, n: int) -> str:
    parts = [f"**{100 * p:.1f}%** ± {100 * se:.1f} " + (f"guided (w = {w:g})" if w else "unguided")
             for w, (p, se) in accuracy.items()]
    return ("The lab's classifier read as the asked digit " + " and ".join(parts)
            + f" of {n} samples each ({SAMPLER_NAMES[JUDGE_SAMPLER]}, {JUDGE_NFE} evaluations; ± one standard error). "
            "The shipped model reads about 97% unguided.")


@st.fragment(run_every=POLL_S if busy else None)
def monitor():
    """The live view: redrawn on its own every POLL_S seconds while training, without rerunning the page."""
    job = st.session_state.get(JOB)
    if job is None:
        st.info("Press **Train** to start. The loss and a grid of every digit update here while it runs; you can stop "
                "at any time and keep the model trained so far.")
        chart(_empty_loss(int(steps)), width="stretch", theme=None, key="digits_train.loss_chart")
        return
    pr = job.progress()
    state, step, total = pr["state"], pr["step"], pr["total"]
    if not job.active and not job.collected and _collect(job):
        st.rerun()  # the whole page: the model choice above now offers the new model
    if job.active:
        if state == "queued":
            st.progress(0.0, text=f"Waiting for a free training slot (at most {MAX_CONCURRENT} trainings, of points "
                                  "or digits, run at once on this server)...")
        elif state == "evaluating":
            st.progress(1.0, text=f"Training finished; the lab's classifier is reading {2 * job.judge_n} samples...")
        else:
            st.progress(min(1.0, step / total), text=eta_text(step, total, pr["seconds"]))
        st.button("Stop and keep the model so far", icon=":material/stop:", key="digits_train.stop",
                  on_click=job.request_stop, disabled=job.stop_requested)
    if job.error:
        st.error(f"Training failed: {job.error}")
    elif state == "done":
        r = job.result
        if r.stopped and job.stop_requested:
            st.info(f"Stopped by you after {r.steps_done} of {total} steps; that model was kept." if r.steps_done
                    else "Stopped by you before the first step: there is no model to keep.")
        elif r.stopped:
            st.warning(f"Training could not go on: {r.stopped}.")
        if r.steps_done:
            st.success("Your model now serves pages 9-11 in this session (switch above).")
            m = st.columns(4)
            m[0].metric("Training time", f"{r.seconds:.1f} s")
            m[1].metric("Steps", f"{r.steps_done:,}")
            for col, w in zip(m[2:], sorted(pr["accuracy"] or {}, reverse=True)):
                p, se = pr["accuracy"][w]
                col.metric(f"Read as asked, {'w = ' + format(w, 'g') if w else 'unguided'}", f"{100 * p:.1f}%",
                           help=f"± {100 * se:.1f} (one standard error) on {job.judge_n} samples")
            if pr["accuracy"]:
                st.markdown(accuracy_text(pr["accuracy"], job.judge_n))
    left, right = st.columns([2, 3])
    grid = pr["grid"]
    fkey = (id(job), step, None if grid is None else grid[0], state, len(pr["losses"]))
    cached = st.session_state.get("_digit_train_figs")
    if cached is None or cached[0] != fkey:  # build the figures only when something changed
        title = ("Not yet sampled" if grid is None else
                 f"Step {grid[0]:,}: guided w = {GRID_W:g}, {SAMPLER_NAMES[GRID_SAMPLER]}, {GRID_STEPS} steps")
        images = None if grid is None else grid[1]
        cached = (fkey, loss_figure(pr["steps"], pr["losses"], total),
                  None if images is None else grid_figure(images, DIGIT_ROWS, title, cell_px=56))
        st.session_state["_digit_train_figs"] = cached
    _, fig_loss, fig_grid = cached
    with left:
        chart(fig_loss, width="stretch", theme=None, key="digits_train.loss_chart")
    with right:
        if fig_grid is None:
            st.info("The first grid appears within a few seconds of the start.")
        else:
            chart(fig_grid, width="stretch", theme=None, key="digits_train.grid")
    st.caption(f"Right: {PER_DIGIT} samples of each digit from the current EMA model (the average of the recent "
               f"weights), one row per digit, each column one starting noise, the same at every redraw (every "
               f"{REDRAW_S:g} s of training).")
    if not job.active and fig_grid is not None:
        downloads(fig_grid, "digits while training", key="digits_train.dl_grid")


monitor()

if ON_CPU:
    st.subheader("What is different from the shipped model")
    st.markdown(
        f"""
The shipped digit model has 24 channels at full resolution and an attention layer (0.64 M weights), and trained
for 9,000 steps in about an hour. The live one keeps the same U-Net layout with {LIVE['base']} channels and no
attention (0.07 M weights), and trains for {LIVE['steps']:,} steps with a larger learning rate ({LIVE['lr']:g},
warmed up, then decayed to 0) and a shorter average of its weights. Guided, it draws the asked digit about as
reliably as the shipped model; unguided, more of its digits can be read as another digit (about 85% read as asked,
against 97%).
"""
    )
show_source(DigitTrainingJob._callback, grid_samples, judge, diffusion_loss, train)
