"""Page 6's exact posterior over clean points, and the chart of noisy data where x_t is picked (no Streamlit here).

A noisy point x_t = alpha x0 + sigma eps could have come from many clean points. Bayes' rule gives
the exact posterior over them,

    p(x0 | x_t) = p0(x0) N(x_t; alpha x0, sigma^2 I) / p_t(x_t),

and the best possible denoiser (in squared error) answers its mean E[x0 | x_t]. This module evaluates
that posterior on a grid and draws it beside the noisy data p_t, where a click picks x_t. Its colours for
the exact answer, the learned one and x_t are those of page 6's other figures (ui.denoiser_field,
ui.memorisation_figures).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch

from .figures import (DENSITY_SCALE, EXACT_COLOR, EXTENT, FONT, LEARNED_COLOR, XT_COLOR, density_grid, mesh_points,
                      square_axes, square_grid)

PICK_RANGE = 3.5  # the sliders and the clickable grid span [-PICK_RANGE, PICK_RANGE] (times view_scale)
PICK_STEP = 0.25  # spacing of the clickable grid (a multiple of the sliders' step)


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
    square_axes(fig, float(xs[-1]), xlabel="x₁ (noisy)", ylabel="x₂ (noisy)")
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
    square_axes(fig, extent, xlabel="x₁ (clean)", ylabel="x₂ (clean)")
    fig.update_layout(height=height + 50, font=FONT, plot_bgcolor="white", margin=dict(l=60, r=10, t=60, b=130),
                      title=dict(text="Exact posterior p(x₀ | x_t) over clean points", font=dict(size=18)),
                      legend=dict(orientation="h", x=0.5, xanchor="center", y=0, yanchor="bottom", yref="container",
                                  font=dict(size=15)))  # at the figure's foot, under the x title
    return fig
