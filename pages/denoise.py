"""6 · What the model learns: the exact posterior over clean points, the ideal denoiser, the network's
answer, and memorising a finite training set versus generalising."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from diffusion.models import oracle_model
from diffusion.schedules import make_schedule
from ui import dsm, memorisation, posterior
from ui.denoiser_field import denoiser_field, field_data, field_figure, field_times
from ui.figures import EXTENT, LazyFigure, SpecFigure, at_frame, patch, quiver, view_scale
from ui.memorisation_figures import (MEMO_SAMPLER, MEMO_STEPS, distance_curve_figure, memorisation_figure, memoriser,
                                     nearest_distance, sample_from)
from ui.memorisation_live import own_section
from ui.page import downloads, need_model, show_source
from ui.present import chart
from ui.state import DATASET_NAMES, bound, view
from ui.threads import one_thread
from ui.workers import offload

v = view()
dist = v.dist
label = v.label
alpha, sigma = v.alpha_sigma
scale = view_scale(alpha, sigma)
prompt = "no prompt" if label is None else f"prompt c = {dist.label_names[label]}"
model = v.learned()

st.title("6 · What the model learns")
st.markdown(
    "Training shows the network a clean point x₀, breaks it with noise into x_t, and asks for x₀ back. "
    "But one noisy point could have come from many clean ones, so there is no single right answer. "
    "The best possible guess (the one with the least squared error) is the **average of every clean point "
    "that could have produced x_t**, each weighted by how likely it is. That weighting is the posterior "
    "p(x₀ | x_t), and we know it exactly here. Pick a noisy point and compare the network's answer with it."
)
st.latex(r"p(x_0 \mid x_t) = \frac{p_0(x_0)\,\mathcal{N}(x_t;\ \alpha_t x_0,\ \sigma_t^2 I)}{p_t(x_t)}, \qquad "
         r"\hat x_0^{\,*}(x_t) = \mathbb{E}[x_0 \mid x_t] = \arg\min_{f}\ \mathbb{E}\,\lVert f(x_t) - x_0\rVert^2")

# --- choose x_t: sliders (in units of the view scale) and clicks on the noisy-data chart --------------
ux, uy = "denoise.x1", "denoise.x2"
st.session_state.setdefault(ux, 1.0)
st.session_state.setdefault(uy, 0.5)


def _on_pick():
    event = st.session_state.get("denoise.pick")
    points = [p for p in ((event or {}).get("selection") or {}).get("points", []) if p.get("curve_number") == 1]
    if points:
        st.session_state[ux] = float(np.clip(round(points[-1]["x"] / scale / 0.05) * 0.05, -3.5, 3.5))
        st.session_state[uy] = float(np.clip(round(points[-1]["y"] / scale / 0.05) * 0.05, -3.5, 3.5))


@st.cache_data(show_spinner=False, max_entries=32)
def _clean_grid(data_key: str, label, _dist):
    """`data_key` names `_dist`."""
    with one_thread():
        return posterior.clean_log_prob_grid(_dist, label)


@st.cache_data(show_spinner=False, max_entries=512)
def _noisy(data_key: str, label, spec: str, t: float, _dist):
    """p_t on the picking grid at this t (small: 40 x 40, ~30 ms the first time a t is visited).
    `data_key` names `_dist`."""
    a, s = (float(x) for x in make_schedule(spec).alpha_sigma(t))
    with one_thread():
        return posterior.noisy_density(_dist, a, s, label, extent=posterior.PICK_RANGE * view_scale(a, s))


@st.cache_resource(show_spinner=False)
def _pick_base():
    """The picking chart's styles as a plotly dict; data, ranges and title are patched in per t and x_t."""
    return posterior.pick_figure(np.zeros(2), np.zeros((2, 2)), np.zeros((1, 2)), 1.0, (0.0, 0.0), 0.0).to_dict()


@st.cache_resource(show_spinner=False, max_entries=32)
def _post_base(data_key: str, _dist):
    """The posterior chart's layout and trace styles as a plotly dict; every value is patched in per x_t.
    `data_key` names `_dist`."""
    xs = _clean_grid(data_key, None, _dist)[0]
    return posterior.posterior_figure(xs, np.zeros((len(xs), len(xs))), (0.0, 0.0), 1.0, 1.0, (0.0, 0.0)).to_dict()



