"""Builders for page 6 (what the model learns: denoising): pure functions, no Streamlit.

A noisy point x_t = alpha x0 + sigma eps could have come from many clean points. Bayes' rule gives
the exact posterior over them,

    p(x0 | x_t) = p0(x0) N(x_t; alpha x0, sigma^2 I) / p_t(x_t),

and the best possible denoiser (in squared error) answers its mean E[x0 | x_t]. This module evaluates
that posterior on a grid, the denoiser field of the exact and the learned model over a t grid, and
the memorisation experiment's figures: the ideal denoiser of a finite training set, which can only
return training points, beside a network trained on the same points (its networks and samples: ui/memorisation.py).
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from diffusion.samplers import guided, prior_sample, sample
from toy_data import finite_set

from .figures import (DENSITY_SCALE, EXTENT, FONT, PALETTE, add_player, density_grid, mesh_points, quiver,
                      square_grid)

PICK_RANGE = 3.5  # the sliders and the clickable grid span [-PICK_RANGE, PICK_RANGE] (times view_scale)
PICK_STEP = 0.25  # spacing of the clickable grid (a multiple of the sliders' step)
# The memorisation experiment's fixed sampler. Not Heun: a finite set's ideal denoiser snaps to the nearest
# point as sigma -> 0, and Heun's correction evaluated at t_min then divides that snap by a tiny sigma and
# overshoots (25 Heun steps leave samples ~0.25 from the points; 50 DDIM steps land within ~0.01). Steps
# uniform in log-SNR: the snap happens once sigma/alpha falls below the points' spacing (~0.03 at N = 2,000 on
# moons), and a uniform-t grid takes too few steps there (median distance of the ideal denoiser's samples to
# the 2,000 points 0.017 with it, 0.009 with this grid, against 0.008 for the sampler's final noise alone).
MEMO_SAMPLER, MEMO_STEPS, MEMO_GRID = "ddim", 50, "uniform_logsnr"
EXACT_COLOR, LEARNED_COLOR, XT_COLOR, TRAIN_COLOR = PALETTE[0], PALETTE[5], PALETTE[7], PALETTE[7]


from .threads import one_thread  # noqa: E402,F401  (re-exported for the pages)


# --- the exact posterior over clean points -----------------------------------------------------

def clean_log_prob_grid(dist, label=None, n: int = 121, extent: float = EXTENT):
    """(xs [n], log p0(x0) [n, n]) on a square grid of clean points; [i, j] is at (xs[j], xs[i]). Once per data set."""
    xs, pts = square_grid(n, extent)
    return xs, dist.log_prob(pts, 1.0, 0.0, label).numpy().reshape(n, n)


def posterior_grid(dist, xs, log_p0, alpha: float, sigma: float, xt, label=None) -> np.ndarray:
    """p(x0 | x_t) on the grid of `clean_log_prob_grid`, normalised exactly by p_t(x_t): [n, n].

    Only the Gaussian likelihood term changes with x_t, so a click costs one pass over the grid.
    """
    xt = np.asarray(xt, dtype=np.float64).reshape(2)
    gx, gy = np.meshgrid(xs, xs)
    sq = (xt[0] - alpha * gx) ** 2 + (xt[1] - alpha * gy) ** 2
    log_lik = -np.log(2 * np.pi * sigma**2) - sq / (2 * sigma**2)
    log_pt = dist.log_prob(torch.tensor(xt[None]), alpha, sigma, label).item()
    return np.exp(log_p0 + log_lik - log_pt)


def grid_mean(xs, post) -> np.ndarray:
    """The mean of a density given on the grid (Riemann sums): [2]."""
    gx, gy = np.meshgrid(xs, xs)
    z = post.sum()
    return np.array([(gx * post).sum() / z, (gy * post).sum() / z])


def posterior_summary(dist, alpha: float, sigma: float, xt, label=None) -> dict:
    """Exact facts about p(x0 | x_t) from the mixture posterior: its mean, its spread
    sqrt(E|x0 - mean|^2 / 2) (per coordinate), and how many components carry 90% of its mass."""
    x = torch.tensor(np.asarray(xt, dtype=np.float64).reshape(1, 2))
    w, m, s = dist.posterior(x, alpha, sigma, label)
    w, m, s = w[0], m[0], s[0]
    mean = (w[:, None] * m).sum(0)
    second = (w * ((m - mean) ** 2).sum(-1)).sum() + (w * 2 * s**2).sum()
    ws = torch.sort(w, descending=True).values
    k90 = int((torch.cumsum(ws, 0) < 0.9).sum().item()) + 1
    return {"mean": mean.numpy(), "spread": float(torch.sqrt(second / 2)), "components_90": k90,
            "components": int(w.shape[0])}


def noisy_density(dist, alpha: float, sigma: float, label=None, n: int = 40, extent: float = EXTENT):
    """(xs, p_t [n, n]) of the noisy data on a grid covering `extent` (the picking view)."""
    xs, _, p = density_grid(dist, alpha, sigma, n=n, extent=extent, label=label)
    return xs, p


def pick_grid(half: float = PICK_RANGE, step: float = PICK_STEP) -> np.ndarray:
    """The faint clickable points, in slider units: [M, 2]."""
    return mesh_points(np.arange(-half, half + 1e-9, step))


def _square(fig, extent, row=None, col=None, ylabel="x₂", xlabel="x₁", anchor="x"):
    fig.update_xaxes(range=[-extent, extent], title_text=xlabel, constrain="domain", row=row, col=col)
    fig.update_yaxes(range=[-extent, extent], title_text=ylabel, scaleanchor=anchor, constrain="domain",
                     row=row, col=col)


def pick_values(xs, p_t, grid_u, scale: float, xt, t: float) -> tuple[list[dict], dict]:
    """What changes in `pick_figure` with t and x_t: per-trace data (its three traces, in order) and layout."""
    extent = float(xs[-1])
    g = np.asarray(grid_u) * scale
    traces = [{"x": xs, "y": xs, "z": p_t}, {"x": g[:, 0], "y": g[:, 1]},
              {"x": [float(xt[0])], "y": [float(xt[1])]}]
    layout = {"title": {"text": f"Noisy data p_t at t = {t:.2f}: click a point", "font": {"size": 18}},
              "xaxis": {"range": [-extent, extent]}, "yaxis": {"range": [-extent, extent]}}
    return traces, layout


def pick_figure(xs, p_t, grid_u, scale: float, xt, t: float, height: int = 520):
    """The noisy data p_t (grey) with a faint grid of clickable points and the chosen x_t.

    The clickable trace is trace 1; its points sit at scale * grid_u.
    """
    fig = go.Figure()
    fig.add_trace(go.Heatmap(colorscale=DENSITY_SCALE, showscale=False, hoverinfo="skip", zsmooth="best"))
    fig.add_trace(go.Scatter(mode="markers", name="click to choose x_t", marker=dict(size=7, color="rgba(0,114,178,0.13)"),
                             hovertemplate="x_t = (%{x:.2f}, %{y:.2f})<extra>click</extra>"))
    fig.add_trace(go.Scatter(mode="markers", name="chosen x_t",
                             marker=dict(size=15, color=XT_COLOR, symbol="cross", line=dict(width=1, color="white")),
                             hoverinfo="skip"))
    traces, layout = pick_values(xs, p_t, grid_u, scale, xt, t)
    for tr, values in zip(fig.data, traces):
        tr.update(values)
    _square(fig, float(xs[-1]), xlabel="x₁ (noisy)", ylabel="x₂ (noisy)")
    fig.update_layout(height=height, font=FONT, plot_bgcolor="white", margin=dict(l=60, r=10, t=60, b=50),
                      showlegend=False, clickmode="event+select", dragmode=False, title=layout["title"])
    return fig


def posterior_values(xs, post, xt, alpha: float, sigma: float, exact_x0, learned_x0=None) -> list[dict]:
    """The per-trace data of `posterior_figure` (its five traces, in order): what changes with x_t."""
    extent = float(xs[-1])
    c = np.asarray(xt, dtype=float) / alpha
    r = 2 * sigma / alpha
    a = np.linspace(0, 2 * np.pi, 90)
    ring = (c[0] + r * np.cos(a), c[1] + r * np.sin(a)) if r < 4 * extent else ([], [])
    inside = bool(np.all(np.abs(c) <= extent))
    return [{"z": post},
            {"x": ring[0], "y": ring[1]},
            {"x": [c[0]] if inside else [], "y": [c[1]] if inside else []},
            {"x": [float(exact_x0[0])], "y": [float(exact_x0[1])]},
            {"x": [] if learned_x0 is None else [float(learned_x0[0])],
             "y": [] if learned_x0 is None else [float(learned_x0[1])],
             "showlegend": learned_x0 is not None}]


def posterior_figure(xs, post, xt, alpha: float, sigma: float, exact_x0, learned_x0=None, height: int = 520):
    """Heat map of p(x0 | x_t) over clean points, with x_t / alpha (the likelihood's centre, ring at
    radius 2 sigma / alpha), the ideal denoiser E[x0 | x_t] and the network's x0_hat."""
    extent = float(xs[-1])
    fig = go.Figure()
    fig.add_trace(go.Heatmap(x=xs, y=xs, colorscale=DENSITY_SCALE, showscale=False,
                             hovertemplate="p(x₀ | x_t) = %{z:.3g}<extra></extra>"))
    fig.add_trace(go.Scatter(mode="lines", name="x_t/α ± 2σ/α", line=dict(color=XT_COLOR, width=1.5, dash="dot"),
                             hoverinfo="skip"))
    fig.add_trace(go.Scatter(mode="markers", name="x_t / α", marker=dict(size=14, color=XT_COLOR, symbol="cross"),
                             hovertemplate="x_t/α = (%{x:.2f}, %{y:.2f})<extra></extra>"))
    fig.add_trace(go.Scatter(mode="markers", name="Exact E[x₀ | x_t]",
                             marker=dict(size=20, color=EXACT_COLOR, symbol="star", line=dict(width=1, color="white")),
                             hovertemplate="exact (%{x:.2f}, %{y:.2f})<extra></extra>"))
    fig.add_trace(go.Scatter(mode="markers", name="Learned x̂₀",
                             marker=dict(size=15, color=LEARNED_COLOR, symbol="diamond-open", line=dict(width=3)),
                             hovertemplate="learned (%{x:.2f}, %{y:.2f})<extra></extra>"))
    for tr, values in zip(fig.data, posterior_values(xs, post, xt, alpha, sigma, exact_x0, learned_x0)):
        tr.update(values)
    _square(fig, extent, xlabel="x₁ (clean)", ylabel="x₂ (clean)")
    fig.update_layout(height=height + 50, font=FONT, plot_bgcolor="white", margin=dict(l=60, r=10, t=60, b=130),
                      title=dict(text="Exact posterior p(x₀ | x_t) over clean points", font=dict(size=18)),
                      legend=dict(orientation="h", x=0.5, xanchor="center", y=0, yanchor="bottom", yref="container",
                                  font=dict(size=15)))  # at the figure's foot, under the x title
    return fig


