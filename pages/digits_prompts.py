"""Page 11: prompts on digits: composing conditional predictions, and the generator used as a classifier."""

import streamlit as st

from ui.present import chart
from ui.state import view

v = view()

import random  # noqa: E402
import time  # noqa: E402
from functools import partial  # noqa: E402

import numpy as np  # noqa: E402

from diffusion.models import reschedule  # noqa: E402
from diffusion.samplers import nfe_of, sample  # noqa: E402
from diffusion.schedules import make_schedule  # noqa: E402
from toy_data.mnist import MnistError, load_mnist  # noqa: E402
from ui import digit_presets, digits  # noqa: E402
from ui.images import grid_figure, image_figure  # noqa: E402
from ui.digit_rows import run_jobs, stored, warn_if_unusable  # noqa: E402
from ui.page import digit_model, downloads, show_source  # noqa: E402
from ui.state import SAMPLER_NAMES, bound  # noqa: E402
from ui.workers import offload  # noqa: E402

PRESETS = digit_presets.COMPOSE_PRESETS

st.title("11 · Prompts on digits")

base_model, config, config_id = digit_model()
warn_if_unusable()
model = reschedule(base_model, v.schedule)
spec = v.schedule.spec()

# --- 1. composition -----------------------------------------------------------------------------------
st.header("Combining prompts")
st.markdown(
    """
We would like a model that has learned "cat", "banana" and "holding" to draw a combination it has
never seen. On digits the model only knows single labels, yet its predictions can still be combined.
Each conditional guess differs from the unconditional one by a **direction**: what would make this noisy
image more like a 3. Adding the directions for 3 and 8 asks for an image that is both at once; subtracting
the direction for 1 asks for a 7 *that does not look like a 1* (a crossed 7, a curved stem). In score
language, every step adds up **scores**: the unconditional score plus $w_i$ times each prompt's pull
$\\nabla_x \\log p(c_i \\mid x_t)$, with negative weights for "not". At each noise level that sum is the score
of a product of experts: the noisy density times a power of "how much the noisy image looks like each prompt".
The samples come from running the usual walk with that summed score. That is not the same as drawing from the
product of the *clean* densities, because noising a product does not give the product of the noised
densities: the composed walk lands near the product, not exactly on it.
"""
)
st.latex(r"\hat x_0 = \hat x_0(x_t, \varnothing) + \sum_i w_i\,\big(\hat x_0(x_t, c_i) "
         r"- \hat x_0(x_t, \varnothing)\big)")
st.latex(r"\nabla_x \log \tilde p(x_t) = \nabla_x \log p(x_t) + \sum_i w_i\, \nabla_x \log p(c_i \mid x_t)"
         r"\quad\Longleftrightarrow\quad \tilde p(x_t) \propto p(x_t) \prod_i p(c_i \mid x_t)^{w_i}")
st.caption("The second line holds at every noise level t; p̃ is defined by it at each t, not as one clean "
           "distribution that the walk samples. With one prompt of weight w this is classifier-free guidance with "
           "weight w − 1 (page 9): w = 1 is the plain conditional model. Weight 0 switches a prompt off.")


def page_sampler() -> tuple[str, int]:
    """DPM-Solver++(2M) with 20 steps, or the sidebar's sampler and steps when asked for."""
    if st.session_state.get("prompts.sidebar"):
        return v.sampler, v.steps
    return digit_presets.SAMPLER, digit_presets.STEPS


def _apply_preset(name):
    for i, (c, w) in enumerate(PRESETS[name]):
        st.session_state[f"prompts.c{i}"] = c
        st.session_state[f"prompts.w{i}"] = w
    st.session_state["prompts.k"] = 3 if PRESETS[name][2][1] else 2


@st.cache_data(show_spinner=False, max_entries=256)
def _compose_row(config_id, spec, prompts, n, sampler, steps, seed, device, _model):
    """(one row of samples [n, 28, 28] of the composed prompts, seconds), computed in a worker process."""
    t0 = time.perf_counter()
    images, _ = offload(digits.compose_grid, _model, make_schedule(spec), list(prompts), n, sampler, steps, seed, False,
                        device, on=device)
    return images[0], time.perf_counter() - t0


