"""Page 6's denoising field (no Streamlit here): an arrow from each x_t of a grid to the denoiser's answer x0_hat,
for the exact E[x0 | x_t] and for the learned model, one animation frame per t."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from .figures import (DENSITY_SCALE, EXACT_COLOR, EXTENT, FONT, LEARNED_COLOR, XT_COLOR, add_player, density_grid,
                      mesh_points, quiver, square_axes)
from .threads import one_thread


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
        square_axes(fig, extent, row=1, col=j, anchor=f"x{j if j > 1 else ''}", ylabel="x₂" if j == 1 else None)
    names = [f"{t:.2f}" for t in ts]
    fig.frames = [go.Frame(data=arrows(k), traces=arrow_idx, name=names[k]) for k in range(len(ts))]
    add_player(fig, names, active=active)
    fig.layout.sliders[0].pad.t = 75  # below the x-axis titles
    fig.layout.updatemenus[0].pad.t = 85
    fig.update_layout(height=height, font=FONT, plot_bgcolor="white", margin=dict(l=60, r=10, t=60, b=40))
    fig.update_annotations(font_size=18)
    return fig
