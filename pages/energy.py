"""2 · Energy and the normaliser: E = -log p, exact beside learned; Z by brute force, and why it cannot scale."""

import math

import numpy as np
import streamlit as st

from diffusion.likelihood import energy_via_ode, log_z_grid, ode_log_likelihood
from diffusion.models import is_energy_head, network_parameterization, reschedule
from diffusion.schedules import make_schedule
from toy_data.chain_rule import chain_rule_sample, conditional_log_prob
from ui import energy_head, energy_maps
from ui import models as model_store
from ui.autoregressive import A_RANGE, N_RATIO, at_a, chain_rule_figure, chain_rule_samples, curves
from ui.energy import (constant_figure, convergence_figure, cost_figure, cost_story, energy_cap, energy_heatmaps,
                       energy_surfaces, exact_energy, exact_z_convergence, finite_difference_score, format_z,
                       grid_log_z, learned_energy, partition_function, points_needed)
from ui.figures import LazyFigure, SpecFigure, figure_dict, view_half_width
from ui.page import downloads, need_model, show_source
from ui.present import chart
from ui.state import DATASET_NAMES, bound, view
from ui.training import PARAM_NAMES
from ui.workers import offload

v = view()

LEARNED_GRID = energy_maps.GRID  # points per axis of the learned energy (each one a full ODE solve): 40
ODE_STEPS = energy_maps.STEPS  # Heun steps from t to pure noise: 16, within ~0.01 nats of 32 steps on moons
EXACT_GRID = 80
MAP_T_STEP = energy_maps.T_STEP  # the landscape moves in steps of 0.05: each learned map is made once and shared

st.title("Energy and the normaliser")
label_text = "the whole distribution" if v.label is None else f"label “{v.dist.label_names[v.label]}”"
st.markdown(
    f"""
Any probability density can be written through an **energy** $E(x)$: likely points have low energy,
unlikely points high energy, and the density is $e^{{-E}}$ divided by whatever number makes it add up
to one. That number, the **normaliser** $Z$, is the sum of $e^{{-E}}$ over *every possible* $x$.
On this page $E_t(x) = -\\log p_t(x)$ is the energy of the noisy data at the sidebar's time
**t = {v.t:.2f}**, for {label_text}. Slide t to see the landscape melt: at small t the valleys hug the
data and the walls between them are steep; by t = 1 only one round bowl (a Gaussian) is left.
"""
)
st.latex(r"p(x) = \frac{e^{-E(x)}}{Z}, \qquad Z = \int e^{-E(x)}\,dx, \qquad "
         r"E_t(x) = -\log p_t(x) \;(\text{so here } Z = 1)")

alpha, sigma = v.alpha_sigma
half = view_half_width(alpha, sigma)
spec = v.schedule.spec()
t_key = round(v.t, 4)
# The landscape (exact beside learned) is drawn at the nearest multiple of MAP_T_STEP: a learned map costs
# LEARNED_GRID^2 ODE solves, and a class moving the slider then shares 21 maps per label instead of 101.
t_map = round(min(max(round(v.t / MAP_T_STEP) * MAP_T_STEP, 0.0), 1.0), 4)
alpha_map, sigma_map = (float(a) for a in v.schedule.alpha_sigma(t_map))
half_map = view_half_width(alpha_map, sigma_map)


@st.cache_data(show_spinner=False, max_entries=256)
def _exact(data_key: str, spec: str, label, t: float, n: int, half: float, _dist):
    """`data_key` names `_dist`."""
    a, s = (float(x) for x in make_schedule(spec).alpha_sigma(t))
    return exact_energy(_dist, a, s, label, n, half)


@st.cache_data(show_spinner=False, max_entries=128)
def _learned(model_key: str, spec: str, label, t: float, n: int, half: float, steps: int, device: str, _model):
    """`model_key` and `spec` name `_model` (the learned model under that schedule)."""
    return offload(learned_energy, _model, t, label, n, half, steps, on=device)


@st.cache_resource(show_spinner=False)
def _precomputed(path: str):
    """The shipped models' maps (checkpoints/energy_maps.npz), read once per server: (store or None, problem)."""
    return energy_maps.load(path)


