"""Three targets, one prediction (the Train page's last section; no Streamlit here).

* `draw_pair` / `noise_at` / `targets`: one clean point x0 of the data, one noise eps, the noisy point
  x_t = alpha x0 + sigma eps and the eps, x0 and v targets, all through diffusion.parameterizations
  (`from_x0_eps` gives each target, `to_x0_eps` recovers (x0, eps) from any one of them and x_t);
* `predictions`: what a model (the ideal denoiser or a network) predicts at x_t, in all three forms;
* `targets_figure` / `targets_table`: the plane with x_t, the sample's path and the three arrows;
* `lambda_density` / `weights_figure`: each loss weighting w(lambda) and where uniform t puts lambda;
* `model_errors` / `loss_floor` / `errors_figure`: a model's squared error against the ideal denoiser in
  each of the three forms, per noise level, beside the loss the ideal denoiser itself cannot go below.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from diffusion.models import oracle_model
from diffusion.parameterizations import WEIGHTINGS, from_x0_eps, noise_level, to_x0_eps

from .figures import DENSITY_SCALE, EXACT_COLOR, EXTENT, FONT, LEARNED_COLOR, PALETTE, XT_COLOR, quiver

TARGETS = ("eps", "x0", "v")
TARGET_NAMES = {"eps": "ε", "x0": "x₀", "v": "v"}
TARGET_COLORS = {"eps": PALETTE[2], "x0": PALETTE[3], "v": PALETTE[1]}
VP_TOL = 1e-9  # |alpha^2 + sigma^2 - 1| below this: a variance-preserving level (float64 round-off is ~1e-16)
ERROR_LAMBDAS = 20  # noise levels of the error curves
ERROR_POINTS = 512  # noisy points per noise level
ERROR_RANGE = (-8.0, 8.0)  # their log-SNR range (inside every schedule's own where it reaches that far)
WEIGHT_COLORS = {"eps": PALETTE[2], "x0": PALETTE[3], "v": PALETTE[1], "flow": PALETTE[4], "min_snr": PALETTE[0],
                 "sigmoid": PALETTE[5]}
WEIGHT_LABELS = {"eps": "ε-MSE", "x0": "x₀-MSE", "v": "v-MSE (VP)", "flow": "flow", "min_snr": "min-SNR-5",
                 "sigmoid": "sigmoid"}


# --- one draw: x0, eps, x_t and the three targets ------------------------------------------------------------

def draw_pair(dist, seed: int, label=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0 [1, 2], eps [1, 2]) in float64: a point of the data (of class `label` if given) and a standard normal
    noise, both from a generator seeded with `seed`."""
    g = torch.Generator().manual_seed(int(seed))
    x0, _ = dist.sample(1, label=label, generator=g)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    return x0.double(), eps


def noise_at(schedule, t: float):
    """The schedule's NoiseLevel at t, as float64 0-d tensors."""
    return noise_level(schedule, torch.tensor(float(t), dtype=torch.float64))


def is_vp(lvl) -> bool:
    """True where alpha^2 + sigma^2 = 1 (to float64 round-off): the level of a variance-preserving schedule."""
    return abs(float(lvl.alpha**2 + lvl.sigma**2) - 1.0) < VP_TOL


def targets(x0: torch.Tensor, eps: torch.Tensor, lvl) -> dict:
    """{'x_t': alpha x0 + sigma eps, 'eps', 'x0', 'v'}: the noisy point and each target, by `from_x0_eps`."""
    a, s = lvl.to(x0).alpha, lvl.to(x0).sigma
    return {"x_t": a * x0 + s * eps, **{k: from_x0_eps(k, x0, eps, lvl) for k in TARGETS}}


def recovered(tg: dict, lvl) -> dict:
    """{kind: (x0, eps)} recovered from x_t and that one target by `to_x0_eps`: each equals the drawn pair."""
    return {k: to_x0_eps(k, tg[k], tg["x_t"], lvl) for k in TARGETS}