@st.fragment
def _pick_section():
    """Reruns alone when x_t changes (slider or click): the rest of the page is not redrawn."""
    unit = "" if scale == 1 else f" (× {scale:.3g})"
    with st.container(horizontal=True):
        st.slider(f"x_t, first coordinate{unit}", -posterior.PICK_RANGE, posterior.PICK_RANGE, step=0.05, key=ux)
        st.slider(f"x_t, second coordinate{unit}", -posterior.PICK_RANGE, posterior.PICK_RANGE, step=0.05, key=uy)
    xt = np.array([st.session_state[ux], st.session_state[uy]]) * scale


    xs, log_p0 = _clean_grid(v.data_key, label, dist)
    with one_thread(), torch.no_grad():  # a few tiny tensor ops: a thread pool only adds latency
        post = posterior.posterior_grid(dist, xs, log_p0, alpha, sigma, xt, label)
        x_in = torch.tensor(xt[None], dtype=torch.float32)
        exact_x0 = v.oracle()(x_in.double(), v.t, label)[0].numpy()
        learned_x0 = None if model is None else model(x_in, v.t, label)[0].double().numpy()
        summary = posterior.posterior_summary(dist, alpha, sigma, xt, label)

    nx, pt = _noisy(v.data_key, label, v.schedule.spec(), v.t, dist)
    traces, layout = posterior.pick_values(nx, pt, posterior.pick_grid(), scale, xt, v.t)
    pick_spec = patch(_pick_base(), dict(enumerate(traces)), layout)
    values = posterior.posterior_values(xs, post, xt, alpha, sigma, exact_x0, learned_x0)
    post_spec = patch(_post_base(v.data_key, dist), dict(enumerate(values)))
    left, right = st.columns(2)
    with left:
        chart(SpecFigure(pick_spec), width="stretch", theme=None, key="denoise.pick",
              on_select=_on_pick, selection_mode="points", config={"displayModeBar": False})
    with right:
        chart(SpecFigure(post_spec), width="stretch", theme=None, key="denoise.post")
    post_fig = LazyFigure(lambda: posterior.posterior_figure(xs, post, xt, alpha, sigma, exact_x0, learned_x0))

    cols = st.columns(4)
    cols[0].metric("Noise level", f"σ/α = {sigma / alpha:.3g}", help="The likelihood N(x_t; α x₀, σ² I), read as a "
                   "function of x₀, is a blob centred at x_t/α of radius σ/α (dotted ring: 2σ/α).")
    cols[1].metric("Posterior spread", f"{summary['spread']:.3f}",
                   help="sqrt(E|x₀ − E[x₀|x_t]|² / 2): how unsure the best guess is, per coordinate.")
    cols[2].metric("Parts of the data involved", f"{summary['components_90']} of {summary['components']}",
                   help="Mixture components that hold 90% of the posterior's mass.")
    if learned_x0 is not None:
        cols[3].metric("Learned − exact", f"{np.linalg.norm(learned_x0 - exact_x0):.3f}",
                       help="Distance between the network's x̂₀ and the ideal denoiser E[x₀ | x_t].")
    else:
        need_model(v)
    cell = (xs[1] - xs[0]) ** 2
    if post.sum() * cell < 0.5:
        st.caption("At this noise level the posterior is narrower than a grid cell, so the heat map misses most of it: "
                   "the clean point is practically x_t/α itself.")
    st.markdown(
        f"At t = {v.t:.2f} the likelihood blob has radius σ/α = {sigma / alpha:.3g}. **Low noise**: the blob is "
        "small, the posterior is one small patch of data next to x_t/α, and the best guess is nearly a clean point. "
        "**High noise** (move the sidebar's t up): the blob covers much of the data, the posterior spreads over "
        "many regions, and its mean, the ideal denoiser's answer, is a *blurry average* that may lie between "
        "the data, where no clean point exists. That is not a failure: it is the best answer under squared error, "
        "and it is what the network (diamond) is trained to give."
    )
    downloads(post_fig, f"posterior-{v.dataset}-t{v.t:.2f}", key="denoise.dl.post")



_pick_section()

# --- the denoiser field -------------------------------------------------------------------------------
st.header("The denoising field")
st.markdown(
    "Repeat the question for many noisy points at once: every arrow runs from an x_t to the answer x̂₀. "
    "The network learns one such field for each t (and each prompt). Press play: at high noise every arrow "
    "points to roughly the same average; as the noise falls the arrows split up and land on the data."
)
ts = field_times(v.schedule)
active = int(np.argmin(np.abs(ts - v.t)))


