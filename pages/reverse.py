"""Page 7: reverse sampling, particles walking from noise back to data, scored against the exact truth."""

import streamlit as st

from ui.present import chart
from ui.state import view

v = view()

import time  # noqa: E402

import plotly.graph_objects as go  # noqa: E402

from diffusion.metrics import EnergyReference  # noqa: E402
from diffusion.samplers import composed, guided, nfe_of, sample, unconditional_nfe  # noqa: E402
from diffusion.schedules import make_schedule  # noqa: E402
from toy_data.tilted import ComposedMixture, TiltedMixture  # noqa: E402
from ui import guidance, reverse  # noqa: E402
from ui.figures import LazyFigure, SpecFigure, figure_dict  # noqa: E402
from ui.page import downloads, show_source  # noqa: E402
from ui.state import SAMPLER_NAMES, SCHEDULE_NAMES, bound  # noqa: E402
from ui.threads import one_thread  # noqa: E402
from ui.prefetch import Prefetcher, enabled as prefetch_enabled  # noqa: E402
from ui.workers import offload  # noqa: E402

N_PARTICLES = 2000
N_CONTROLS = 12  # fresh exact samples that show how much a perfect sampler's ED ratio scatters
STEPS_LIST = (5, 10, 20, 50)

st.title("7 · Reverse sampling")
st.markdown(
    """
Training taught the model one skill: given a noisy point $x_t$ and the time $t$, guess the clean point
$\\hat x_0(x_t, t)$ it came from (for a label, the guess among points of that label). Generation uses that
skill backwards. Start from pure noise at $t = 1$, ask for $\\hat x_0$, step a little towards a slightly
less noisy $x_s$ that is consistent with that guess, and repeat down to $t = 0$. Early guesses are blurry
averages of many possible data points; as the noise drains away they sharpen onto one. The samplers differ
in how they take a step: some follow a deterministic ODE (the *probability flow*), others add fresh noise at
every step (an SDE, or DDPM's ancestral steps).
"""
)
st.latex(r"\text{ODE (deterministic):}\quad \frac{dx}{dt} = \dot\alpha_t\,\hat x_0 + \dot\sigma_t\,\hat\varepsilon,"
         r"\qquad \hat\varepsilon = \frac{x_t - \alpha_t \hat x_0}{\sigma_t}")
st.latex(r"\text{DDIM step } t \to s:\quad x_s = \alpha_s\,\hat x_0 + \sqrt{\sigma_s^2 - c^2}\;\hat\varepsilon + c\,z,"
         r"\quad c = \eta\,\sigma_s\sqrt{1 - \mathrm{SNR}_t/\mathrm{SNR}_s}")
st.caption("η = 0 gives DDIM's deterministic steps, η = 1 gives DDPM's ancestral sampling. "
           "With a label and guidance weight w, the model's guess is "
           "x̂₀ = x̂₀(label) + w (x̂₀(label) − x̂₀(no label)).")

learned = v.learned()
choices = ["Exact oracle only"]
if learned is not None:
    choices = ["Exact and learned", "Exact oracle only", "Learned model only"]
if st.session_state.get("reverse.model") not in choices:  # e.g. the learned model went away
    st.session_state.pop("reverse.model", None)
c1, c2, c3 = st.columns([2, 1, 1])
mode = bound(c1.radio, "Model that denoises", choices, horizontal=True, key="reverse.model",
                help="Exact oracle: the true E[x0 | x_t] of the toy mixture, so any error left is the sampler's.")
eta = 0.0
if v.sampler == "ddim":
    eta = bound(c2.slider, "DDIM η", 0.0, 1.0, 0.0, 0.1, key="reverse.eta", help="0: deterministic, 1: as noisy as DDPM")
else:
    c2.caption(f"η applies to DDIM only; the sidebar's sampler is {SAMPLER_NAMES[v.sampler]}.")
seed = int(bound(c3.number_input, "Noise seed", 0, 9999, 1, 1, key="reverse.seed",
                           help="Fixes the starting noise (and the sampler's own noise)."))
if learned is None:
    st.info("There is no learned model for this dataset yet, so the exact oracle denoises here. "
            "Train one on the **Train** page to see the learned model beside it.")

models = {}
if mode != "Learned model only":
    models["Exact"] = (f"oracle:{v.data_key}", v.oracle())