@st.cache_resource(show_spinner=False, max_entries=64)
def _fingerprint(model_key: str, _model) -> str:
    return energy_maps.weights_fingerprint(_model)


def learned_map(model):
    """(xs, E, seconds, ahead): the shipped model's map computed ahead when there is one, else live (cached)."""
    store, _ = _precomputed(energy_maps.PATH)
    if store is not None and getattr(model, "net", None) is not None:  # a rescheduled wrapper never matches
        hit = store.lookup(v.dataset, _fingerprint(v.model_key, model), spec, v.label, t_map, LEARNED_GRID,
                           ODE_STEPS, half_map)
        if hit is not None:
            return (*hit, True)
    with st.spinner(f"Solving {LEARNED_GRID * LEARNED_GRID:,} probability-flow ODEs for the learned energy "
                    f"at t = {t_map:.2f} (once for the whole class; a second or more on a busy machine)..."):
        return (*_learned(v.model_key, spec, v.label, t_map, LEARNED_GRID, half_map, ODE_STEPS, v.device, model),
                False)


@st.cache_resource(show_spinner=False, max_entries=64)
def _landscape(data_key: str, spec: str, label, t: float, model_key: str, device: str, _xs, _E, _learned):
    """(heat maps, surfaces) for one view: built once, then shared (figures are never changed in place).
    `_xs, _E` is the exact map of (data_key, spec, label, t); `_learned` the learned map of `model_key` there
    (read from the shipped maps, or computed on `device`)."""
    grids = _learned[:2] if _learned is not None else (None, None)
    return (energy_heatmaps(_xs, _E, *grids, title_exact=f"Exact E_t, t = {t:.2f}",
                               title_learned="Learned E_t (through the ODE)"),
            energy_surfaces(_xs, _E, *grids))


@st.cache_resource(show_spinner=False, max_entries=128)
def _constant_figure(data_key: str, spec: str, label, t: float, c: float, _xs, _E):
    """`_xs, _E` is the exact map of (data_key, spec, label, t)."""
    return constant_figure(_xs, _E, c)


@st.cache_resource(show_spinner=False, max_entries=64)
def _convergence_figure(data_key: str, spec: str, label, t: float, half: float, _conv):
    return convergence_figure(_conv)


@st.cache_resource(show_spinner=False, max_entries=512)
def _cost_figure(n: int):
    return cost_figure(n)


xs, E = _exact(v.data_key, spec, v.label, t_map, EXACT_GRID, half_map, v.dist)
model = v.learned() if need_model(v) else None
kind = network_parameterization(model)
learned = None
if (maps_problem := _precomputed(energy_maps.PATH)[1]) and v.model_source == "shipped":
    st.warning(f"The precomputed energy maps cannot be used: {maps_problem}. The learned maps are computed "
               "live instead (a second or more each).")
if model is not None:
    try:
        learned = learned_map(model)
    except ValueError as e:
        st.error(f"The learned energy could not be computed: {e}")

# --- the landscape -----------------------------------------------------------------------------------
st.subheader("The energy landscape, exact beside learned")
fig_heat, fig_surface = _landscape(v.data_key, spec, v.label, t_map, v.model_key if learned else "", v.device, xs, E,
                                   learned)
chart(fig_heat, width="stretch", theme=None)
lo, hi = energy_cap(E)
if learned is not None:
    xl, El, secs, ahead = learned
    exact_on_learned = _exact(v.data_key, spec, v.label, t_map, LEARNED_GRID, half_map, v.dist)[1]
    typical = exact_on_learned < lo + 8  # where the data (nearly) lives
    gap = float(abs(El - exact_on_learned)[typical].mean())
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("ODE solves for the learned map", f"{LEARNED_GRID ** 2:,}", help=f"{ODE_STEPS} Heun steps each")
    c2.metric("Time they took", f"{secs:.2f} s",
              help=("measured when the shipped maps were computed ahead of time (python -m checkpoints.build "
                    "energy-maps, on one core of the development machine); this page read the result from "
                    "checkpoints/energy_maps.npz"
                    if ahead else "measured on this server, the first time anyone asked for this t and label; "
                                  "everyone after shares the result"))
    c3.metric("Mean gap where p is high", f"{gap:.2f} nats",
              help="mean |learned − exact| over grid points whose exact energy is within 8 nats of the minimum")
    c4.metric("Z of the learned energy", f"{math.exp(grid_log_z(El, xl)):.3f}",
              help=f"the sum of e^−E over its {LEARNED_GRID}×{LEARNED_GRID} grid times the cell area: the ODE "
                   "gives a normalised density, so this is close to 1 (it misses the mass outside the box)")
