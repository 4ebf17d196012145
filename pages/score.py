"""3 · Score field: the learned score beside the exact one at every t (animated in the browser), their
difference, the error against t, and classifier-free guidance in score terms."""

import plotly.graph_objects as go
import streamlit as st

from diffusion.samplers import guided
from diffusion.schedules import make_schedule
from ui import score
from ui.figures import LazyFigure, SpecFigure, at_frame, figure_dict
from ui.page import downloads, need_model, show_source
from ui.present import chart
from ui.state import bound, view
from ui.workers import offload

v = view()

st.title("The score field")
st.markdown(
    """
The **score** is the gradient of the log-density: at every point it is an arrow pointing uphill,
towards where the data is more likely. Written through an energy, $\\log p = -E - \\log Z$, the
normaliser $Z$ is a constant and its gradient is zero, so the score needs no $Z$ at all (page 2).
A diffusion model that learns to predict the noise $\\varepsilon$ in $x_t$ has learned the score of
the *noisy* density $p_t$: the best guess of the noise, flipped and divided by $\\sigma_t$.
"""
)
st.latex(r"s(x, t) = \nabla_x \log p_t(x) = -\frac{\mathbb{E}[\varepsilon \mid x_t = x]}{\sigma_t}"
         r"\qquad\Longrightarrow\qquad \sigma_t\, s(x, t) = -\hat\varepsilon(x, t)")

spec = v.schedule.spec()
has_model = need_model(v)
model = v.learned() if has_model else None
c1, c2 = st.columns([1, 2])
n_arrows = bound(c1.select_slider, "Arrows per axis", [9, 11, 15, 19], value=15, key="score.arrows",
                            help="How finely the field is sampled for the arrows")
k = score.nearest_frame(score.FRAME_TS, v.t)
c2.caption(f"The animation has {len(score.FRAME_TS)} frames, t = 0, 0.05, ..., 1; it opens at "
           f"t = {score.FRAME_TS[k]:.2f}, "
           f"the frame nearest the sidebar's t = {v.t:.2f}. Press Play, or drag its slider: that runs in your "
           "browser, without asking the server.")


@st.cache_data(show_spinner=False, max_entries=32)
def _frames(data_key: str, spec: str, model_key: str, label, n_arrows: int, device: str, _dist, _model):
    """`data_key` names `_dist`; `model_key` and `spec` name `_model`."""
    return offload(score.field_frames, _dist, make_schedule(spec), _model, label, score.FRAME_TS, n_arrows=n_arrows,
                   on=device)


@st.cache_resource(show_spinner=False, max_entries=32)
def _animation_dict(data_key: str, spec: str, model_key: str, label, n_arrows: int, device: str, _frames):
    return figure_dict(score.score_animation(_frames, 0))


keys = (v.data_key, spec, v.model_key if has_model else "", v.label, int(n_arrows), v.device)
try:
    with st.spinner("Computing the exact and learned score at 21 noise levels (once per dataset, label and model)..."):
        frames = _frames(*keys, v.dist, model)
        anim = _animation_dict(*keys, frames)
        fig_spec = at_frame(anim, k)  # a shallow copy: the frames stay shared with the cached animation
except ValueError as e:
    st.error(f"The score field could not be computed: {e}")
    st.stop()

chart(SpecFigure(fig_spec), width="stretch", theme=None, key="score.animation")
fig = LazyFigure(lambda: go.Figure(fig_spec, _validate=False), frames=anim["frames"])  # built only for a download
st.caption(
    "Arrows show σ_t times the score, which is minus the predicted noise, so they stay readable at every t: "
    "the raw score grows like 1/σ_t and explodes as t → 0. Arrow length grows with |σ·s| up to one grid cell "
    f"(reached at |σ·s| = {score.ARROW_CAP:g}); the direction is always exact. Grey is the exact density p_t"
    + (" (of the chosen label)" if v.label is not None else "")
    + ". The right panel is the gap between learned and exact, in the same σ-units. Its colour range follows each "
    "frame (read its colour bar) and is set by the gap where p_t is not negligible: far from the data the "
    "network never saw a training point, its gap is larger still, and there the colour saturates.")
downloads(fig, "score-field", key="score.dl_field", gif=True)

