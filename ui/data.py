"""Builders for page 1 (data and prompts): pure functions, no Streamlit.

A label plays the part of a text prompt: it does not pick one point, it picks a distribution of
points, p(x | c). Here everything about that distribution is exact (a Gaussian mixture), so the
pictures compare samples with the true densities, and the learned model's samples with both.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from diffusion.samplers import guided, prior_sample, sample

from .figures import DENSITY_SCALE, EXTENT, FONT, PALETTE, density_grid

LEARNED_SAMPLER, LEARNED_STEPS = "heun", 25  # the fixed sampler of this page (2 x 25 network calls)


def class_prior(dist) -> np.ndarray:
    """p(c): the total mixture weight of each label's components, [C], summing to 1."""
    w = torch.zeros(dist.num_classes, dtype=torch.float64)
    w.index_add_(0, dist.labels, dist.weights)
    return w.numpy()


def exact_samples(dist, n: int, label=None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n points from p(x) (label None) or p(x | label): (x [n, 2], labels [n])."""
    x, y = dist.sample(n, label, generator=torch.Generator().manual_seed(seed))
    return x.numpy(), y.numpy()


def learned_samples(model, schedule, n: int, label=None, seed: int = 0, sampler: str = LEARNED_SAMPLER,
                    steps: int = LEARNED_STEPS) -> np.ndarray:
    """n samples of the learned model for `label` (None: unconditional), from seeded Gaussian noise: [n, 2]."""
    g = torch.Generator().manual_seed(seed)
    x = prior_sample(schedule, (n, 2), generator=g)
    with torch.no_grad():
        out = sample(guided(model, label, 0.0), x, schedule, sampler, steps, generator=g)
    return out.float().numpy()


def draw_from_pool(pool: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n rows of `pool` chosen at random without replacement (seeded): a fresh draw from i.i.d. samples."""
    idx = np.random.default_rng(seed).choice(len(pool), size=min(n, len(pool)), replace=False)
    return pool[idx]


def prompt_hit_rate(dist, x: np.ndarray, label: int) -> float:
    """The fraction of points x whose most responsible component (under p0) carries `label`."""
    if len(x) == 0:
        return float("nan")
    return float((dist.nearest_label(torch.as_tensor(x, dtype=torch.float64)) == label).double().mean())


def density_grids(dist, label=None, n: int = 90, extent: float = EXTENT):
    """(xs, p(x) [n, n], p(x | label) [n, n] or None): the exact clean densities on a square grid."""
    xs, _, p = density_grid(dist, 1.0, 0.0, n=n, extent=extent)
    pc = None if label is None else density_grid(dist, 1.0, 0.0, n=n, extent=extent, label=label)[2]
    return xs, p, pc


def _samples(dist, x, y) -> list[dict]:
    """One {x, y} per label: the rows of x carrying that label (empty where none do)."""
    out = []
    for c in range(dist.num_classes):
        m = y == c
        out.append({"x": x[m, 0], "y": x[m, 1]} if x is not None else {"x": [], "y": []})
    return out


def prompt_values(dist, all_x, all_y, cond_x, cond_y, learned_x=None, learned_y=None,
                  panels: int | None = None, prompted: bool | None = None) -> dict[int, dict]:
    """What changes from one draw to the next in `prompt_figure`: {trace index: {x, y}} for its sample traces.
    The panels are p(x), then p(x | c) when there is a prompt (default: when cond_x is given), then the
    learned samples; `panels`: how many the figure has (default: all of these, the learned one only with
    learned_x)."""
    prompted = cond_x is not None if prompted is None else prompted
    seq = [(all_x, all_y)] + ([(cond_x, cond_y)] if prompted else []) + [(learned_x, learned_y)]
    seq = seq[:panels or (len(seq) if learned_x is not None else len(seq) - 1)]
    first = len(seq)  # the heat maps come first, one per panel
    updates = {}
    for j, (x, y) in enumerate(seq):
        for c, values in enumerate(_samples(dist, x, y)):
            updates[first + j * dist.num_classes + c] = values
    return updates


def prompt_figure(dist, xs, p, pc, label, all_x, all_y, cond_x, cond_y, learned_x=None, learned_y=None,
                  extent: float = EXTENT, height: int = 470, learned_panel: bool | None = None):
    """Square panels: p(x) with samples coloured by label; with a prompt c, the exact p(x | c) with its
    samples; the learned model's samples for the same prompt (over the same exact density). No learned panel
    when learned_x is None (unless learned_panel says otherwise). Traces: the heat maps, then one scatter per
    (panel, label), in that order (see `prompt_values`)."""
    titles = ["Whole distribution p(x)"]
    zs = [p]
    if label is not None:
        titles.append(f"Exact p(x | c), c = {dist.label_names[label]}")
        zs.append(pc)
    if learned_panel or (learned_panel is None and learned_x is not None):
        titles.append("Learned samples, no prompt" if label is None else
                      f"Learned samples, c = {dist.label_names[label]}")
        zs.append(p if pc is None else pc)
    cols = len(titles)
    fig = make_subplots(rows=1, cols=cols, subplot_titles=titles, horizontal_spacing=0.04)
    for j, z in enumerate(zs, start=1):
        fig.add_trace(go.Heatmap(x=xs, y=xs, z=z, colorscale=DENSITY_SCALE, showscale=False,
                                 hovertemplate="density %{z:.3g}<extra></extra>"), row=1, col=j)
    for j in range(1, cols + 1):
        for c, cname in enumerate(dist.label_names):
            fig.add_trace(go.Scattergl(mode="markers", name=cname, legendgroup=cname, showlegend=j == 1,
                                       marker=dict(size=5, color=PALETTE[c % len(PALETTE)],
                                                   line=dict(width=0.4, color="white")),
                                       hovertemplate=f"{cname}<br>x₁ = %{{x:.2f}}, x₂ = %{{y:.2f}}<extra></extra>"),
                          row=1, col=j)
    for i, values in prompt_values(dist, all_x, all_y, cond_x, cond_y, learned_x, learned_y, panels=cols,
                                   prompted=label is not None).items():
        fig.data[i].update(values)
    for j in range(1, cols + 1):
        fig.update_xaxes(range=[-extent, extent], title_text="x₁", row=1, col=j, constrain="domain")
        fig.update_yaxes(range=[-extent, extent], row=1, col=j, scaleanchor=f"x{j if j > 1 else ''}",
                         title_text="x₂" if j == 1 else None, showticklabels=j == 1, ticks="" if j > 1 else None,
                         constrain="domain")
    fig.update_layout(height=height, margin=dict(l=50, r=10, t=60, b=40), font=FONT, plot_bgcolor="white",
                      legend=dict(orientation="h", x=0.5, xanchor="center", y=-0.3, yanchor="top",
                                  title_text="label (colour): "))
    fig.update_annotations(font_size=17)
    return fig


def prior_figure(dist, prior: np.ndarray, label=None, height: int = 300):
    """p(c) as bars, the prompted label highlighted."""
    names = list(dist.label_names)
    colors = [PALETTE[c % len(PALETTE)] for c in range(len(names))]
    opac = [1.0 if label is None or c == label else 0.35 for c in range(len(names))]
    fig = go.Figure(go.Bar(x=names, y=prior, marker=dict(color=colors, opacity=opac),
                           text=[f"{q:.2f}" for q in prior], textposition="outside",
                           hovertemplate="p(c = %{x}) = %{y:.3f}<extra></extra>"))
    fig.update_layout(height=height, font=FONT, margin=dict(l=60, r=10, t=50, b=40), plot_bgcolor="white",
                      title=dict(text="Class proportions p(c)", font=dict(size=18)),
                      yaxis=dict(title="p(c)", range=[0, max(prior) * 1.3], gridcolor="#dddddd"),
                      xaxis=dict(title="label c"))
    return fig