# --- the denoiser field over a t grid ---------------------------------------------------------------

def field_times(schedule, count: int = 21) -> np.ndarray:
    """count times spread evenly over the schedule's t range (ends included, rounded to 0.01 inside)."""
    lo, hi = schedule.t_range
    ts = np.linspace(0.0, 1.0, count)
    ts[0], ts[-1] = lo, hi
    return np.clip(np.round(ts, 2), lo, hi)


def field_points(n: int = 11, extent: float = 2.7) -> np.ndarray:
    """The x_t grid of the denoiser field: [n * n, 2]."""
    return mesh_points(np.linspace(-extent, extent, n))


@torch.no_grad()
def denoiser_field(model, points, ts, label=None) -> np.ndarray:
    """x0_hat = model(x_t, t, label) for every x_t in `points` and every t: [T, M, 2]."""
    x = torch.as_tensor(points, dtype=torch.float32)
    out = [model(x, float(t), label).double().numpy() for t in ts]
    return np.stack(out)


def field_data(dist, oracle, model, ts, label=None):
    """What the field figure shows: (x_t points, exact field, learned field or None, clean density on a 70-grid)."""
    with one_thread():
        points = field_points()
        exact = denoiser_field(oracle, points, ts, label)
        learned = None if model is None else denoiser_field(model, points, ts, label)
        _, _, p0 = density_grid(dist, 1.0, 0.0, n=70, label=label)
    return points, exact, learned, p0