def predictions(model, x: torch.Tensor, t, label=None, dtype=torch.float32) -> dict:
    """{'eps', 'x0', 'v'}: what `model` predicts at x (float64 [B, 2]) and t (a float or [B] tensor), in each form.

    The model's own output (`predict`, in its parameterization) goes through `to_x0_eps` in float64, at the level of
    the model's schedule in float64 (a network hands back its level in its own float32); `dtype` is what the model
    is fed (float32 for a network, float64 for the ideal denoiser)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    with torch.no_grad():
        out, _ = model.predict(x.to(dtype), t, label)
    lvl = noise_level(model.schedule, t)
    x0, eps = to_x0_eps(model.parameterization, out.detach().double(), x, lvl)
    return {k: from_x0_eps(k, x0, eps, lvl) for k in TARGETS}


def sample_path(schedule, x0: torch.Tensor, eps: torch.Tensor, n: int = 121) -> np.ndarray:
    """[n, 2]: x(t) = alpha(t) x0 + sigma(t) eps for t from 0 to 1, the way this one sample is noised."""
    a, s = schedule.alpha_sigma(torch.linspace(0, 1, n, dtype=torch.float64))
    return (a[:, None] * x0 + s[:, None] * eps).numpy()


# --- figure 1: the plane ------------------------------------------------------------------------------------

def targets_figure(tg: dict, path: np.ndarray, vp: bool, exact: dict | None = None, learned: dict | None = None,
                   density=None) -> go.Figure:
    """x_t on the sample's path, the eps and x0 targets as arrows from the origin and v from x_t, over the data's
    density (xs, ys, p). `exact` / `learned` (from `predictions`) mark where the ideal denoiser's and the
    network's predictions put each arrow's tip."""
    x0, eps, v, xt = (tg[k][0].numpy() for k in ("x0", "eps", "v", "x_t"))
    fig = go.Figure()
    if density is not None:
        xs, ys, p = density
        fig.add_trace(go.Heatmap(x=xs, y=ys, z=p, colorscale=DENSITY_SCALE, showscale=False, name="p₀",
                                 hovertemplate="p₀ = %{z:.3g}<extra></extra>"))
    fig.add_trace(go.Scatter(x=path[:, 0], y=path[:, 1], mode="lines", name="x_t for t from 0 to 1",
                             line=dict(color="#888888", width=2, dash="dot"), hoverinfo="skip"))
    starts = {"eps": np.zeros(2), "x0": np.zeros(2), "v": xt}
    for k, vec in (("eps", eps), ("x0", x0), ("v", v)):
        fig.add_trace(quiver([starts[k][0]], [starts[k][1]], [vec[0]], [vec[1]], color=TARGET_COLORS[k],
                             name=f"{TARGET_NAMES[k]} target", arrow=0.18, width=4))
    for name, pred, color in (("ideal denoiser", exact, EXACT_COLOR), ("network", learned, LEARNED_COLOR)):
        if pred is None:
            continue
        tips = np.stack([starts[k] + pred[k][0].numpy() for k in TARGETS])
        fig.add_trace(go.Scatter(x=tips[:, 0], y=tips[:, 1], mode="markers", name=f"{name} predicts",
                                 marker=dict(symbol="diamond", size=13, color=color, line=dict(width=1.5, color="white")),
                                 text=[TARGET_NAMES[k] for k in TARGETS],
                                 hovertemplate=f"{name}: %{{text}} tip (%{{x:.3f}}, %{{y:.3f}})<extra></extra>"))
    fig.add_trace(go.Scatter(x=[xt[0]], y=[xt[1]], mode="markers+text", name="x_t", text=["x_t"],
                             textposition="top left", textfont=dict(size=18),
                             marker=dict(size=14, color=XT_COLOR, line=dict(width=2, color="white")),
                             hovertemplate="x_t = (%{x:.3f}, %{y:.3f})<extra></extra>"))
    shown = np.stack([x0, eps, xt, xt + v] + ([path[0], path[-1]] if vp else []))
    half = max(EXTENT, 1.12 * float(np.abs(shown).max()))
    fig.update_xaxes(range=[-half, half], title_text="x₁", constrain="domain", zeroline=True, zerolinecolor="#cccccc")
    fig.update_yaxes(range=[-half, half], title_text="x₂", scaleanchor="x", constrain="domain", zeroline=True,
                     zerolinecolor="#cccccc")
    fig.update_layout(height=520, font=FONT, plot_bgcolor="white", margin=dict(l=60, r=10, t=40, b=50),
                      title="One draw: x_t and its three targets",
                      legend=dict(x=1.02, xanchor="left", y=1, yanchor="top", font=dict(size=14)))
    return fig


def targets_table(tg: dict, exact: dict, learned: dict | None) -> dict:
    """Columns of the table beside the plane: each target, the ideal denoiser's and the network's prediction."""
    def fmt(a):
        return f"({a[0, 0]:+.3f}, {a[0, 1]:+.3f})"

    cols = {"target": [TARGET_NAMES[k] for k in TARGETS], "this draw": [fmt(tg[k]) for k in TARGETS],
            "ideal denoiser": [fmt(exact[k]) for k in TARGETS]}
    if learned is not None:
        cols["network"] = [fmt(learned[k]) for k in TARGETS]
        cols["|network − ideal|"] = [f"{float(torch.linalg.norm(learned[k] - exact[k])):.3f}" for k in TARGETS]
    return cols


def marker_lines(lam: float, panels: int) -> list[dict]:
    """A grey dotted vertical line at lambda = `lam` across each of the first `panels` panels (layout shapes), so a
    cached figure dict can be marked at a new lambda with ui.figures.patch(spec, {}, {"shapes": ...})."""
    return [dict(type="line", x0=lam, x1=lam, y0=0, y1=1, xref=f"x{i if i > 1 else ''}",
                 yref=f"y{i if i > 1 else ''} domain", line=dict(color="#888888", width=2.5, dash="dot"))
            for i in range(1, panels + 1)]


# --- figure 2: the loss weightings and where training looks --------------------------------------------------

def lambda_range(schedule) -> tuple[float, float]:
    """(lowest, highest) log-SNR the schedule reaches on its t_range."""
    t_lo, t_hi = schedule.t_range
    return float(schedule.logsnr(t_hi)), float(schedule.logsnr(t_lo))


def lambda_density(schedule, lam) -> np.ndarray:
    """The density of lambda = lambda(t) for t uniform on [0, 1], at each lambda inside the schedule's range:
    1 / |d lambda / dt| at t(lambda), with d lambda / dt = 2 (alpha'/alpha - sigma'/sigma). The t outside
    t_range (clamped there) are point masses at the range's ends, not part of this density."""
    t = schedule.t_of_logsnr(torch.as_tensor(np.asarray(lam, dtype=float)))
    a, s = schedule.alpha_sigma(t)
    da, ds = schedule.derivatives(t)
    return (1.0 / torch.abs(2 * (da / a - ds / s))).numpy()


