"""1 · Data and prompts: a prompt defines a distribution of answers, not one answer."""

import numpy as np
import streamlit as st
import torch

from diffusion.samplers import sample
from diffusion.schedules import make_schedule
from ui import data
from ui.figures import LazyFigure, SpecFigure, density_grid, patch
from ui.page import downloads, need_model, show_source
from ui.present import chart
from ui.state import bound, view
from ui.threads import one_thread
from ui.workers import offload

v = view()
dist = v.dist
label = v.label
prompt = "none" if label is None else dist.label_names[label]

st.title("1 · Data and prompts")
st.markdown(
    "Ask an image model for *a cat holding a banana* twice and you get two different pictures: the "
    "cat's colour, pose and background change, yet both fit the words. So a prompt does not name one "
    "image; it names a **whole distribution** of images, and generating means *drawing a sample* from it. "
    "Here the images are points in the plane and the prompt is a class **label** c (pick it in the "
    "sidebar, *Label (the prompt)*). Every point has a label; fixing the label keeps only that part of "
    "the data and renormalises it."
)
st.latex(r"x \sim p(x \mid c) = \frac{p(c \mid x)\,p(x)}{p(c)}, \qquad "
         r"p(x) = \sum_c p(c)\,p(x \mid c), \qquad \text{model: } p_\theta(x \mid c) \approx p(x \mid c)")

with st.container(horizontal=True, vertical_alignment="bottom"):
    n = bound(st.select_slider, "Number of samples", [50, 100, 200, 400, 800, 1500], value=400, key="data.n",
                         help="How many points to draw from each distribution.")
    if st.button("Sample again", key="data.again", icon=":material/casino:",
                 help="New random draws: same prompt, same distribution, different points."):
        st.session_state["data.seed"] = st.session_state.get("data.seed", 0) + 1
seed = st.session_state.get("data.seed", 0)


@st.cache_data(show_spinner=False, max_entries=64)
def _densities(data_key: str, label, _dist):
    """`data_key` names `_dist`."""
    return data.density_grids(_dist, label)


@st.cache_data(show_spinner=False, max_entries=64)
def _exact(data_key: str, label, n: int, seed: int, _dist):
    """`data_key` names `_dist`."""
    with one_thread():
        return data.exact_samples(_dist, n, None, seed), data.exact_samples(_dist, n, label, seed + 7919)


POOL = 4000  # learned samples generated once per prompt; each draw picks n of them


@st.cache_data(show_spinner="Sampling the learned model once for this prompt (Heun, 25 steps)...", max_entries=64)
def _learned_pool(data_key: str, model_key: str, spec: str, label, device: str, _dist, _model):
    """`data_key` names `_dist`; `model_key` and `spec` name `_model` (the learned model under that schedule)."""
    x = offload(data.learned_samples, _model, make_schedule(spec), POOL, label, seed=0, on=device)
    with one_thread():
        return x, _dist.nearest_label(torch.as_tensor(x, dtype=torch.float64)).numpy()


def _learned(model_key: str, spec: str, label, n: int, seed: int):
    x, y = _learned_pool(v.data_key, model_key, spec, label, v.device, dist, v.learned())
    idx = data.draw_from_pool(np.arange(len(x)), n, seed)
    return x[idx], y[idx]


xs, p, pc = _densities(v.data_key, label, dist)
(all_x, all_y), (cond_x, cond_y) = _exact(v.data_key, label, n, seed, dist)
has_model = need_model(v)
learned_x = learned_y = None
if has_model:
    try:
        learned_x, learned_y = _learned(v.model_key, v.schedule.spec(), label, n, seed)
    except ValueError as e:
        st.error(f"Sampling the learned model failed: {e}")



@st.cache_resource(show_spinner=False, max_entries=64)
def _prompt_base(data_key: str, label, learned: bool, _dist) -> dict:
    """The three panels without samples (densities, titles, styles) as a plotly dict; samples are patched in.
    `data_key` names `_dist`."""
    return data.prompt_figure(_dist, *_densities(data_key, label, _dist), label, None, None, None, None, learned_panel=learned).to_dict()


if label is None:  # no prompt: p(x | c) would be p(x) again, so that panel is left out
    cond_x = cond_y = None
spec = patch(_prompt_base(v.data_key, label, learned_x is not None, dist),
             data.prompt_values(dist, all_x, all_y, cond_x, cond_y, learned_x, learned_y))
chart(SpecFigure(spec), width="stretch", theme=None, key="data.fig")
fig = LazyFigure(lambda: data.prompt_figure(dist, xs, p, pc, label, all_x, all_y, cond_x, cond_y, learned_x, learned_y))
st.caption(
    f"Grey: the exact density (darker = more likely). Colour: each sample's label (for the learned samples, "
    f"the label of the nearest part of the data). Draw {n} points again with *Sample again*: the points move, "
    f"the distribution does not. (The learned panel draws its points at random from {POOL:,} samples the network "
    "generated once for this prompt, so a new draw costs no sampling run.)"
)

left, right = st.columns([2, 3])
with left:
    prior = data.class_prior(dist)
    chart(data.prior_figure(dist, prior, label), width="stretch", theme=None, key="data.prior")
with right:
    st.subheader("What the prompt does")
    if label is None:
        st.markdown(
            "No prompt: the model should produce the whole distribution p(x), every label in proportion "
            "p(c) (bars). Pick a label in the sidebar to prompt it.")
    else:
        st.markdown(
            f"The prompt **{prompt}** keeps a share p(c) = {prior[label]:.2f} of the data and spreads "
            f"that share over its whole region: the middle panel's {n} exact points all differ, and "
            "all of them answer the prompt.")
        if learned_x is not None:
            with one_thread():
                hit = data.prompt_hit_rate(dist, learned_x, label)
            st.metric("Learned samples that land in the prompted class", f"{hit:.1%}",
                      help="The fraction of the learned samples whose nearest mixture component carries the "
                           "prompted label (dist.nearest_label).")
            st.markdown(f"{int(round(hit * len(learned_x)))} of {len(learned_x)} learned samples lie in "
                        f"the region of *{prompt}*.")
    st.markdown(
        "The network was trained on (point, label) pairs only. It never sees a formula for p(x | c), yet "
        "from noise plus the label it produces a spread of different points in the right region: it has "
        "learned a *distribution* for each prompt, which is exactly what a text-to-image model does with "
        "sentences instead of labels."
    )

downloads(fig, f"prompt-{v.dataset}-{prompt}", key="data.dl")
show_source(data.class_prior, data.exact_samples, data.learned_samples, data.draw_from_pool, data.prompt_hit_rate,
            data.density_grids, density_grid, type(dist).sample, sample, data.prompt_figure)