@st.cache_data(show_spinner="Computing the denoising field...", max_entries=32)
def _field(data_key: str, model_key: str, spec: str, label, device: str, _dist, _model):
    """`data_key` names `_dist`; `model_key` and `spec` name `_model` (None when there is no learned model)."""
    schedule = make_schedule(spec)
    return offload(field_data, _dist, oracle_model(_dist, schedule), _model, field_times(schedule), label,
                   on=device)


@st.cache_resource(show_spinner=False, max_entries=32)
def _field_fig(data_key: str, model_key: str, spec: str, label, device: str, _dist, _model):
    """The animated field figure (built once) and its plotly dict. `data_key` names `_dist`; `model_key` and
    `spec` name `_model`."""
    points, exact, learned, p0 = _field(data_key, model_key, spec, label, device, _dist, _model)
    fig = field_figure(points, exact, learned, field_times(make_schedule(spec)), 0, xs=np.linspace(-EXTENT, EXTENT, 70), p0=p0)
    return fig, fig.to_dict()


field_fig, field_spec = _field_fig(v.data_key, v.model_key, v.schedule.spec(), label, v.device, dist, model)
chart(SpecFigure(at_frame(field_spec, active)), width="stretch", theme=None, key="denoise.field")
downloads(LazyFigure(lambda: go.Figure(at_frame(field_spec, active)), frames=field_fig.frames),
          f"denoising-field-{v.dataset}-t{ts[active]:.2f}", key="denoise.dl.field", gif=True)

# --- memorising versus generalising -----------------------------------------------------------------
st.header("Memorising versus generalising")
st.markdown(
    "A real model is trained on a *finite* set of N examples. The ideal denoiser of that set weighs only the N "
    "training points (the formula above with p₀ a sum of point masses), so sampling with it can only give back "
    "copies of them. Below, a network like the shipped model (same size, same training recipe) is trained on "
    "exactly those N points, and it and the ideal denoiser sample from the *same noise*. Fresh samples of the "
    "true distribution are the yardstick: they are as far from the training points as genuinely new data is."
)
st.latex(r"\hat x_0^{\,\mathrm{set}}(x_t) = \sum_{i=1}^{N} \mathrm{softmax}_i\!\left(-\frac{\lVert x_t - "
         r"\alpha_t x^{(i)}\rVert^2}{2\sigma_t^2}\right) x^{(i)}")


@st.cache_resource(show_spinner=False)
def _memo_file(path: str):
    """The shipped samples (checkpoints/memorisation/samples.npz), read once per server: (store or None, problem)."""
    return memorisation.load(path)


@st.cache_resource(show_spinner=False, max_entries=16)
def _memo_nets(dataset: str, folder: str):
    """({N: network trained on those N points}, problem) for the datasets that have them; ({}, None) otherwise."""
    return memorisation.load_nets(dataset, folder=folder) if dataset in memorisation.DATASETS else ({}, None)


@st.cache_resource(show_spinner="Sampling for every N (once)...", max_entries=16)
def _memo_all(data_key: str, dataset: str, path: str, folder: str, _dist):
    """({N: (figure, its dict, distance table, distance-curve dict)}, {sampler: median distance per N}).
    Read from the shipped samples file when it matches the shipped networks, else sampled once.
    `data_key` names `_dist` (for the user's own data it differs from `dataset`)."""
    nets, _ = _memo_nets(dataset, folder)
    nets = nets if set(nets) == set(memorisation.NS) else {}  # one damaged network: show none rather than a gap
    arrays = memorisation.stored(_memo_file(path)[0], dataset, nets) if data_key == dataset else None
    if arrays is None:
        arrays = offload(memorisation.compute, _dist, nets, memorisation.NS)
    with one_thread():
        dists = memorisation.distances(arrays, memorisation.NS)
    keys = list(dists[memorisation.NS[0]])
    curves = {k: [float(np.median(dists[n][k])) for n in memorisation.NS] for k in keys}
    views = {}
    for n in memorisation.NS:
        table = memorisation.distance_table(dists[n])
        samples = {k: arrays[f"{k}_{n}" if k != "true" else "true"] for k in keys}
        fig = memorisation_figure(arrays[f"train_{n}"], samples)
        views[n] = (fig, fig.to_dict(), table, distance_curve_figure(memorisation.NS, curves, n).to_dict())
    return views, curves