if mode != "Exact oracle only" and learned is not None:
    models["Learned"] = (v.model_key, learned)


@st.cache_data(show_spinner=False, max_entries=48)
def _trajectory(model_key, spec, sampler, steps, label, w, eta, seed, n, device, _model):
    """(Trajectory, seconds it took)."""
    t0 = time.perf_counter()
    traj = offload(reverse.run, _model, make_schedule(spec), sampler, steps, n, seed, label, w, eta, device, on=device)
    return traj, time.perf_counter() - t0


@st.cache_resource(show_spinner=False, max_entries=16)
def _reference(data_key, label, n, _dist):
    """(EnergyReference, the ratios of N_CONTROLS fresh exact samples against it)."""
    return offload(reverse.reference_with_controls, _dist, n, label, N_CONTROLS)


@st.cache_resource(show_spinner=False, max_entries=24)
def _animation(keys, spec, label, _dist, _trajs):
    """The movie as a plain dict (shared and never modified): drawn without plotly's per-rerun deep copy.
    `keys` (each run's `_trajectory` arguments, model key first, which holds the data key) names `_dist` and
    `_trajs`."""
    return figure_dict(reverse.sampling_animation(_dist, make_schedule(spec), _trajs, label))


spec = v.schedule.spec()


def run_key(model_key: str, n: int = N_PARTICLES, sampler: str | None = None) -> tuple:
    """A run's `_trajectory` arguments (model key first, which names the data set), as the cache key of what is
    built from that run; `sampler` replaces the sidebar's."""
    return model_key, spec, sampler or v.sampler, v.steps, v.label, v.guidance, eta, seed, n, v.device


try:
    with st.spinner(f"Sampling {N_PARTICLES:,} particles with {SAMPLER_NAMES[v.sampler]}, {v.steps} steps..."):
        clock = time.perf_counter()
        runs = {name: _trajectory(*run_key(key), model) for name, (key, model) in models.items()}
        trajs = {name: r[0] for name, r in runs.items()}
        anim = _animation(tuple(run_key(models[n][0]) for n in trajs), spec, v.label,
                          v.dist, trajs)
        elapsed = time.perf_counter() - clock
except ValueError as e:  # e.g. a guidance weight or eta the core rejects
    st.error(f"Sampling failed: {e}")
    st.stop()

label_text = "unconditional" if v.label is None else (
    f"label '{v.dist.label_names[v.label]}'" + (f", guidance w = {v.guidance:g}" if v.guidance else ""))
st.subheader(f"{SAMPLER_NAMES[v.sampler]}, {v.steps} steps, {label_text}"
             + (f", η = {eta:g}" if v.sampler == "ddim" else ""))
chart(SpecFigure(anim), width="stretch", theme=None, key="reverse.anim")
frames = len(anim["frames"])
st.caption(
    f"{N_PARTICLES:,} particles from the same starting noise in every panel; press Play or drag the slider "
    f"({frames} frames{'' if frames == v.steps + 1 else f', every few of the {v.steps} steps'}). The grey is "
    "the exact density p_t at that step's t (of the chosen label's points, when a label is chosen): a good sampler "
    "keeps the cloud looking like a sample of it all the "
    "way down. Colours say which class each particle finally lands in. Black rings are three tracked particles, "
    "black crosses the model's current guess x̂₀ for them. "
    + ("" if v.guidance == 0 or v.label is None else "With guidance w > 0 the particles need not match the grey: "
       "guidance changes where they go (see *What guidance does* below). ")
    + f"Sampling on {v.device}: " + ", ".join(f"{n.lower()} {r[1]:.2f} s" for n, r in runs.items())
    + f" when first computed; this page run spent {elapsed:.2f} s getting the particles and the movie "
    "(cached runs cost almost nothing)."
)
downloads(LazyFigure(lambda: go.Figure(anim, _validate=False), frames=anim["frames"]),
          f"reverse-{v.dataset}-{v.sampler}-{v.steps}", key="reverse.dl.anim", gif=True)

# --- what guidance does ------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def _ahead():
    """Guidance and composition results, shared by every session: each computed once, the neighbouring slider
    values ahead in a background thread (ui/prefetch.py). A result's key holds every input it was computed from."""
    return Prefetcher(max_entries=256, ahead=prefetch_enabled())


