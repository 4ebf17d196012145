"""Page 2's energy heads: a network that outputs E_theta(x, t) itself, its Z_theta(t) on the grid, and how
that Z_theta moved while the network trained (the log Z_theta history diffusion.train records).

The shipped heads live in checkpoints/energy/<dataset>.safetensors (python -m checkpoints.build energy-heads).
"""

from __future__ import annotations

import os

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from diffusion.checkpoints import CheckpointError, load_checkpoint
from diffusion.likelihood import log_z_grid
from diffusion.metrics import relative_score_error

from .energy import raw_energy, raw_energy_figure
from .figures import FONT, PALETTE
from .threads import one_thread

FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "checkpoints", "energy")
GRID_NS = (8, 16, 32, 64, 128)  # cells per axis of the convergence figure (128: settled to ~1e-5 on moons)
SCORE_POINTS = 2000  # exact p_t samples the score's relative error is measured on


def shipped_datasets(folder: str = FOLDER) -> list[str]:
    """The datasets with a shipped energy head (a <dataset>.safetensors in `folder`)."""
    if not os.path.isdir(folder):
        return []
    return sorted(f.removesuffix(".safetensors") for f in os.listdir(folder) if f.endswith(".safetensors"))


@st.cache_resource(show_spinner=False)
def shipped_head(dataset: str, folder: str = FOLDER):
    """(model, config) of the shipped energy head for `dataset`, or (None, {'error': ...}) (shared, read-only)."""
    path = os.path.join(folder, f"{dataset}.safetensors")
    if not os.path.exists(path):
        return None, {"error": f"{path} is missing (python -m checkpoints.build energy-heads)"}
    try:
        model, config = load_checkpoint(path, expect={"net.arch": "mlp2d", "parameterization": "energy",
                                                      "dataset": dataset})
    except CheckpointError as e:
        return None, {"error": str(e)}
    model.requires_grad_(False)
    return model, {**config, "source": "shipped"}


def log_z_convergence(model, t: float, label=None, ns=GRID_NS, half: float = 3.0) -> dict:
    """{n: log Z_theta(t) on n x n cells over [-half, half]^2}: the grid estimate settling as the grid grows."""
    with one_thread():
        return {int(n): log_z_grid(model, t, label, n=int(n), half=half) for n in ns}


def head_numbers(model, dist, t: float, label=None, n: int = 40, half: float = 3.0) -> dict:
    """What page 2 shows of an energy head at t: raw E_theta on an n x n grid over [-half, half]^2 (xs, E),
    log Z_theta by grids of growing size over that box (convergence; its finest is log_z), and the relative error
    of its score -grad E_theta on SCORE_POINTS points of the exact p_t (diffusion.metrics.relative_score_error)."""
    xs, E, _ = raw_energy(model, t, label, n, half)
    conv = log_z_convergence(model, t, label, half=half)
    with one_thread():
        err = relative_score_error(model, dist, model.schedule, (t,), SCORE_POINTS, label=label)[f"{t:g}"]
    return {"xs": xs, "E": E, "convergence": conv, "log_z": conv[max(conv)], "score_error": err}


def head_figures(numbers: dict, t: float, history: dict | None, xs_exact, E_exact) -> tuple[go.Figure, go.Figure]:
    """(raw E_theta beside E_theta + log Z_theta on the exact map's colours, z_figure)."""
    return (raw_energy_figure(numbers["xs"], numbers["E"], numbers["log_z"], E_exact, xs_exact),
            z_figure(numbers["convergence"], t, history))


def history_of(info: dict | None) -> dict | None:
    """The log Z_theta history a training run recorded (config["train"]["log_z_history"]), or None."""
    h = ((info or {}).get("train") or {}).get("log_z_history")
    return h if h and h.get("steps") else None


def drift(history: dict, last: int = 5) -> dict:
    """{t: (change of log Z_theta(t) over the whole run, its spread over the last `last` records)}."""
    out = {}
    for j, t in enumerate(history["t"]):
        series = [row[j] for row in history["log_z"]]
        tail = series[-last:]
        out[t] = (series[-1] - series[0], max(tail) - min(tail))
    return out


def drift_sentence(history: dict | None) -> str:
    """How far log Z_theta moved over the recorded training, in words ('' without a history)."""
    if history is None:
        return ""
    return " Over training, log Z_θ moved by " + ", ".join(f"{d:+.2f} at t = {t:g}"
                                                          for t, (d, _) in drift(history).items()) + "."


def z_figure(convergence: dict, t: float, history: dict | None) -> go.Figure:
    """Left: log Z_theta(t) against the grid's cells per axis n. Right: log Z_theta at fixed t's against the
    training step (one line per t), from the recorded history."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, column_widths=[0.4, 0.6],
                        subplot_titles=[f"log Z_θ at t = {t:.2f}, by the grid", "log Z_θ(t) while training"])
    ns = sorted(convergence)
    fig.add_trace(go.Scatter(x=ns, y=[convergence[n] for n in ns], mode="lines+markers", name="grid estimate",
                             line=dict(color=PALETTE[3], width=3), marker=dict(size=9), showlegend=False,
                             hovertemplate="n = %{x}: log Z_θ = %{y:.4f}<extra></extra>"), row=1, col=1)
    fig.update_xaxes(type="log", title_text="cells per axis n", tickvals=ns, row=1, col=1)
    fig.update_yaxes(title_text="log Z_θ", title_standoff=12, nticks=5, tickformat=".4f", automargin=True, row=1,
                     col=1)  # the grid estimates differ only in the 4th or 5th decimal
    if history is not None:
        for j, tt in enumerate(history["t"]):
            fig.add_trace(go.Scatter(x=history["steps"], y=[row[j] for row in history["log_z"]], mode="lines",
                                     name=f"t = {tt:g}", line=dict(color=PALETTE[j % len(PALETTE)], width=3),
                                     hovertemplate=f"t = {tt:g}, step %{{x}}: log Z_θ = %{{y:.3f}}<extra></extra>"),
                          row=1, col=2)
        fig.update_xaxes(title_text="training step", row=1, col=2)
        fig.update_yaxes(title_text="log Z_θ(t)", row=1, col=2)
    else:
        fig.add_annotation(text="this model has no recorded history", showarrow=False, font=FONT,
                           xref="x2 domain", yref="y2 domain", x=0.5, y=0.5)
    fig.update_layout(height=460, font=FONT, plot_bgcolor="white", margin=dict(l=70, r=20, t=60, b=60),
                      legend=dict(x=1.0, y=1.0, xanchor="right", bgcolor="rgba(255,255,255,0.85)"))
    fig.update_xaxes(gridcolor="#e5e5e5")
    fig.update_yaxes(gridcolor="#e5e5e5")
    return fig