def _memo_text(curves: dict) -> str:
    """What the student sees, in words, with the N where the switch happens read from the curves."""
    text = ("The ideal denoiser of the N points gives back copies of them at every N: its samples lie about 0.01 "
            "from a training point, which is just the noise that sampling ends with. ")
    if "net" not in curves:
        return text
    copies, fresh = memorisation.switch(memorisation.NS, curves)
    text += ("Trained on N points, the network's loss is lowest for exactly that ideal denoiser, so a network that "
             "fitted its training set perfectly would memorise it too. ")
    if copies is not None:
        text += f"With few points this one does: up to N = {copies:,} its samples are copies as well. "
    if fresh is not None:
        text += (f"With many points it does not: from N = {fresh:,} its samples are about as far from the training "
                 "points as fresh samples of the data are, so they are new points of the distribution. It generalises.")
    if copies is not None and fresh is not None and fresh > copies:
        text += f" Between N = {copies:,} and {fresh:,} some of its samples are copies and some are new."
    return text


@st.fragment
def _memo_section():
    """Reruns alone when N changes."""
    for problem in (_memo_file(memorisation.PATH)[1], _memo_nets(v.dataset, memorisation.FOLDER)[1]):
        if problem:
            st.warning(f"The precomputed samples or networks cannot be used: {problem}. What can be sampled is "
                       "sampled here instead (a few seconds, once).")
    n_train = bound(st.select_slider, "Training set size N", memorisation.NS, value=memorisation.NS[0], key="denoise.n",
                               help="How many training points the ideal denoiser and the network were given.")
    views, curves = _memo_all(v.data_key, v.dataset, memorisation.PATH, memorisation.FOLDER, dist)
    memo_fig, memo_spec, table, curve_spec = views[n_train]
    if "net" not in curves and v.dataset not in memorisation.DATASETS:
        st.info("Networks trained on N points are shipped for "
                + ", ".join(DATASET_NAMES[d] for d in memorisation.DATASETS)
                + ". For this dataset the section shows the ideal denoiser and fresh samples only; train a "
                "network yourself below.")
    chart(SpecFigure(memo_spec), width="stretch", theme=None, key="denoise.memo")
    left, right = st.columns([2, 3])
    with left:
        st.table(table.style.format({"median distance to nearest": "{:.3f}", "share closer than 0.02": "{:.0%}"})
                 .hide(axis="index"))  # numbers right-aligned, as a table of numbers reads best
        unused = ("" if label is None else
                  f" The sidebar's {prompt} does not apply here: these networks were trained without labels.")
        st.caption(f"N = {n_train} training points (open circles); {memorisation.N_GEN} samples each, "
                   f"{MEMO_SAMPLER.upper()} with {MEMO_STEPS} steps evenly spaced in log-SNR, on the "
                   "cosine schedule (the networks' own, whatever the sidebar's), without a prompt. The ideal denoiser "
                   "and the network start from the same noise. Each network has the shipped model's size and recipe "
                   f"({memorisation.RECIPE['steps']:,} steps of {memorisation.RECIPE['batch']:,} points drawn from "
                   "the N). "
                   "*Share closer than 0.02*: samples that practically copy a training point (sampling ends with "
                   f"noise of size 0.007).{unused}")
    with right:
        chart(SpecFigure(curve_spec), width="stretch", theme=None, key="denoise.curve")
    st.markdown(_memo_text(curves))
    downloads(memo_fig, f"memorisation-{v.dataset}-N{n_train}", key="denoise.dl.memo")


_memo_section()
own_section(v, dist)

# --- denoising score matching, seen ------------------------------------------------------------------
st.header("Denoising score matching, seen")
st.markdown(dsm.EXPLANATION)
st.latex(dsm.IDENTITY)
dsm_x1, dsm_x2 = "denoise.dsm.x1", "denoise.dsm.x2"
st.session_state.setdefault(dsm_x1, 1.5)
st.session_state.setdefault(dsm_x2, 1.5)


def _on_dsm_pick():
    event = st.session_state.get("denoise.dsm.pick")
    points = [p for p in ((event or {}).get("selection") or {}).get("points", [])
              if p.get("curve_number") == dsm.CLICK_TRACE]
    if points:
        st.session_state[dsm_x1] = float(np.clip(round(points[-1]["x"] / scale / 0.05) * 0.05, -3.5, 3.5))
        st.session_state[dsm_x2] = float(np.clip(round(points[-1]["y"] / scale / 0.05) * 0.05, -3.5, 3.5))


