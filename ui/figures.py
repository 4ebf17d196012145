"""Figure builders: pure functions from core objects to plotly figures (testable without a running app)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

# Okabe & Ito's colour-blind-safe palette.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
DENSITY_SCALE = [[0.0, "#ffffff"], [1.0, "#5a5a5a"]]  # density in grey, so coloured points stay readable
FONT = dict(size=16)
EXTENT = 3.0  # the toy sets are standardised: [-3, 3]^2 holds nearly all the mass at t = 0


def density_grid(dist, alpha, sigma, n: int = 100, extent: float = EXTENT, label=None):
    """(xs [n], ys [n], p [n, n]) of the exact density p_t on a square grid; p[i, j] is at (xs[j], ys[i])."""
    xs = np.linspace(-extent, extent, n)
    gx, gy = np.meshgrid(xs, xs)
    pts = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], -1))
    logp = dist.log_prob(pts, alpha, sigma, label).numpy().reshape(n, n)
    return xs, xs, np.exp(logp)


def forward_panels(dist, schedule, ts, n_points: int = 600, seed: int = 0, extent: float = EXTENT):
    """One panel per t: the exact density of p_t as a heat map, with samples x_t = alpha x0 + sigma eps on top."""
    g = torch.Generator().manual_seed(seed)
    x0, y = dist.sample(n_points, generator=g)
    eps = torch.randn(x0.shape, generator=g)
    titles = []
    for t in ts:
        lam = round(schedule.logsnr(t).item(), 1)
        titles.append(f"t = {t:.2f}<br>log-SNR λ = {lam + 0.0:.1f}")
    fig = make_subplots(rows=1, cols=len(ts), subplot_titles=titles, horizontal_spacing=0.02)
    for j, t in enumerate(ts, start=1):
        alpha, sigma = schedule.alpha_sigma(t)
        # Zoom out with the noise so the cloud stays in view (VE schedules reach sigma = 80).
        half = extent * max(1.0, float(torch.sqrt(alpha**2 + sigma**2)))
        xs, ys, p = density_grid(dist, alpha, sigma, n=80, extent=half)
        fig.add_trace(go.Heatmap(x=xs, y=ys, z=p, colorscale=DENSITY_SCALE, showscale=False,
                                 hovertemplate="p_t = %{z:.3g}<extra></extra>"), row=1, col=j)
        xt = (alpha * x0 + sigma * eps).numpy()
        for c in range(dist.num_classes):
            m = (y == c).numpy()
            fig.add_trace(go.Scattergl(x=xt[m, 0], y=xt[m, 1], mode="markers", name=dist.label_names[c],
                                       legendgroup=str(c), showlegend=j == 1,
                                       marker=dict(size=4, color=PALETTE[c % len(PALETTE)],
                                                   line=dict(width=0.3, color="white"))), row=1, col=j)
        fig.update_xaxes(range=[-half, half], row=1, col=j, title_text="x₁")
        fig.update_yaxes(range=[-half, half], row=1, col=j, scaleanchor=f"x{j if j > 1 else ''}",
                         showticklabels=j == 1, title_text="x₂" if j == 1 else None)
    fig.update_layout(height=360, margin=dict(l=40, r=10, t=70, b=40), font=FONT,
                      legend=dict(orientation="h", y=-0.25), plot_bgcolor="white")
    return fig