def field_figure(points, exact, learned, ts, active: int, xs=None, p0=None, extent: float = EXTENT,
                 height: int = 560):
    """Two panels, Exact and Learned: an arrow from each x_t to its x0_hat, one animation frame per t."""
    cols = 1 if learned is None else 2
    titles = ["Exact: x_t → E[x₀ | x_t]"] + (["Learned: x_t → x̂₀"] if cols == 2 else [])
    fig = make_subplots(rows=1, cols=cols, subplot_titles=titles, horizontal_spacing=0.06)
    fields = [exact] + ([learned] if cols == 2 else [])
    colors = [EXACT_COLOR, LEARNED_COLOR]
    for j in range(1, cols + 1):
        if p0 is not None:
            fig.add_trace(go.Heatmap(x=xs, y=xs, z=p0, colorscale=DENSITY_SCALE, showscale=False, hoverinfo="skip",
                                     opacity=0.6), row=1, col=j)
    arrow_idx = []

    def arrows(k):
        out = []
        for j, f in enumerate(fields):
            d = f[k] - points
            out.append(quiver(points[:, 0], points[:, 1], d[:, 0], d[:, 1], color=colors[j], arrow=0.25,
                              width=1.3, name=titles[j], showlegend=False))
        return out

    for j, tr in enumerate(arrows(active), start=1):
        fig.add_trace(tr, row=1, col=j)
        arrow_idx.append(len(fig.data) - 1)
    for j in range(1, cols + 1):
        fig.add_trace(go.Scatter(x=points[:, 0], y=points[:, 1], mode="markers", marker=dict(size=4, color=XT_COLOR),
                                 name="x_t", showlegend=False, hoverinfo="skip"), row=1, col=j)
        _square(fig, extent, row=1, col=j, anchor=f"x{j if j > 1 else ''}", ylabel="x₂" if j == 1 else None)
    names = [f"{t:.2f}" for t in ts]
    fig.frames = [go.Frame(data=arrows(k), traces=arrow_idx, name=names[k]) for k in range(len(ts))]
    add_player(fig, names, active=active)
    fig.layout.sliders[0].pad.t = 75  # below the x-axis titles
    fig.layout.updatemenus[0].pad.t = 85
    fig.update_layout(height=height, font=FONT, plot_bgcolor="white", margin=dict(l=60, r=10, t=60, b=40))
    fig.update_annotations(font_size=18)
    return fig