if kind is None:
    how_learned = ""
elif kind == "energy":
    how_learned = ("This network outputs an energy, but one with an unknown constant (see below); the map here is "
                   "found instead")
else:
    how_learned = f"This network predicts {PARAM_NAMES[kind]}, not an energy, so its energy is found"
if how_learned:
    how_learned += (" by following each point along the probability-flow ODE to pure noise and adding up how much "
                    "the flow squeezes or stretches space on the way. That gives a normalised density, so the two "
                    "maps can be compared as they are.")
st.caption(
    (f"Drawn at t = {t_map:.2f}, the nearest multiple of {MAP_T_STEP:g} to the sidebar's t: the landscape moves in "
     f"steps of {MAP_T_STEP:g} so that each learned map is solved once and shared by everyone. "
     if t_map != t_key else "") +
    f"Colours run from the lowest exact energy ({lo:.1f} nats) to {hi:.1f} nats; anything higher is drawn at the top "
    "colour (at small t the exact walls between the data climb far past that, to places no training point ever "
    "visited, so the network has no reason to match them there). White lines are contours of equal energy. "
    + how_learned)
st.latex(r"\log p_t(x) = \log p_1(x_1) + \int_t^1 \nabla\!\cdot v_\theta(x_s, s)\, ds")

chart(fig_surface, width="stretch", theme=None)
st.caption("The same landscape in 3-D (drag to turn it). Samples roll downhill into the valleys.")
downloads(fig_heat, "energy-heatmaps", key="energy.dl_heat")

# --- Z by brute force ----------------------------------------------------------------------------------
st.subheader("Computing Z by brute force")
st.markdown(
    """
In 2-D we *can* find $Z$ the obvious way: cut the box into an $n \\times n$ grid, evaluate the energy
in the middle of every cell and add up $e^{-E}$ times the cell's area. Because our exact energy is
already $-\\log p$, the right answer is $Z = 1$ (up to the little mass outside the box).
"""
)
col_n, col_c = st.columns(2)
n = bound(col_n.slider, "Grid points per axis n", 2, 400, 60, key="energy.n",
                 help="The energy is evaluated n² times")
c = bound(col_c.number_input, "Add a constant c to the energy", -50.0, 50.0, 0.0, 0.5, key="energy.c",
                       help="E(x) → E(x) + c")


@st.cache_data(show_spinner=False, max_entries=512)
def _z(data_key: str, spec: str, label, t: float, n: int, half: float, c: float, _dist):
    """`data_key` names `_dist`."""
    a, s = (float(x) for x in make_schedule(spec).alpha_sigma(t))
    return partition_function(lambda p: -_dist.log_prob(p, a, s, label), n, half, c)


@st.cache_data(show_spinner=False, max_entries=128)
def _convergence(data_key: str, spec: str, label, t: float, half: float, _dist):
    """`data_key` names `_dist`."""
    a, s = (float(x) for x in make_schedule(spec).alpha_sigma(t))
    return offload(exact_z_convergence, _dist, a, s, label, half)


try:
    z = _z(v.data_key, spec, v.label, t_key, int(n), half, 0.0, v.dist)
    z_c = _z(v.data_key, spec, v.label, t_key, int(n), half, float(c), v.dist)
except ValueError as e:
    st.error(f"Grid points per axis n: {e} (allowed 2 to 400).")
    st.stop()