def weight_curves(lam) -> dict:
    """{name: WEIGHTINGS[name](lambda)} as numpy arrays."""
    lam = torch.as_tensor(np.asarray(lam, dtype=float))
    return {k: f(lam).numpy() for k, f in WEIGHTINGS.items()}


def weights_figure(schedule, lam_now: float | None = None, selected: str | None = None, n: int = 161) -> go.Figure:
    """Top: each weighting w(lambda) (the weight on the eps error) on a log axis, `selected` drawn thicker. Below:
    the schedule's lambda density under uniform t, shaded. This section's lambda is marked on both."""
    lo, hi = lambda_range(schedule)
    lam = np.linspace(lo, hi, n)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.04)
    for k, w in weight_curves(lam).items():
        fig.add_trace(go.Scatter(x=lam, y=w, mode="lines", name=WEIGHT_LABELS[k],
                                 line=dict(color=WEIGHT_COLORS[k], width=6 if k == selected else 2.5),
                                 hovertemplate=f"{WEIGHT_LABELS[k]}<br>λ = %{{x:.2f}}<br>w = %{{y:.3g}}<extra></extra>"),
                      row=1, col=1)
    fig.add_trace(go.Scatter(x=lam, y=lambda_density(schedule, lam), mode="lines", fill="tozeroy",
                             name="λ in training (t uniform)", line=dict(color="#888888", width=1.5),
                             fillcolor="rgba(150,150,150,0.35)",
                             hovertemplate="λ = %{x:.2f}<br>density %{y:.3f}<extra></extra>"), row=2, col=1)
    if lam_now is not None:
        fig.update_layout(shapes=marker_lines(lam_now, 2))
    fig.update_xaxes(range=[hi, lo], gridcolor="#e5e5e5")
    fig.update_xaxes(title_text="log-SNR λ (noisier to the right)", row=2, col=1)
    fig.update_yaxes(title_text="w(λ) on the ε error", type="log", exponentformat="power", gridcolor="#e5e5e5",
                     row=1, col=1)
    fig.update_yaxes(title_text="density", rangemode="tozero", gridcolor="#e5e5e5", row=2, col=1)
    fig.update_layout(height=520, font=FONT, plot_bgcolor="white", margin=dict(l=80, r=20, t=50, b=60),
                      title="What each loss weighs, and where training looks",
                      legend=dict(x=1.01, xanchor="left", y=1, yanchor="top", font=dict(size=14)))
    return fig


