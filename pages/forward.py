"""Page 4: the forward process x_t = alpha_t x0 + sigma_t eps, and the signal-to-noise ratio of every schedule."""

import streamlit as st

from ui.present import chart
from ui.state import view

v = view()

import math  # noqa: E402

import plotly.graph_objects as go  # noqa: E402

from diffusion.schedules import SCHEDULES, make_schedule  # noqa: E402
from ui import forward  # noqa: E402
from ui.figures import LazyFigure, SpecFigure, at_frame, density_grid, figure_dict  # noqa: E402
from ui.page import downloads, show_source  # noqa: E402
from ui.state import PARAM_LABELS, PARAM_RANGES, SCHEDULE_NAMES, bound  # noqa: E402

st.title("4 · Forward process and SNR")
st.markdown(
    """
Learning the data density directly is hard, so diffusion takes a detour through a corruption we design
ourselves. Every clean point $x_0$ is shrunk by a factor $\\alpha_t$ and blurred with Gaussian noise of
size $\\sigma_t$. At $t = 0$ nothing has happened; by $t = 1$ the data are gone and only noise is left.
Because the recipe is ours, the density $p_t$ of the noisy points is known **exactly** here (each Gaussian
bump of the mixture just widens), and that is the grey heat map below.
"""
)
st.latex(r"x_t = \alpha_t\, x_0 + \sigma_t\, \varepsilon,\quad \varepsilon \sim \mathcal N(0, I)"
         r"\qquad\Longrightarrow\qquad "
         r"p_t(x) = \int p_0(x_0)\, \mathcal N\!\left(x;\ \alpha_t x_0,\ \sigma_t^2 I\right) dx_0")

lab = "the whole distribution" if v.label is None else f"label '{v.dist.label_names[v.label]}' only"
a_now, s_now = v.alpha_sigma
c = st.columns(4)
c[0].metric("α_t (signal kept)", f"{a_now:.3f}")
c[1].metric("σ_t (noise added)", f"{s_now:.3g}")
c[2].metric("SNR = α²/σ²", f"{math.exp(v.logsnr):.3g}")
c[3].metric("log-SNR λ", f"{v.logsnr + 0.0:.2f}")


@st.cache_resource(show_spinner="Drawing the 31 frames of the forward process...", max_entries=16)
def _movie(data_key: str, spec: str, label, _dist):
    """The whole animation as a plain dict (cached, shared, never modified by the page)."""
    return figure_dict(forward.forward_animation(_dist, make_schedule(spec), forward.FRAME_TS, label=label))


active = forward.nearest_frame(forward.FRAME_TS, v.t)
movie_dict = _movie(v.data_key, v.schedule.spec(), v.label, v.dist)
movie_spec = at_frame(movie_dict, active)  # a shallow copy opened at the sidebar's t: the frames stay shared
movie = LazyFigure(lambda: go.Figure(movie_spec, _validate=False), frames=movie_dict["frames"])  # for downloads
st.subheader(f"Noising {v.dist.name or v.dataset} under the {SCHEDULE_NAMES[v.schedule.name]} schedule")
chart(SpecFigure(movie_spec), width="stretch", theme=None, key="forward.movie")
st.caption(
    f"Showing {lab}. Press Play or drag the slider: the frames (every 1/30 in t) are all in your browser, "
    f"and the movie opens at t = {forward.FRAME_TS[active]:.2f}, the frame nearest the sidebar's t = {v.t:.2f}. "
    "Coloured dots: 500 points noised with their own fixed ε. Black rings: five tracked points, with the "
    "line they have drawn since t = 0. The view zooms out as √(α² + σ²) grows, so variance-exploding "
    "schedules stay in sight."
)
downloads(movie, f"forward-{v.dataset}-{v.schedule.name}", key="forward.dl.movie", gif=True)

st.header("Signal-to-noise ratio")


@st.cache_resource(show_spinner=False)
def _test_digits():
    from toy_data.mnist import load_mnist

    return load_mnist("test")


@st.cache_data(show_spinner=False)
def _mnist_power() -> tuple[float, float] | None:
    """(E[x0^2], pixel variance) of the MNIST test digits in [-1, 1], or None when the file is unreadable."""
    try:
        x = _test_digits()[0]
    except ValueError:
        return None
    return forward.pixel_power(x)


power = v.dist.power()
mnist = _mnist_power()
st.markdown(
    f"""
How much of $x_t$ is still data? The **SNR** compares the two scale factors: $\\alpha_t^2$ on the data
against $\\sigma_t^2$ on the noise. When the data have unit power per coordinate, as the built-in toy sets do
(this one: $\\mathbb{{E}}[x_0^2]$ = {power:.2f} per coordinate), that is exactly the power of the signal
part $\\alpha_t x_0$ over the power of the noise part $\\sigma_t \\varepsilon$; for other data multiply by
their power.""" + (f""" MNIST digits in $[-1, 1]$ have $\\mathbb{{E}}[x_0^2]$ = {mnist[0]:.2f}, but most of
that is the blank paper around the digit (pixel value −1): the pixels vary around their mean with variance only {mnist[1]:.2f}, so
a digit's shape fades into the noise at a higher $\\lambda$ than the SNR alone suggests.""" if mnist else "") + """

The logarithm of the SNR, $\\lambda_t$, is easier to plot
and to reason with because it runs over a modest range (here clamped to $[-10, 10]$) instead of many
orders of magnitude. Large $\\lambda$: nearly clean. Very negative $\\lambda$: nearly pure noise.
Schedules differ only in **how fast** they walk down the $\\lambda$ axis (and in the overall scale
$\\sqrt{\\alpha^2+\\sigma^2}$, which the model can undo): two schedules at the same $\\lambda$ see the same
picture up to a zoom.
"""
)
st.latex(r"\mathrm{SNR}(t) = \frac{\alpha_t^2}{\sigma_t^2}, \qquad \lambda_t = \log \mathrm{SNR}(t) "
         r"= \log\frac{\alpha_t^2}{\sigma_t^2}\quad(\text{decreasing in } t)")