conv = _convergence(v.data_key, spec, v.label, t_map, half_map, v.dist)  # 87,000 evaluations: in steps of t like the maps
m1, m2, m3, m4 = st.columns(4)
m1.metric("Z (grid estimate)", f"{z['Z']:.5f}")
m2.metric("log Z", f"{round(z['log_Z'], 4) + 0.0:.4f}")
m3.metric("Energy evaluations", f"{z['evaluations']:,}", help=f"n² = {n}²")
m4.metric("Time", f"{1000 * z['seconds']:.1f} ms")
need = points_needed(conv)
st.caption(f"Box [−{half_map:.1f}, {half_map:.1f}]². " + (
    f"About {need} points per axis ({need * need:,} evaluations) already give Z within 1% of the finest grid "
    f"({max(conv)} per axis)" if need else "Even the coarser grids miss Z by more than 1%") +
    (f" at t = {t_map:.2f}, where the curve on the left is drawn." if t_map != t_key else "."))

story = cost_story(n)
fig_cost = _cost_figure(int(n))
col_a, col_b = st.columns([2, 3])
chart(_convergence_figure(v.data_key, spec, v.label, t_map, half_map, conv), col_a, width="stretch", theme=None)
chart(fig_cost, col_b, width="stretch", theme=None)
years = story["log10_years"]
atoms = ("more evaluations than there are atoms in the universe (about $10^{80}$)" if story["beats_atoms"] else
         "still fewer evaluations than atoms in the universe (about $10^{80}$), but only because the grid is so coarse")
day = (f" A whole day at that rate covers a grid in at most d = {story['max_dim_in_a_day']} dimensions."
       if story["max_dim_in_a_day"] is not None else "")
st.markdown(
    f"""
Now the catch. With {n} points per axis a grid needs $n^d$ evaluations in $d$ dimensions. For a tiny
28×28 grey image ($d = 784$) that is **$10^{{{story['log10_evaluations']:.0f}}}$ evaluations**: at a
billion per second, **$10^{{{years:.0f}}}$ years**, which is $10^{{{story['log10_universe_ages']:.0f}}}$
times the age of the universe, and {atoms}.{day} Cleverer integration (Monte Carlo, importance
sampling) helps, yet for images nobody can compute $Z$: a model that needs $Z$ to train is stuck.
"""
)
downloads(fig_cost, "grid-cost", key="energy.dl_cost")

# --- the constant ------------------------------------------------------------------------------------
st.subheader("Adding a constant changes Z, not the score")
st.markdown(
    """
Energy is only defined up to a constant: $E + c$ describes the same distribution, because $Z$ absorbs
the change ($Z \\to Z e^{-c}$). The **score**, the gradient of $\\log p$, never sees $Z$ at all: the
constant vanishes when you differentiate. That is why diffusion models learn the score instead of $p$.
"""
)
st.latex(r"\nabla_x \log p(x) = -\nabla_x E(x) - \underbrace{\nabla_x \log Z}_{=\,0} = -\nabla_x E(x)")
fig_c = _constant_figure(v.data_key, spec, v.label, t_map, float(c), xs, E)
chart(fig_c, width="stretch", theme=None)



@st.cache_data(show_spinner=False, max_entries=512)
def _probe_scores(data_key: str, spec: str, label, t: float, c: float, _dist):
    """The score at one point by central differences of E and of E + c (each from its own numbers).
    `data_key` names `_dist`."""
    probe = np.array([[0.5, 0.5]])
    a, s = (float(x) for x in make_schedule(spec).alpha_sigma(t))
    energy = lambda p: -_dist.log_prob(p, a, s, label).numpy()  # noqa: E731
    return (finite_difference_score(energy, probe)[0],
            finite_difference_score(lambda p: energy(p) + c, probe)[0])


score_of_e, score_of_e_plus_c = _probe_scores(v.data_key, spec, v.label, t_key, float(c), v.dist)
k1, k2, k3 = st.columns(3)
k1.metric("Z of E + c  (= Z e^−c)", format_z(z_c), help=f"log Z = {z_c['log_Z']:.4f}; Z e^−c = {z['Z'] * math.exp(-c):.4g}")
k2.metric("Score at (0.5, 0.5) from E", f"({score_of_e[0]:+.4f}, {score_of_e[1]:+.4f})")
k3.metric("Score at (0.5, 0.5) from E + c", f"({score_of_e_plus_c[0]:+.4f}, {score_of_e_plus_c[1]:+.4f})",
          help="central differences of E + c, step 1e-4")