@st.fragment
def compose_section():
    cols = st.columns(len(PRESETS) + 1)
    cols[0].markdown("**Try:**")
    for col, name in zip(cols[1:], PRESETS):
        col.button(name, key=f"prompts.preset.{name}", on_click=_apply_preset, args=(name,), width="stretch")
    k = bound(st.radio, "Number of prompts", [2, 3], horizontal=True, key="prompts.k")
    slots = st.columns(3)
    prompts = []
    for i in range(k):
        c0, w0 = PRESETS["a 3 and an 8"][i]
        with slots[i]:
            c = bound(st.selectbox, f"Prompt {i + 1}: digit", list(range(10)), index=c0, key=f"prompts.c{i}")
            w = bound(st.slider, f"Prompt {i + 1}: weight w{i + 1}", -3.0, 5.0, w0, 0.5, key=f"prompts.w{i}",
                      help="> 0: 'and' (towards the digit); < 0: 'not' (away from it); 0: off")
        prompts.append((int(c), float(w)))
    o1, o2, o3 = st.columns([1, 1, 1])
    n = bound(o1.slider, "Samples per row", 4, 16, 8, key="prompts.n")
    seed = int(bound(o2.number_input, "Noise seed", 0, 9999, 0, 1, key="prompts.seed"))
    alone = bound(o3.checkbox, "Also each prompt on its own", value=False, key="prompts.alone",
                  help="Extra rows, from the same starting noises, with only one prompt switched on "
                       "(more network calls, so slower the first time).")
    bound(o3.checkbox, "Use the sidebar's sampler and steps", value=False, key="prompts.sidebar",
          help=f"Off: {SAMPLER_NAMES[digit_presets.SAMPLER]} with {digit_presets.STEPS} steps. On: the sampler and "
               "steps under 'Sampler "
               f"and device' in the sidebar (now {SAMPLER_NAMES[v.sampler]}, {v.steps} steps).")
    sampler, steps = page_sampler()
    active = [(c, w) for c, w in prompts if w != 0]
    if not active:
        st.info("Every weight is 0: set at least one prompt weight to a value other than 0.")
        return
    rows = digit_presets.compose_rows(prompts)
    if not alone:
        rows = rows[-1:]
    names = [digits.prompt_text([tuple(p) for p in r]) for r in rows[:-1]] + ["composed" if len(rows) == 1 else "all together"]
    nfe = nfe_of(sampler, steps)
    slot = st.container()
    images, jobs, seconds, ahead = {}, [], 0.0, 0
    for i, row in enumerate(rows):
        hit = stored(base_model, config_id, spec, "compose", prompts=row, sampler=sampler, steps=steps, seed=seed)
        if hit is not None and len(hit["images"]) >= n:
            images[i], seconds, ahead = hit["images"][:n], seconds + hit["seconds"] * n / len(hit["images"]), ahead + 1
            continue
        call = (config_id, spec, tuple(tuple(p) for p in row), n, sampler, steps, seed, v.device)
        jobs.append((i, repr(call), names[i], partial(_compose_row, *call, model)))
    try:
        done, _ = run_jobs([j[1:] for j in jobs], "prompts.run", "rows", slot)
    except ValueError as e:
        st.error(f"Could not sample: {e}")
        return
    for i, job, _, _ in jobs:
        if job in done:
            images[i], secs = done[job]
            seconds += secs
    blank = np.full((n, digits.SIDE, digits.SIDE), np.nan)
    grid = np.stack([images.get(i, blank) for i in range(len(rows))])
    fig = grid_figure(grid, names, f"Composed prompt: {digits.prompt_text(active)}")
    chart(fig, width="stretch", theme=None, key="prompts.grid")
    when = ("computed ahead of time and read from a file" if ahead == len(rows)
            else f"{seconds:.2f} s of sampling on {v.device} when first computed")
    st.caption(f"{SAMPLER_NAMES[sampler]}, {steps} steps ({nfe} evaluations, each one network call on "
               f"{len(active) + 1} versions of the image: no label and each prompt); {when}. Each column starts "
               "from the same noise in every row.")
    downloads(fig, "composed-" + "-".join(f"{c}w{w:g}" for c, w in active), key="prompts.dl.grid")


compose_section()

# --- 2. the generator as a classifier --------------------------------------------------------------------
st.header("Which prompt explains this image best?")
st.markdown(
    """
A conditional denoiser can also be *asked* about an image. Add noise to a real test digit, then let the
model denoise it once under each label. The label under which the model reconstructs the image best is the
one the model thinks explains it: the generator used as a classifier. Averaging over many noise levels and
noise draws turns this into an estimate of how likely the image is under each label (the denoising error
is the integrand of the model's likelihood bound). The **same** draws of time and noise are used for every
label, so the differences between labels are not swamped by the luck of the draws.
"""
)
st.latex(r"\mathrm{err}(c) = \mathbb E_{t,\varepsilon}\,\big\|\hat x_0(\alpha_t x_0 + \sigma_t \varepsilon,\ t,\ c) "
         r"- x_0\big\|^2, \qquad \hat c = \arg\min_c \mathrm{err}(c)")