# --- memorising versus generalising ---------------------------------------------------------------

def training_set(dist, n: int, seed: int = 0):
    """N training points drawn from the whole distribution: (points [N, 2] float64, labels [N])."""
    x, y = dist.sample(n, generator=torch.Generator().manual_seed(seed))
    return x.double(), y


def memoriser(dist, points, labels):
    """The finite set as a mixture of point masses: its `denoise` is the ideal denoiser of the training set."""
    return finite_set(points, labels, dist.label_names, bandwidth=0.0, name=f"{len(points)} training points")


def nearest_distance(x, train) -> np.ndarray:
    """For each row of x, the distance to its nearest training point: [B]."""
    x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    return torch.cdist(x, torch.as_tensor(train, dtype=torch.float64)).min(1).values.numpy()


@torch.no_grad()
def sample_from(model, schedule, noise, label=None, sampler: str = MEMO_SAMPLER, steps: int = MEMO_STEPS,
                grid: str = MEMO_GRID):
    """Samples of `model` (model(x, t, label) -> x0_hat) from the given noise at t_max: [B, 2] numpy."""
    return sample(guided(model, label, 0.0), noise.clone(), schedule, sampler, steps, grid).double().numpy()


def shared_noise(schedule, n: int, seed: int = 0):
    return prior_sample(schedule, (n, 2), generator=torch.Generator().manual_seed(seed))