@st.cache_data(show_spinner=False, max_entries=256)
def _dsm_fan(data_key: str, label, spec: str, t: float, x1: float, x2: float, _dist):
    """The 4,096 targets at x_t = (x1, x2) times the view scale, drawn once (seed 0); `data_key` names `_dist`."""
    a, s = (float(x) for x in make_schedule(spec).alpha_sigma(t))
    with one_thread():
        return dsm.fan(_dist, a, s, np.array([x1, x2]) * view_scale(a, s), label)


@st.cache_resource(show_spinner=False)
def _dsm_bases():
    """The fan and curve charts' styles, built once; data and title are patched in per x_t and n."""
    return dsm.base_dicts()


@st.fragment
def _dsm_section():
    """Reruns alone when x_t or the number drawn changes; a change of n only slices the cached targets."""
    unit = "" if scale == 1 else f" (× {scale:.3g})"
    with st.container(horizontal=True):
        x1 = bound(st.slider, f"Targets' x_t, first coordinate{unit}", -3.5, 3.5, step=0.05, key=dsm_x1)
        x2 = bound(st.slider, f"Targets' x_t, second coordinate{unit}", -3.5, 3.5, step=0.05, key=dsm_x2)
        n = bound(st.select_slider, "Targets drawn", dsm.NS, value=64, key="denoise.dsm.n",
                  help="How many clean points x₀ are drawn from p(x₀ | x_t), each giving one target.")
    data = _dsm_fan(v.data_key, label, v.schedule.spec(), v.t, x1, x2, dist)
    learned = None
    if model is not None:
        with one_thread(), torch.no_grad():
            learned = model.score(torch.tensor(data["xt"][None], dtype=torch.float32), v.t, label)[0].double().numpy()
    net_error = None if learned is None else dsm.relative_error(learned, data["exact"])
    nx, pt = _noisy(v.data_key, label, v.schedule.spec(), v.t, dist)
    fan_base, curve_base = _dsm_bases()
    fan_vals = dsm.fan_values(nx, pt, posterior.pick_grid() * scale, data, n, sigma, learned)
    left, right = st.columns([3, 2])
    fan_spec = patch(fan_base, dict(enumerate(fan_vals)), dsm.fan_layout(nx, v.t))
    chart(SpecFigure(fan_spec), left, width="stretch", theme=None,
          key="denoise.dsm.pick", on_select=_on_dsm_pick, selection_mode="points",
          config={"displayModeBar": False})
    chart(SpecFigure(patch(curve_base, dict(enumerate(dsm.curve_values(data, n, net_error))))), right,
          width="stretch", theme=None, key="denoise.dsm.curve")
    name = f"{v.dataset}-t{v.t:.2f}-x{x1:g},{x2:g}-n{n}"
    with left:
        downloads(LazyFigure(lambda: dsm.fan_figure(nx, pt, posterior.pick_grid() * scale, data, n, sigma, learned,
                                                    v.t)), f"dsm-targets-{name}", key="denoise.dl.dsm")
    with right:
        downloads(LazyFigure(lambda: dsm.curve_figure(data, n, net_error)), f"dsm-average-{name}",
                  key="denoise.dl.dsm_curve")
    cols, pct = st.columns(3), (lambda x: f"{x:.2%}") if dsm.relative_defined(data) else (lambda x: "—")
    cols[0].metric("Average of the targets vs exact", pct(data["rel_error"][n - 1]),
                   help=f"|average of {n:,} − ∇log p_t(x_t)| / |∇log p_t(x_t)|")
    cols[1].metric("Standard error", pct(data["rel_se1"] / np.sqrt(n)), help="sqrt(trace Cov[target | x_t] / n) "
                   "/ |∇log p_t(x_t)|, exact from the posterior: the average's typical relative error.")
    if net_error is not None:
        cols[2].metric("Network vs exact", pct(net_error), help="|s_θ(x_t) − ∇log p_t(x_t)| / |∇log p_t(x_t)|")
    else:
        need_model(v)
    st.caption(dsm.caption(sigma))
    if data["rel_se1"] > 3:
        st.caption(dsm.WIDE_FAN if dsm.relative_defined(data) else dsm.ZERO_SCORE)


_dsm_section()
show_source(posterior.posterior_grid, posterior.posterior_summary, type(dist).posterior, type(dist).denoise,
            denoiser_field, quiver, memoriser, sample_from, nearest_distance, memorisation.user_training_set,
            memorisation.compute_one, memorisation.train_net, field_figure, dsm.posterior_draws, dsm.dsm_targets,
            dsm.fan, dsm.target_spread)