st.caption("Weighting by the signal-to-noise ratio α²/σ² turns this into the error in predicting the noise ε, "
           "which "
           "puts the weight on nearly clean images; uniform in t, the x₀ error puts it on noisy ones.")


@st.cache_resource(show_spinner=False)
def _test_set():
    return load_mnist("test")


@st.cache_data(show_spinner=False, max_entries=128)
def _scores(config_id, spec, index, draws, device, _model, _x0):
    """(label_scores of test digit `index`, seconds), computed in a worker process."""
    t0 = time.perf_counter()
    out = offload(digits.label_scores, _model, make_schedule(spec), _x0, draws, 0, device, on=device)
    return out, time.perf_counter() - t0


def _random_index(n):
    st.session_state["prompts.index"] = random.randrange(n)


@st.fragment
def classify_section():
    try:
        images, labels = _test_set()
    except MnistError as e:
        st.error(f"The MNIST test digits could not be loaded: {e}")
        return
    n_test = len(images)
    c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
    index = bound(c1.slider, "Test image # (of the 10,000 MNIST test images)", 0, n_test - 1, 0,
                  key="prompts.index")
    c2.button("Random digit", key="prompts.random", on_click=_random_index, args=(n_test,),
              icon=":material/casino:", width="stretch")
    c3, c4 = st.columns([1, 2])
    draws = bound(c3.select_slider, "(t, ε) draws", [8, 16, 24, 32], 16, key="prompts.draws",
                  help="How many noise levels and noises are averaged; each costs one network call per label.")
    kind = bound(c4.radio, "Error measured on", ["x0", "eps"], horizontal=True, key="prompts.weighting",
                 captions=["the image x₀, uniform in t", "the noise ε, SNR-weighted"])
    x0 = images[index, 0]
    true = int(labels[index])
    hit = stored(base_model, config_id, spec, "scores", index=int(index), draws=int(draws))
    if hit is not None:
        scores, seconds = digits.scores_from(hit["t"], hit["x0"], hit["eps"], hit["mid"], float(hit["mid_t"][0])), None
    else:
        job = (repr((config_id, spec, index, draws, v.device)), f"test digit {index} under all 10 labels",
               partial(_scores, config_id, spec, index, draws, v.device, model, x0))
        try:
            done, stopped = run_jobs([job], "prompts.scores", "scorings")
        except ValueError as e:
            st.error(f"Could not score the image: {e}")
            return
        if stopped:
            return
        scores, seconds = done[job[0]]
    errors = scores[f"{kind}_err"]
    guess = int(np.argmin(errors))
    left, right = st.columns([1, 2])
    with left:
        img = image_figure(x0.numpy(), f"Test image #{index} (a {true})")
        chart(img, width="stretch", theme=None, key="prompts.image")
        m1, m2 = st.columns(2)
        m1.metric("True label", f"{true}")
        m2.metric("Model's guess", f"{guess}", delta="right" if guess == true else "wrong",
                  delta_color="normal" if guess == true else "inverse", delta_arrow="off")
    unit = "x₀" if kind == "x0" else "ε"
    bars = digits.scores_figure(errors, true, unit)
    chart(bars, right, width="stretch", theme=None, key="prompts.bars")
    when = "computed ahead of time" if seconds is None else f"scored in {seconds:.2f} s when first computed"
    right.caption(f"Each bar: how much larger that label's mean squared {unit} error per pixel is than the best "
                  f"label's (the best label, {guess}, has {errors.min():.4g}; its bar is the stub at 0). The true "
                  f"label's bar is orange with a black outline. Averaged over {draws} shared (t, ε) draws; {when}.")
    mid = grid_figure(scores["mid"][None], [""], f"The model's guess x̂₀ under each label c, from one noisy "
                                                   f"copy at t = {scores['mid_t']:.2f}", cell_px=80,
                         col_names=[f"c = {c}" for c in range(10)])
    chart(mid, width="stretch", theme=None, key="prompts.mid")
    st.caption("Told the wrong label, the model still tries to see that digit in the noise; the closer its guess "
               "stays to the real image, the better that label explains it. This is the generator's own opinion, "
               "not a trained classifier: at large t every label's guess is a blur and says little, at tiny t the "
               "image is nearly clean and the label hardly matters, so the verdict comes from the middle "
               "noise levels.")
    downloads(mid, f"guesses-under-each-label-{index}", key="prompts.dl.mid")


classify_section()
show_source(digits.compose, digits.compose_grid, digits.label_scores, digits.shared_draws, sample, digits.scores_figure)
