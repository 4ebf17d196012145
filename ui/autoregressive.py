"""The autoregressive route on page 2: p(x1, x2) = p(x1) p(x2 | x1), exact on the sidebar's mixture
(toy_data.chain_rule), drawn beside the joint it reproduces."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from diffusion.metrics import EnergyReference
from toy_data.chain_rule import chain_rule_sample, conditional_log_prob, marginal_log_prob

from .figures import EXACT_COLOR, EXTENT, FONT, LEARNED_COLOR, PALETTE, patch
from .threads import one_thread

N_SAMPLES = 2000  # points in each scatter
N_RATIO = 1000  # of them, in the energy-distance comparison (a fifth of the cost of 2,000 on the page's first open)
N_CONTROLS = 6  # exact samples scored the same way, for the spread a perfect sampler's ratio shows
CURVE_POINTS = 601
A_RANGE = (-2.5, 2.5)  # the slider's range for x1 = a (the standardised sets live within about +-2.5)


def chain_rule_samples(dist, label=None, n: int = N_SAMPLES, seed: int = 0) -> dict:
    """Chain-rule samples, samples of the joint, and the energy-distance ratio of the former against the joint
    (with the spread of exact samples' own ratios, so the number can be read)."""
    with one_thread():
        g = torch.Generator().manual_seed(seed)
        chain = chain_rule_sample(dist, n, label=label, generator=g).float()
        joint = dist.sample(n, label=label, generator=g)[0]
        ref = EnergyReference(dist, min(n, N_RATIO), label=label, seed=seed + 1)
        controls = ref.controls(N_CONTROLS)
        return {"chain": chain.numpy(), "joint": joint.numpy(), "ratio": ref.ratio(chain[:ref.n]),
                "controls": (min(controls), max(controls))}


def curves(dist, a: float, label=None, half: float = EXTENT) -> dict:
    """p(x1) and p(x2 | x1 = a) on a line over [-half, half]."""
    x = torch.linspace(-half, half, CURVE_POINTS, dtype=torch.float64)
    return {"x": x.numpy(), "p_x1": torch.exp(marginal_log_prob(dist, x, label=label)).numpy(),
            "p_x2_given_a": torch.exp(conditional_log_prob(dist, x, a, label=label)).numpy()}


def chain_rule_figure(c: dict, samples: dict, a: float, half: float = EXTENT) -> go.Figure:
    """p(x1) with the line x1 = a; p(x2 | x1 = a); the chain rule's samples beside the joint's, both with that line."""
    fig = make_subplots(rows=1, cols=4, horizontal_spacing=0.07, column_widths=[0.22, 0.22, 0.28, 0.28],
                        subplot_titles=["p(x₁)", _title(a), "p(x₁) then p(x₂ | x₁)", "the joint p(x₁, x₂)"])
    x = c["x"]
    fig.add_trace(go.Scatter(x=x, y=c["p_x1"], mode="lines", line=dict(color=EXACT_COLOR, width=3), name="p(x₁)",
                             hovertemplate="x₁ = %{x:.2f}: %{y:.3f}<extra></extra>"), row=1, col=1)
    p_a = float(np.interp(a, x, c["p_x1"]))
    fig.add_trace(go.Scatter(x=[a, a], y=[0, p_a], mode="lines+markers", line=dict(color=LEARNED_COLOR, width=3),
                             marker=dict(size=[0, 10]), name="x₁ = a", hoverinfo="skip"), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=c["p_x2_given_a"], mode="lines", line=dict(color=LEARNED_COLOR, width=3),
                             name="p(x₂ | x₁ = a)", hovertemplate="x₂ = %{x:.2f}: %{y:.3f}<extra></extra>"),
                  row=1, col=2)
    for col, pts, colour in ((3, samples["chain"], PALETTE[2]), (4, samples["joint"], EXACT_COLOR)):
        fig.add_trace(go.Scattergl(x=pts[:, 0], y=pts[:, 1], mode="markers", marker=dict(size=3, color=colour,
                                   opacity=0.5), hoverinfo="skip", name="samples"), row=1, col=col)
        fig.add_trace(go.Scatter(x=[a, a], y=[-half, half], mode="lines", hoverinfo="skip", name="x₁ = a",
                                 line=dict(color=LEARNED_COLOR, width=2, dash="dash")), row=1, col=col)
        fig.update_xaxes(range=[-half, half], title_text="x₁", row=1, col=col)
        fig.update_yaxes(range=[-half, half], title_text="x₂", scaleanchor=f"x{col}", constrain="domain",
                         row=1, col=col)
    fig.update_xaxes(title_text="x₁", range=[-half, half], row=1, col=1)
    fig.update_xaxes(title_text="x₂", range=[-half, half], row=1, col=2)
    fig.update_yaxes(title_text="density", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    fig.update_layout(height=460, font=FONT, plot_bgcolor="white", showlegend=False,
                      margin=dict(l=60, r=20, t=60, b=60))
    fig.update_xaxes(gridcolor="#e5e5e5")
    fig.update_yaxes(gridcolor="#e5e5e5")
    return fig


def _title(a: float) -> str:
    return f"p(x₂ | x₁ = {a:.2f})"


A_TRACES = (1, 2, 4, 6)  # the traces of chain_rule_figure that move with a: the marker on p(x1), p(x2 | a), two lines


def at_a(spec: dict, c: dict, a: float, half: float = EXTENT) -> dict:
    """chain_rule_figure's dict (`spec`, drawn at any a) moved to x1 = a, with `c` = curves(dist, a): the same
    figure chain_rule_figure(c, samples, a) draws, for the price of four short traces (no rebuild)."""
    p_a = float(np.interp(a, c["x"], c["p_x1"]))
    marker, conditional, line_3, line_4 = A_TRACES
    updates = {marker: {"x": [a, a], "y": [0, p_a]}, conditional: {"y": c["p_x2_given_a"]},
               line_3: {"x": [a, a]}, line_4: {"x": [a, a]}}
    notes = [dict(n) for n in spec["layout"]["annotations"]]
    notes[1]["text"] = _title(a)
    return patch(spec, updates, {"annotations": notes})