# --- error at the current t --------------------------------------------------------------------------------
if has_model:
    st.subheader("How wrong is the learned score?")


    @st.cache_data(show_spinner=False, max_entries=512)
    def _error_now(data_key: str, spec: str, model_key: str, label, t: float, device: str, _dist, _model):
        """`data_key` names `_dist`; `model_key` and `spec` name `_model`."""
        return offload(score.relative_error, _model, _dist, make_schedule(spec), t, label, on=device)

    err = _error_now(v.data_key, spec, v.model_key, v.label, round(v.t, 4), v.device, v.dist, model)
    m1, m2 = st.columns([1, 2])
    m1.metric(f"Relative score error at t = {v.t:.2f}", f"{err:.3g}",
              help="sqrt(E‖ŝ − s‖² / E‖s‖²) over 2,000 points drawn from the exact p_t"
                   + (" of the chosen label" if v.label is not None else ""))
    m2.markdown(
        "The error is measured where noisy data actually lands. It is largest near t = 0: there p_t is a "
        "set of thin ridges, its score changes abruptly over tiny distances, and a small network smooths "
        "those edges. Sampling spends only its last few steps there, and by then the point is already "
        "near the data.")
    @st.cache_resource(show_spinner=False, max_entries=512)
    def _error_figure(data_key: str, spec: str, model_key: str, label, n_arrows: int, device: str, t: float, err: float,
                      _frames):
        return score.error_curve(_frames, t, err)

    fig_err = _error_figure(*keys, round(v.t, 4), err, frames)
    chart(fig_err, width="stretch", theme=None)

# --- guidance --------------------------------------------------------------------------------------------
st.subheader("Conditional, unconditional and guided fields")
st.markdown(
    """
One network gives both fields: with the label it predicts the conditional score $s(x \\mid y)$, with the
label dropped the unconditional $s(x)$. **Classifier-free guidance** steps past the conditional field,
away from the unconditional one, by the weight $w$. It is the score of a sharper density,
$p_t(x \\mid y)^{1+w}\\, p_t(x)^{-w}$, which the grey background of the guided panels shows exactly.
"""
)
st.latex(r"\tilde s_w(x, t) = s(x, t) + (1 + w)\big(s(x, t \mid y) - s(x, t)\big)")
if v.label is None:
    st.info("Guidance needs a label: pick one under **Label (the prompt)** in the sidebar. "
            "The guidance weight w is under **Sampler and device**.")
else:
    @st.cache_data(show_spinner=False, max_entries=512)
    def _guidance(data_key: str, spec: str, model_key: str, label: int, w: float, t: float, device: str, _dist,
                  _model):
        """`data_key` names `_dist`; `model_key` and `spec` name `_model`."""
        return offload(score.guidance_fields, _dist, make_schedule(spec), t, label, w, _model, n_arrows=15,
                       on=device)

    try:
        g = _guidance(v.data_key, spec, v.model_key if has_model else "", v.label, v.guidance, round(v.t, 4), v.device,
                      v.dist, model)
    except ValueError as e:
        st.error(f"Guidance weight w: {e}")
        st.stop()
    label_name = v.dist.label_names[v.label]

    @st.cache_resource(show_spinner=False, max_entries=256)
    def _guidance_figure(data_key: str, spec: str, model_key: str, label: int, w: float, t: float, device: str,
                         label_name: str, _g):
        return score.guidance_figure(_g, label_name)

    fig_g = _guidance_figure(v.data_key, spec, v.model_key if has_model else "", v.label, v.guidance, round(v.t, 4),
                             v.device, label_name, g)
    chart(fig_g, width="stretch", theme=None)
    st.caption(f"At t = {v.t:.2f}, label “{label_name}”, w = {v.guidance:g} (set w in the sidebar under Model and "
               "sampler). With w = 0 the guided field is the conditional one; larger w pushes harder away from "
               "the other labels' regions. Arrows: σ·score, as above.")
    downloads(fig_g, "guided-score", key="score.dl_guided")
    st.caption("Where guided samples end (neither p(x | label) nor the tilted density), and a composed prompt "
               "(label a AND NOT label b) beside exact samples of its target, are on page 7, sections *What guidance "
               "does* and *A composed prompt*.")
    st.page_link("pages/reverse.py")

show_source(score.field_frames, score.exact_scaled_score, score.learned_scaled_score, score.relative_error,
            score.guided_scaled_score, guided, score.score_animation, at_frame)