# The exact scores always; the learned model's when it is shown and knows the labels.
gmodels = {"Exact": (f"oracle:{v.data_key}", v.oracle())}
if "Learned" in models and getattr(models["Learned"][1], "num_classes", 0) == v.dist.num_classes:
    gmodels["Learned"] = models["Learned"]
gkeys, gnets = tuple(k for k, _ in gmodels.values()), {name: m for name, (_, m) in gmodels.items()}


@st.fragment
def _guidance_section():
    """Reruns alone when its own w moves."""
    label_name = v.dist.label_names[v.label]
    st.header("What guidance does")
    st.markdown("Classifier-free guidance replaces the score of $p_t(x \\mid c)$ at every noise level by")
    st.latex(r"s_w(x, t) = (1 + w)\,\nabla\log p_t(x \mid c) - w\,\nabla\log p_t(x)"
             r" = \nabla\log p_t(x \mid c) + w\,\nabla\log p_t(c \mid x)")
    st.markdown("At $t = 0$ this is the score of the *tilted density*")
    st.latex(r"\tilde p_w(x) = \frac{p(x \mid c)^{1+w}\; p(x)^{-w}}{Z} \;\propto\; p(x \mid c)\; p(c \mid x)^{w}")
    st.markdown(
        r"""
The extra term $w\,\nabla\log p_t(c \mid x)$ pushes particles away from what the other labels would explain,
toward (and past) the parts of $p(x \mid c)$ least like $p(x)$. But noising does not commute with the tilt: at
$t > 0$, $s_w$ is not the score of the noised tilted density, so guided sampling draws from **neither**
$p(x \mid c)$ **nor** $\tilde p_w$, and the ODE and the SDE, following the same $s_w$, end in different
distributions. The samples concentrate, some can leave the data, and the two clouds differ: the table measures it.
"""
    )
    w = bound(st.slider, "Guidance weight w (this section)", 0.0, 8.0, v.guidance, 0.5, key="reverse.gw",
              help="Starts at the sidebar's w and follows it when that moves; moving this one reruns this section only.")
    def key(w):  # every input of guidance_view
        return "guidance", gkeys, spec, v.label, w, seed, N_PARTICLES, v.device

    def args(w, here):
        return v.dist, v.schedule, gnets, v.label, w, N_PARTICLES, seed, v.device, here

    with st.spinner(f"Sampling with guidance w = {w:g}: the ODE and the SDE..."):
        report, gfig = _ahead().compute(key(w), guidance.guidance_view, *args(w, False))
    _ahead().ahead([(key(w2), guidance.guidance_view, args(w2, True)) for w2 in guidance.nearby(w, 0.0, 8.0, 2)])
    chart(SpecFigure(gfig), width="stretch", theme=None, key="reverse.guidance")
    kept = "more than 99.9%" if report.kept > 0.999 else f"{100 * report.kept:.1f}%"
    st.caption(
        f"Grey: the exact p(x | {label_name}). Black lines: the exact tilted density for w = {w:g} (from the "
        "mixture's exact log-density), enclosing 50, 90 and 99% of it; the view closes in on where the points are. "
        f"Blue: the guided probability-flow ODE (Heun, {guidance.ODE_STEPS} steps); vermilion: the guided reverse SDE "
        f"({guidance.SDE_STEPS} steps); the same starting noise, {guidance.SHOWN} of {N_PARTICLES:,} points drawn. "
        + (f"The labels barely overlap here, so the tilt keeps {kept} of p(x | {label_name}) and the tilted density is "
           "almost p(x | label) itself: what moves the samples is guidance at t > 0." if report.kept > 0.95 else
           f"The tilt keeps {kept} of p(x | {label_name}), thinning it where other labels overlap."))
    st.dataframe(guidance.summary_rows(report), hide_index=True, width="stretch", key="reverse.guidance_table")
    st.caption(f"{N_PARTICLES:,} points per row. *Outside* is the share of points where p(x | {label_name}) is lower "
               "than at 99% of its own samples (about 1% for an exact sample). ED ratios as in *How close to the "
               "truth?* below: 1 is as close as a fresh exact sample.")
    downloads(LazyFigure(lambda: go.Figure(gfig, _validate=False)), f"guidance-{v.dataset}-w{w:g}",
              key="reverse.dl.guidance")