# --- figure 3: the models' errors per noise level -----------------------------------------------------------

def error_lambdas(schedule, n: int = ERROR_LAMBDAS, span=ERROR_RANGE) -> np.ndarray:
    """n log-SNR values evenly over `span`, narrowed to what the schedule reaches, decreasing (clean to noisy)."""
    lo, hi = lambda_range(schedule)
    return np.linspace(min(span[1], hi), max(span[0], lo), n)


def noisy_batch(dist, schedule, lams, n: int = ERROR_POINTS, seed: int = 0, label=None):
    """(x0, eps, x_t [len(lams) * n, 2] float64, t [len(lams) * n]): n data points noised at each lambda."""
    g = torch.Generator().manual_seed(int(seed))
    x0 = dist.sample(n, label=label, generator=g)[0].double().repeat(len(lams), 1)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    t = schedule.t_of_logsnr(torch.as_tensor(np.asarray(lams, dtype=float))).repeat_interleave(n)
    lvl = noise_level(schedule, t).to(x0)
    return x0, eps, lvl.alpha * x0 + lvl.sigma * eps, t


def per_level(sq: torch.Tensor, levels: int) -> np.ndarray:
    """[levels]: the mean of a [levels * n, 2] squared error over each level's points and both coordinates."""
    return sq.reshape(levels, -1).mean(1).numpy()


def model_errors(model, dist, schedule, lams, label=None, n: int = ERROR_POINTS, seed: int = 0,
                 dtype=torch.float32) -> dict:
    """{'eps', 'x0', 'v'}: the model's mean squared error (per coordinate) against the ideal denoiser's prediction in
    that form, at each lambda, on n data points noised there. 0 for the ideal denoiser itself."""
    _, _, x, t = noisy_batch(dist, schedule, lams, n, seed, label)
    exact = predictions(oracle_model(dist, schedule), x, t, label, torch.float64)
    pred = predictions(model, x, t, label, dtype)
    return {k: per_level((pred[k] - exact[k]) ** 2, len(lams)) for k in TARGETS}


def loss_floor(dist, schedule, lams, label=None, n: int = ERROR_POINTS, seed: int = 0) -> dict:
    """{'eps', 'x0', 'v'}: the ideal denoiser's own squared error against the drawn targets at each lambda, the
    least any model can score on that form's unweighted loss (per coordinate)."""
    x0, eps, x, t = noisy_batch(dist, schedule, lams, n, seed, label)
    exact = predictions(oracle_model(dist, schedule), x, t, label, torch.float64)
    lvl = noise_level(schedule, t)
    return {k: per_level((exact[k] - from_x0_eps(k, x0, eps, lvl)) ** 2, len(lams)) for k in TARGETS}


def errors_figure(lams, floor: dict, errors: dict, lam_now: float | None = None) -> go.Figure:
    """One panel per form (eps, x0, v): each model's error against the ideal denoiser (solid, dashed) and the
    ideal denoiser's own loss against the drawn targets (dotted), against lambda on log axes.
    `errors` is {name: (curves, colour, dash)}."""
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.05,
                        subplot_titles=[f"{TARGET_NAMES[k]}" for k in TARGETS])
    for j, k in enumerate(TARGETS, start=1):
        fig.add_trace(go.Scatter(x=lams, y=floor[k], mode="lines", name="ideal denoiser vs the drawn target",
                                 legendgroup="floor", showlegend=j == 1, line=dict(color=EXACT_COLOR, width=3, dash="dot"),
                                 hovertemplate="λ = %{x:.2f}<br>%{y:.3g}<extra>floor</extra>"), row=1, col=j)
        for name, (curves, color, dash) in errors.items():
            fig.add_trace(go.Scatter(x=lams, y=curves[k], mode="lines+markers", name=name,
                                     legendgroup=name, showlegend=j == 1, line=dict(color=color, width=3, dash=dash),
                                     marker=dict(size=6, color=color),
                                     hovertemplate=f"λ = %{{x:.2f}}<br>%{{y:.3g}}<extra>{name}</extra>"), row=1, col=j)
    if lam_now is not None:
        fig.update_layout(shapes=marker_lines(lam_now, 3))
    lo, hi = float(np.min(lams)), float(np.max(lams))
    fig.update_xaxes(range=[hi + 0.3, lo - 0.3], gridcolor="#e5e5e5")
    fig.update_xaxes(title_text="log-SNR λ (noisier to the right)", row=1, col=2)
    fig.update_yaxes(type="log", exponentformat="power", gridcolor="#e5e5e5")
    fig.update_yaxes(matches="y", row=1, col=2)  # one scale for the three panels, each with its own labels
    fig.update_yaxes(matches="y", row=1, col=3)
    fig.update_yaxes(title_text="mean squared error", row=1, col=1)
    fig.update_layout(height=520, font=FONT, plot_bgcolor="white", margin=dict(l=80, r=20, t=60, b=110),
                      legend=dict(orientation="h", x=0, y=-0.3, yanchor="top", font=dict(size=14)))
    return fig


