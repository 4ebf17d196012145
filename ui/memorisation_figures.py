"""Page 6's memorisation experiment, the part without files (no Streamlit here): the N training points, the
ideal denoiser of that finite set, the fixed sampler, distances to the points, and the two figures.

The ideal denoiser of a finite training set (the set as a mixture of point masses) can only return training
points. A network trained on the same points samples from the same noise beside it, and fresh samples of the
true distribution are the yardstick. The networks and the stored samples are ui/memorisation.py's.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from diffusion.samplers import guided, sample
from toy_data import finite_set

from .figures import EXACT_COLOR, EXTENT, FONT, LEARNED_COLOR, PALETTE, square_axes

# The memorisation experiment's fixed sampler. Not Heun: a finite set's ideal denoiser snaps to the nearest
# point as sigma -> 0, and Heun's correction evaluated at t_min then divides that snap by a tiny sigma and
# overshoots (25 Heun steps leave samples ~0.25 from the points; 50 DDIM steps land within ~0.01). Steps
# uniform in log-SNR: the snap happens once sigma/alpha falls below the points' spacing (~0.03 at N = 2,000 on
# moons), and a uniform-t grid takes too few steps there (median distance of the ideal denoiser's samples to
# the 2,000 points 0.017 with it, 0.009 with this grid, against 0.008 for the sampler's final noise alone).
MEMO_SAMPLER, MEMO_STEPS, MEMO_GRID = "ddim", 50, "uniform_logsnr"
TRAIN_COLOR = PALETTE[7]


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
        square_axes(fig, extent, row=1, col=j, anchor=f"x{j if j > 1 else ''}", ylabel="x₂" if j == 1 else None)
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