st.caption("Both panels share one picture; only the colour bar's numbers move by c. The white arrows are "
           "−∇E computed separately from each panel's own numbers, and they coincide.")

# --- the network's own energy ------------------------------------------------------------------------
st.subheader("The network's own energy E_θ, and its Z_θ")
heads = energy_head.shipped_datasets()
shipped_h, shipped_info = energy_head.shipped_head(v.dataset) if v.dataset in heads else (None, {})
if shipped_info.get("error"):
    st.warning(f"The shipped energy head cannot be used: {shipped_info['error']}.")
session = model_store.get(v.dataset, "session") if model_store.has_session(v.dataset) else None
choices = (["shipped"] if shipped_h is not None else []) + (["session"] if is_energy_head(session) else [])


@st.cache_resource(show_spinner=False, max_entries=64)
def _head(head_key: str, spec: str, data_key: str, label, t: float, half: float, _model, _dist, _history, _xs, _E):
    """(numbers, raw E figure, log Z figure) of an energy head at t. `head_key` and `spec` name `_model` (the head
    under that schedule) and `_history` (its log Z record); `data_key` names `_dist` and, with spec, label, t and
    half, the exact map `_xs, _E`."""
    numbers = energy_head.head_numbers(_model, _dist, t, label, LEARNED_GRID, half)
    return (numbers, *energy_head.head_figures(numbers, t, _history, _xs, _E))


if not choices:
    st.info("An energy head is a network that outputs the energy E_θ(x, t) itself. One is shipped for "
            + ", ".join(DATASET_NAMES[d] for d in heads) + "; pick one of those datasets in the sidebar, or train "
            "one for this dataset on page 5 (Train) with “Network predicts: energy”.")
else:
    which = bound(st.radio, "Energy head", choices, key="energy.head", horizontal=True,
                  help="shipped: checkpoints/energy/; session: the energy head you trained on page 5")
    head, head_info = (shipped_h, shipped_info) if which == "shipped" else (session, model_store.info(v.dataset,
                                                                                                      "session"))
    head_key = f"{which}:{v.data_key}:{head_info.get('id', '')}"
    history = energy_head.history_of(head_info)
    st.markdown(
        "An **energy head** outputs one number $E_\\theta(x, t)$ per point, and its score is $-\\nabla_x "
        "E_\\theta$. Training only ever sees that slope, so the level of $E_\\theta$ is whatever the weights "
        "happen to give, and so is its normaliser $Z_\\theta(t)$, summed here on the grid. $Z_\\theta$ is one "
        "number for each t: it depends on the weights θ, not on x, and it moves as they change during "
        "training (bottom right). The sampler never needs it: it follows $-\\nabla_x E_\\theta$, where $Z_\\theta$ "
        "has gone.")
    st.latex(r"p_\theta(x \mid t) = \frac{e^{-E_\theta(x,\,t)}}{Z_\theta(t)}, \qquad "
             r"Z_\theta(t) = \int e^{-E_\theta(x,\,t)}\,dx, \qquad s_\theta = -\nabla_x E_\theta")
    numbers, fig_raw, fig_z = _head(head_key, spec, v.data_key, v.label, t_map, half_map,
                                    reschedule(head, v.schedule), v.dist, history, xs, E)
    conv_h, n_top = numbers["convergence"], max(numbers["convergence"])
    h1, h2, h3, h4 = st.columns(4)
    h1.metric(f"log Z_θ at t = {t_map:.2f}", f"{numbers['log_z']:.3f}",
              help=f"midpoint rule on {n_top}×{n_top} cells over the box [−{half_map:.1f}, {half_map:.1f}]²; a "
                   "constant added to E_θ would move it by minus that constant")
    h2.metric("Change from the next coarser grid", f"{abs(conv_h[n_top] - conv_h[n_top // 2]):.1e}",
              help=f"|log Z_θ(n = {n_top}) − log Z_θ(n = {n_top // 2})|: the grid estimate has settled")
    h3.metric("Lowest raw E_θ", f"{float(numbers['E'].min()):.2f}", help="what the network outputs, as it is")
    h4.metric("Score error of −∇E_θ", f"{100 * numbers['score_error']:.1f}%",
              help=f"sqrt(E|−∇E_θ − ∇log p_t|² / E|∇log p_t|²) on {energy_head.SCORE_POINTS:,} points drawn "
                   "from the exact p_t at this t")
    chart(fig_raw, width="stretch", theme=None)
    chart(fig_z, width="stretch", theme=None)
    st.caption("Top: E_θ as the network outputs it (its own colour range), and E_θ + log Z_θ, a −log density on "
               "the exact map's colour range. Bottom left: log Z_θ by the grid, settling as the cells shrink. "
               "Bottom right: log Z_θ(t) of the averaged (EMA) weights, recorded while the model trained, under "
               "the schedule it was trained with." + energy_head.drift_sentence(history))
    downloads(fig_z, "energy-head-log-z", key="energy.dl_head")