MEMO_NAMES = {"ideal": "Ideal denoiser of the N points", "net": "Network trained on the N points",
              "true": "Fresh samples of p(x)"}
MEMO_COLORS = {"ideal": PALETTE[2], "net": LEARNED_COLOR, "true": EXACT_COLOR}


def memorisation_figure(train, samples: dict, extent: float = EXTENT, height: int = 470):
    """One panel per sampler in `samples` ({'ideal' | 'net' | 'true': [B, 2]}), each over the training points
    (open circles)."""
    panels = [(MEMO_NAMES[k], x, MEMO_COLORS[k]) for k, x in samples.items()]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[0] for p in panels], horizontal_spacing=0.04)
    for j, (name, x, color) in enumerate(panels, start=1):
        fig.add_trace(go.Scatter(x=train[:, 0], y=train[:, 1], mode="markers", name="training points",
                                 marker=dict(size=13 if len(train) <= 64 else 6, color=TRAIN_COLOR, symbol="circle-open",
                                             line=dict(width=1.5)),
                                 showlegend=j == 1, hovertemplate="training (%{x:.2f}, %{y:.2f})<extra></extra>"),
                      row=1, col=j)
        fig.add_trace(go.Scattergl(x=x[:, 0], y=x[:, 1], mode="markers", name=f"{name}: samples",
                                   marker=dict(size=4, color=color, opacity=0.6), showlegend=False,
                                   hovertemplate="(%{x:.2f}, %{y:.2f})<extra></extra>"), row=1, col=j)
        _square(fig, extent, row=1, col=j, anchor=f"x{j if j > 1 else ''}", ylabel="x₂" if j == 1 else None)
        fig.update_yaxes(showticklabels=j == 1, row=1, col=j)
    fig.update_layout(height=height + 40, font=FONT, plot_bgcolor="white", margin=dict(l=60, r=10, t=60, b=100),
                      legend=dict(orientation="h", x=0.5, xanchor="center", y=0, yanchor="bottom", yref="container"))
    fig.update_annotations(font_size=18)
    return fig


def distance_curve_figure(ns, curves: dict, current: int | None = None, height: int = 500):
    """Median distance to the nearest training point against N (log-log), one line per sampler in `curves`
    ({'ideal' | 'net' | 'true': [len(ns)]})."""
    fig = go.Figure()
    for key, ys in curves.items():
        fig.add_trace(go.Scatter(x=list(ns), y=list(ys), mode="lines+markers", name=MEMO_NAMES[key],
                                 line=dict(color=MEMO_COLORS[key], width=3), marker=dict(size=8),
                                 hovertemplate="N = %{x}: %{y:.3f}<extra>" + MEMO_NAMES[key] + "</extra>"))
    lo = min(min(ys) for ys in curves.values()) / 1.5
    hi = max(max(ys) for ys in curves.values()) * 1.5
    if current is not None:
        fig.add_trace(go.Scatter(x=[current, current], y=[lo, hi], mode="lines", name=f"N = {current}",
                                 line=dict(color="#999999", width=1.5, dash="dash"), hoverinfo="skip",
                                 showlegend=False))
    ticks = [m * 10.0**e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1) for m in (1, 3)]
    ticks = [y for y in ticks if lo <= y <= hi]
    fig.update_layout(height=height, font=FONT, plot_bgcolor="white", margin=dict(l=70, r=20, t=50, b=125),
                      title=dict(text="Median distance to the nearest training point", font=dict(size=17)),
                      xaxis=dict(type="log", title="training set size N", gridcolor="#e5e5e5", tickvals=list(ns),
                                 ticktext=[str(n) for n in ns], tickangle=0, tickfont=dict(size=13)),
                      yaxis=dict(type="log", title="distance (log scale)", gridcolor="#e5e5e5",
                                 range=[math.log10(lo), math.log10(hi)], tickvals=ticks,
                                 ticktext=[f"{y:g}" for y in ticks]),
                      legend=dict(orientation="h", x=0, xanchor="left", y=0, yanchor="bottom", yref="container",
                                  font=dict(size=14)))
    return fig