# --- the words and formulas beside the figures ---------------------------------------------------------------

INTRO = (
    "The network makes **one** prediction at x_t, and ε, x₀ and v are three names for it: together with x_t, any "
    "one of them fixes the other two (the formulas beside the plane). Choosing what the network writes out "
    "therefore does not change what it can learn. What changes is how much the loss counts each noise level: "
    "an error δ in ε̂ makes an error (σ/α)·δ in x̂₀, so the same mistake weighs σ²/α² = $e^{-\\lambda}$ times as "
    "much in x₀ units as in ε units. The second figure draws each weighting against where training puts λ (x₀-MSE "
    "hardly counts the nearly clean levels, ε-MSE counts all alike); the third measures the trained networks' "
    "error in all three forms, per noise level.")
CONVERSIONS = [
    r"x_t = \alpha\,x_0 + \sigma\,\varepsilon, \qquad v = \alpha\,\varepsilon - \sigma\,x_0",
    r"x_0 = \frac{x_t - \sigma\,\varepsilon}{\alpha}, \qquad \varepsilon = \frac{x_t - \alpha\,x_0}{\sigma}",
    r"x_0 = \frac{\alpha\,x_t - \sigma\,v}{\alpha^2 + \sigma^2}, \qquad "
    r"\varepsilon = \frac{\sigma\,x_t + \alpha\,v}{\alpha^2 + \sigma^2}",
]
VP_FORMS = r"\alpha^2 + \sigma^2 = 1:\quad x_0 = \alpha\,x_t - \sigma\,v, \qquad \varepsilon = \sigma\,x_t + \alpha\,v"
ERROR_LAW = (r"\lVert \hat x_0 - x_0^{*}\rVert^2 = e^{-\lambda}\,\lVert \hat\varepsilon - \varepsilon^{*}\rVert^2,"
             r"\qquad \lVert \hat v - v^{*}\rVert^2 = \frac{(\alpha^2+\sigma^2)^2}{\alpha^2}\,"
             r"\lVert \hat\varepsilon - \varepsilon^{*}\rVert^2")


def level_text(t: float, lvl, worst: float) -> str:
    """The draw's noise level and how exactly the three targets give back (x0, eps)."""
    a, s, lam = float(lvl.alpha), float(lvl.sigma), float(lvl.logsnr)
    return (f"At t = {t:.2f}: α = {a:.4f}, σ = {s:.4f}, λ = {lam + 0.0:.2f}, α² + σ² = {a * a + s * s:.4f}. "
            f"From x_t and any one target, `to_x0_eps` gives back the drawn x₀ and ε to within {worst:.1e} "
            "(float64 round-off).")


def non_vp_text(lvl, schedule_title: str) -> str:
    a, s = float(lvl.alpha), float(lvl.sigma)
    return (f"The {schedule_title} schedule is not variance-preserving: here α² + σ² = {a * a + s * s:.4g}, so the "
            "short forms x₀ = α x_t − σ v and ε = σ x_t + α v do not hold; the general ones above do, and v is not "
            "the direction in which x_t moves along its path. The v-MSE curve of the weightings figure, 1 + e^−λ, is "
            "the v error's weight for variance-preserving schedules; here the formula under that figure applies.")


ERRORS_CAPTION = (
    f"Solid and dashed: each network's mean squared error (per coordinate) against the ideal denoiser's answer in "
    f"that form, on {ERROR_POINTS} data points noised at each of {ERROR_LAMBDAS} log-SNR values of the sidebar's "
    "schedule (the ideal denoiser scores 0 here). Dotted: the ideal denoiser's own squared error against the drawn "
    "targets, the least that form's unweighted loss can reach. Left of each panel the data is nearly clean, right "
    "of it nearly pure noise. The grey dotted vertical line marks this section's t.")