# --- the autoregressive route --------------------------------------------------------------------------
st.subheader("The other way around Z: one coordinate at a time")
st.markdown(
    "An energy leaves $Z$ out of reach. One way around it is the chain rule: write $p(x_1, x_2) = p(x_1)\\, "
    "p(x_2 \\mid x_1)$ and model one coordinate at a time, each factor a normalised density in one variable, "
    "so no $Z$ appears. Autoregressive models do this, for images pixel by pixel. The price: an order of the "
    "coordinates must be chosen, a sample takes d steps one after another for d coordinates, and every "
    "conditional must be learned as a normalised density. Diffusion takes the other way: it learns the score, "
    "in which $Z$ never appears, and moves all coordinates at once. Here both factors are exact for the "
    "sidebar's clean data.")
st.latex(r"p(x_1, x_2) = p(x_1)\, p(x_2 \mid x_1), \qquad p(x_2 \mid x_1) = "
         r"\sum_k \frac{w_k\, \mathcal N(x_1;\, \mu_{k1}, s_k^2)}{p(x_1)}\, \mathcal N(x_2;\, \mu_{k2}, s_k^2)")


@st.cache_data(show_spinner=False, max_entries=64)
def _chain_samples(data_key: str, label, _dist):
    """`data_key` names `_dist`."""
    return chain_rule_samples(_dist, label)


@st.cache_resource(show_spinner=False, max_entries=64)
def _chain_base(data_key: str, label, _dist, _samples):
    """The chain-rule figure's dict, drawn at a = 0 (moved to any a by at_a). `data_key` names `_dist`;
    `_samples` is _chain_samples(data_key, label)."""
    return figure_dict(chain_rule_figure(curves(_dist, 0.0, label), _samples, 0.0))


@st.fragment
def _chain_section():
    """Reruns alone when a moves."""
    a = round(float(bound(st.slider, "Condition on x₁ = a", *A_RANGE, 0.0, 0.05, key="energy.a",
                          help="where the second panel slices the joint: p(x₂ | x₁ = a)")), 2)
    samples = _chain_samples(v.data_key, v.label, v.dist)
    c = curves(v.dist, a, v.label)
    chart(SpecFigure(at_a(_chain_base(v.data_key, v.label, v.dist, samples), c, a)), width="stretch",
          theme=None, key="energy.chain")
    lo_c, hi_c = samples["controls"]
    st.caption(f"Energy-distance ratio of {N_RATIO:,} chain-rule samples against the joint: "
               f"**{samples['ratio']:.2f}** (fresh exact samples score {lo_c:.2f} to {hi_c:.2f} on the same test). "
               "The dashed line is x₁ = a: the joint's points near it spread along x₂ as p(x₂ | x₁ = a) says.")
    downloads(LazyFigure(lambda: chain_rule_figure(c, samples, a)), "chain-rule", key="energy.dl_chain")


_chain_section()

show_source(exact_energy, learned_energy, energy_via_ode, ode_log_likelihood, partition_function,
            cost_story, finite_difference_score, log_z_grid, energy_head.head_numbers, chain_rule_sample,
            conditional_log_prob)