if v.label is not None and v.guidance > 0:
    if st.session_state.get("reverse.gw_sidebar", v.guidance) != v.guidance:  # the sidebar's w moved: follow it
        st.session_state["reverse.gw"] = v.guidance
    st.session_state["reverse.gw_sidebar"] = v.guidance
    _guidance_section()


# --- a composed prompt -----------------------------------------------------------------------------------
@st.fragment
def _composed_section():
    """Reruns alone when its labels or weights change."""
    names = list(v.dist.label_names)
    st.header("A composed prompt: a AND NOT b")
    st.markdown("Prompts compose by adding their pulls to the score of the data: label a's with weight $w_a$, "
                "label b's against it with weight $w_b$. At $t = 0$ that is the score of the target on the right.")
    st.latex(r"s(x, t) + w_a\big(s(x, t \mid a) - s(x, t)\big) - w_b\big(s(x, t \mid b) - s(x, t)\big)"
             r"\quad\xrightarrow{\;t\, =\, 0\;}\quad p(x)\Big(\frac{p(x \mid a)}{p(x)}\Big)^{w_a}"
             r"\Big(\frac{p(x \mid b)}{p(x)}\Big)^{-w_b}")
    st.markdown(
        r"""
The NOT factor $(p(x \mid b) / p(x))^{-w_b}$ has no ceiling: it is largest where b is least likely compared with
all the data, which can be past the end of the data, so the exact target can sit where no data point lies. During
sampling the same composition is applied to the *noised* scores, and noising does not commute with products and
powers of densities: the composed walk follows the target's score only at the very end, so the ODE and the SDE
end in neither the target nor $p(x \mid a)$, and not in the same place.
"""
    )
    for key in ("reverse.and", "reverse.not"):
        if st.session_state.get(key) not in names:  # e.g. another data set's label
            st.session_state.pop(key, None)
    c1, c2, c3, c4 = st.columns(4)
    a_name = bound(c1.selectbox, "Label a (AND)", names, index=0, key="reverse.and")
    w_a = bound(c2.slider, "Weight w_a", 0.0, 4.0, 2.0, 0.5, key="reverse.w_and")
    b_name = bound(c3.selectbox, "Label b (NOT)", names, index=1, key="reverse.not")
    w_b = bound(c4.slider, "Weight w_b", 0.0, 4.0, 1.0, 0.5, key="reverse.w_not")
    if a_name == b_name:
        st.info("Label a and label b are the same: choose two different labels.")
        return
    def key(wa, wb):  # every input of composed_view
        return "composed", gkeys, spec, (names.index(a_name), wa), (names.index(b_name), -wb), seed, N_PARTICLES, v.device

    def args(wa, wb, here):
        return v.dist, v.schedule, gnets, key(wa, wb)[3:5], N_PARTICLES, seed, v.device, here

    try:
        with st.spinner(f"Sampling {a_name} AND NOT {b_name}: the ODE and the SDE..."):
            report, cfig = _ahead().compute(key(w_a, w_b), guidance.composed_view, *args(w_a, w_b, False))
        _ahead().ahead([(key(a, b), guidance.composed_view, args(a, b, True))
                        for a, b in guidance.nearby_pairs(w_a, w_b, 0.0, 4.0)])
    except ValueError as e:  # a NOT that outweighs the rest leaves nothing to normalise
        st.error(f"Weights w_a = {w_a:g}, w_b = {w_b:g} (each in [0, 4]): {e}")
        return
    chart(SpecFigure(cfig), width="stretch", theme=None, key="reverse.composed")
    st.caption(
        "Grey: the data's p(x). Black lines: the exact composed target, enclosing 50, 90 and 99% of it. Green: exact "
        f"samples of the target, normalised on a grid of square cells {report.cell:.3f} wide around its mass (a cell "
        "drawn by its mass, then a uniform point in it: exact for that piecewise-constant density). Blue: the composed "
        f"ODE (Heun, {guidance.ODE_STEPS} steps); vermilion: the composed SDE ({guidance.SDE_STEPS} steps); the same "
        f"starting noise as above, {guidance.SHOWN} of {N_PARTICLES:,} points drawn.")
    st.dataframe(guidance.composed_rows(report, a_name), hide_index=True, width="stretch", key="reverse.composed_table")
    st.caption(f"{N_PARTICLES:,} points per row. *Off the data*: the share of points where p(x) is lower than at 99% of "
               "its own samples (about 1% for a sample of the data). ED ratios: 1 is as close as a fresh exact sample.")
    downloads(LazyFigure(lambda: go.Figure(cfig, _validate=False)), f"composed-{v.dataset}-{a_name}-not-{b_name}",
              key="reverse.dl.composed")