with st.expander("Parameters of the other schedules (the sidebar's schedule uses the sidebar's sliders)"):
    params = {}
    for name in SCHEDULES:
        if name == v.schedule.name:
            continue
        defaults = forward.default_params(name)
        if not defaults:
            st.caption(f"{SCHEDULE_NAMES[name]}: no parameters (α = 1 − t, σ = t).")
            params[name] = {}
            continue
        st.markdown(f"**{SCHEDULE_NAMES[name]}**")
        cols = st.columns(len(defaults))
        params[name] = {}
        for col, (p, d) in zip(cols, defaults.items()):
            lo, hi, step = PARAM_RANGES[p]
            params[name][p] = col.slider(PARAM_LABELS[p], lo, hi, float(d), step, key=f"forward.{name}.{p}")
others, notes = forward.schedules_from_params(params)
for note in notes:
    st.warning(note)
schedules = {name: (v.schedule if name == v.schedule.name else others[name]) for name in SCHEDULES}


@st.cache_resource(show_spinner=False, max_entries=64)
def _curve_lines(specs: tuple, current: str):
    return forward.curve_lines({s.split(":")[0]: make_schedule(s) for s in specs}, current, names=SCHEDULE_NAMES)


specs = tuple(s.spec() for s in schedules.values())
curves = forward.mark_t(_curve_lines(specs, v.schedule.name), schedules, v.schedule.name, v.t, names=SCHEDULE_NAMES)
chart(curves, width="stretch", theme=None, key="forward.curves")
st.caption(
    f"All six schedules on shared axes; the sidebar's ({SCHEDULE_NAMES[v.schedule.name]}) is drawn bold, and "
    f"each dot is where that schedule stands at the sidebar's t = {v.t:.2f}. Flat ends are the clamp that "
    "keeps λ inside [−10, 10]. VE and EDM keep α = 1 and let σ grow far past 1 (variance exploding); the "
    "others keep α² + σ² near 1 (variance preserving), and rectified flow moves on a straight line."
)
downloads(curves, "schedule-curves", key="forward.dl.curves")

st.header("The same on digits")
st.markdown(
    """
One real test digit and one fixed draw of noise $\\varepsilon$, noised to the same log-SNR values under every
schedule: columns are $\\lambda$, rows are schedules, and each picture is titled with the time $t$ at which that
schedule reaches that $\\lambda$. The times differ a lot; the pictures do not. Divided by the overall scale
$\\sqrt{\\alpha^2+\\sigma^2}$, the noisy image depends on $\\lambda$ alone, so a schedule only decides *when*
each picture happens, never *what* it looks like.
"""
)
st.latex(r"\frac{x_t}{\sqrt{\alpha_t^2+\sigma_t^2}} = \frac{x_0 + e^{-\lambda/2}\,\varepsilon}{\sqrt{1 + e^{-\lambda}}}"
         r"\qquad\text{(a function of } \lambda \text{ only)}")


@st.cache_resource(show_spinner=False, max_entries=64)
def _digit_grid(specs: tuple, current: str, index: int, seed: int):
    x, y = _test_digits()
    scheds = {s.split(":")[0]: make_schedule(s) for s in specs}
    images, ts, lams = forward.logsnr_digit_grid(x[index], scheds, forward.FORWARD_LAMBDAS, seed)
    names = [SCHEDULE_NAMES[n] + (" (sidebar)" if n == current else "") for n in scheds]
    return forward.logsnr_grid_figure(images, ts, lams, forward.FORWARD_LAMBDAS, names), int(y[index])


try:
    n_test = len(_test_digits()[0])
except ValueError as e:  # toy_data.mnist.MnistError: the digits file is missing or unreadable
    st.error(f"The MNIST test digits could not be read: {e}")
else:
    c = st.columns(3)
    index = int(bound(c[0].number_input, f"Test image # (0 to {n_test - 1})", 0, n_test - 1, 0, 1, key="forward.digit"))
    seed = int(bound(c[1].number_input, "Noise seed ε", 0, 9999, 0, 1, key="forward.digit_seed"))
    digits_fig, true = _digit_grid(specs, v.schedule.name, index, seed)
    chart(digits_fig, width="stretch", theme=None, key="forward.digits")
    st.caption(
        f"Test image #{index} (a {true}). Every row uses the same ε. A cell whose schedule cannot reach that λ "
        "(its range is clamped, e.g. variance exploding stops where σ_max runs out) shows the λ it does reach."
    )
    downloads(digits_fig, f"digits-by-logsnr-{index}", key="forward.dl.digits")

show_source(forward.forward_animation, forward.forward_path, density_grid, forward.curve_lines, forward.mark_t,
            forward.curve_values,
            type(v.schedule)._logsnr, type(v.schedule)._alpha_sigma, forward.logsnr_digit_grid)