if v.dist.num_classes >= 2:
    _composed_section()

# --- quality readout ---------------------------------------------------------------------------------
st.header("How close to the truth?")
st.markdown(
    f"""
The toy data's true distribution is known, so the samples can be scored against it. The **energy
distance** between two point clouds is zero only when they come from the same distribution; dividing it by
its expected value between two independent exact samples of the same size gives a ratio where **1 means
"as close as a fresh exact sample"**. Even exact samples scatter around 1: the range of {N_CONTROLS} fresh
exact samples is shown beside the ratios, and a value inside it cannot be told from exact at this sample size.
Far above it the ratio says the samples come from another distribution, not how far: it grows in proportion
to the number of points, so hundreds or more (as strong guidance gives) mean "clearly elsewhere"; the pictures show where.
"""
)
st.latex(r"\mathrm{ED}(X, Y) = 2\,\mathbb E\|X - Y\| - \mathbb E\|X - X'\| - \mathbb E\|Y - Y'\|")
st.latex(r"\text{ratio} = \frac{\mathrm{ED}(\text{samples},\ \text{exact})}"
         r"{\mathbb E\,\mathrm{ED}(\text{exact},\ \text{exact}')}"
         r" \;=\; \frac{n\,\mathrm{ED}(\text{samples},\ \text{exact})}{2\,\mathbb E\|Y - Y'\|}")
ref, controls = _reference(v.data_key, v.label, N_PARTICLES, v.dist)
lo, hi = min(controls), max(controls)


@st.cache_data(show_spinner=False, max_entries=64)
def _ratio(key, data_key, label, n, _dist, _x):
    """`data_key` names `_dist`; `key` (the run's `_trajectory` arguments) names `_x`, the run's final points."""
    with one_thread():  # the server's share of the cores: a 2,000 x 2,000 cdist per reference
        return _reference(data_key, label, n, _dist)[0].ratio(_x)


cols = st.columns(len(trajs) + 2)
for col, (name, tr) in zip(cols, trajs.items()):
    r = _ratio(run_key(models[name][0]), v.data_key, v.label, N_PARTICLES, v.dist,
               tr.xs[-1])
    col.metric(f"ED ratio, {name.lower()}", f"{r:.2f}" if r < 10 else f"{r:.0f}")
cols[len(trajs)].metric("Fresh exact samples", f"{lo:.2f} to {hi:.2f}",
                        help=f"The lowest and highest ED ratio of {N_CONTROLS} independent exact samples of "
                             f"{N_PARTICLES:,} points: what a perfect sampler reads, draw to draw.")
st.caption(f"{N_PARTICLES:,} points each. {N_CONTROLS} fresh exact samples read {lo:.2f} to {hi:.2f}: a ratio in that "
           "range cannot be told from exact at this sample size, and differences inside it are noise. A ratio below 1 "
           "is luck, not better than exact: the exact and learned runs start from the same noise, so they share it. "
           + ("" if v.label is None or v.guidance == 0 else
              f"With guidance w = {v.guidance:g} the samples are scored against p(x | label), which guidance does not "
              "sample (see *What guidance does*): the exact scores read far above the band too, so the ratio measures "
              "guidance, not a model or sampler error. Set w = 0 to score the sampler against the conditional truth."))
nfe = nfe_of(v.sampler, v.steps) + (unconditional_nfe(v.schedule, v.sampler, v.steps)
                                    if v.label is not None and v.guidance else 0)
cols[len(trajs) + 1].metric("Model evaluations", f"{nfe}")


@st.cache_data(show_spinner=False, max_entries=32)
def _ed_steps(model_key, spec, sampler, label, w, eta, seed, n, data_key, device, _model, _dist):
    ref_n, _ = _reference(data_key, label, n, _dist)
    return offload(reverse.ed_vs_steps, _model, _dist, make_schedule(spec), sampler, STEPS_LIST, ref_n, seed, label, w,
                   eta, device, on=device)


with st.spinner(f"Scoring {SAMPLER_NAMES[v.sampler]} at {', '.join(map(str, STEPS_LIST))} steps..."):
    curves = {name: _ed_steps(key, spec, v.sampler, v.label, v.guidance, eta, seed, N_PARTICLES, v.data_key, v.device,
                              model, v.dist) for name, (key, model) in models.items()}
ed_fig = reverse.ed_steps_figure(STEPS_LIST, curves, band=controls)
chart(ed_fig, width="stretch", theme=None, key="reverse.ed")
st.caption(f"The ED ratio of {N_PARTICLES:,} samples of {SAMPLER_NAMES[v.sampler]} against the number of steps, "
           f"same starting noise. The green band spans the {N_CONTROLS} fresh exact samples: a perfect sampler lands "
           "anywhere in it. Few steps leave discretisation error; with the exact oracle and no guidance the only other "
           "error is that sampling noise, and the learned model adds its own error.")
downloads(ed_fig, f"ed-vs-steps-{v.sampler}", key="reverse.dl.ed")

# --- ODE beside SDE ----------------------------------------------------------------------------------
st.header("Deterministic paths beside stochastic ones")
st.markdown(
    """
Both samplers below start from **the same noise**. The probability-flow ODE (Heun's method) is a fixed map:
the same start always lands on the same point, along a smooth path. The reverse SDE adds fresh noise on
every step, so its paths jitter and the same start can end somewhere else. Without guidance, and with
enough steps, both clouds as a whole reproduce the data distribution; with guidance they need not, and differ.
"""
)
name0, (key0, model0) = next(iter(reversed(models.items())))  # the learned model when it is shown
ode_n = 600
ode = _trajectory(key0, spec, "heun", v.steps, v.label, v.guidance, 0.0, seed, ode_n, v.device, model0)[0]
sde = _trajectory(key0, spec, "sde", v.steps, v.label, v.guidance, 0.0, seed, ode_n, v.device, model0)[0]


@st.cache_resource(show_spinner=False, max_entries=16)
def _ode_sde(keys, label, _dist, _ode, _sde):
    return reverse.ode_sde_figure(_dist, _ode, _sde, label=label)


ode_fig = _ode_sde(run_key(key0, ode_n, sampler="heun and sde"), v.label, v.dist, ode, sde)
chart(ode_fig, width="stretch", theme=None, key="reverse.odesde")
st.caption(f"{name0} model, {v.steps} steps, {ode_n} particles; six paths drawn, the same colour for the same "
           "start. Paths may enter from outside the frame: the starting noise is spread as widely as the schedule's "
           f"σ at t = 1 ({SCHEDULE_NAMES[v.schedule.name]}: σ = {float(v.schedule.alpha_sigma(1.0)[1]):.3g}).")
downloads(ode_fig, "ode-vs-sde", key="reverse.dl.odesde")

# --- the predicted x0 along a path ---------------------------------------------------------------------
st.header("The predicted clean point along a path")
st.markdown(
    """
At every step the model commits to a guess $\\hat x_0$ of where the particle will end. Far from the data
(large $t$) the guess is a compromise, near the middle of everything the noisy point could have come from;
as $t$ falls it moves out and settles on the point the particle actually reaches.
"""
)
st.latex(r"\hat x_0(x_t, t) \approx \mathbb E[x_0 \mid x_t], \qquad "
         r"\|\hat x_0(x_t, t) - x_{\text{final}}\| \to 0 \text{ as } t \to 0")
main_name = next(iter(reversed(trajs)))


@st.cache_resource(show_spinner=False, max_entries=16)
def _x0_fig(key, spec, label, _dist, _traj):
    """`key` (`run_key` of the run) names `_dist` and `_traj`."""
    return reverse.x0_hat_figure(_dist, make_schedule(spec), _traj, label=label)


x0_fig = _x0_fig(run_key(models[main_name][0]), spec, v.label, v.dist, trajs[main_name])
chart(x0_fig, width="stretch", theme=None, key="reverse.x0hat")
st.caption(f"{main_name} model with the sidebar's sampler: three particles of the run above. Crosses grow as t falls.")
downloads(x0_fig, "predicted-x0", key="reverse.dl.x0hat")

show_source(reverse.run, sample, guided, reverse.sampling_animation, EnergyReference, reverse.ode_sde_figure,
            reverse.x0_hat_figure, guidance.guidance_report, TiltedMixture, guidance.composed_report, composed,
            ComposedMixture)
