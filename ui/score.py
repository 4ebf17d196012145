"""The score field: the numbers and figures of page 3 (no Streamlit here, so they can be tested).

Arrows show sigma_t * score = -eps (the noise the model would subtract), not the raw score: the raw
score grows like 1 / sigma_t as t -> 0 and would swamp the picture, while sigma * score stays of order
one at every t. The exact side comes from the Gaussian mixture, the learned side from `model.score`.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from .figures import DENSITY_SCALE, FONT, PALETTE, add_player, quiver, square_grid, view_half_width
from .threads import one_thread

DIFF_SCALE = [[0.0, "#ffffff"], [1.0, "#D55E00"]]  # white (agree) to vermillion (disagree)
ARROW_CAP = 2.5  # |sigma * score| at which an arrow reaches its full length (one grid cell)
FRAME_TS = tuple(float(t) for t in np.round(np.linspace(0.0, 1.0, 21), 2))


def exact_scaled_score(dist, x: torch.Tensor, alpha: float, sigma: float, label=None) -> np.ndarray:
    """sigma * grad log p_t(x | label) [m, 2] from the exact mixture."""
    return (sigma * dist.score(x.double(), alpha, sigma, label)).numpy()


def learned_scaled_score(model, x: torch.Tensor, t: float, sigma: float, label=None) -> np.ndarray:
    """sigma * the model's score at (x, t) [m, 2]."""
    with torch.no_grad():
        return (sigma * model.score(x.float(), t, label).double()).numpy()


def guided_scaled_score(s_cond: np.ndarray, s_uncond: np.ndarray, w: float) -> np.ndarray:
    """Classifier-free guidance in score terms: s_u + (1 + w)(s_c - s_u) = (1 + w) s_c - w s_u.

    The same combination as diffusion.samplers.guided makes of x0-predictions, since the score is
    affine in x0_hat: s = (alpha x0_hat - x) / sigma^2.
    """
    return s_uncond + (1.0 + w) * (s_cond - s_uncond)


def relative_error(model, dist, schedule, t: float, label=None, n: int = 2000, seed: int = 0) -> float:
    """sqrt(E|s_hat - s|^2 / E|s|^2) over x_t drawn from the exact p_t(x | label) (as in diffusion.metrics)."""
    g = torch.Generator().manual_seed(seed)
    alpha, sigma = (float(a) for a in schedule.alpha_sigma(t))
    x0 = dist.sample(n, label, generator=g)[0]
    xt = (alpha * x0 + sigma * torch.randn(x0.shape, generator=g, dtype=x0.dtype)).float()
    true = dist.score(xt.double(), alpha, sigma, label)
    with torch.no_grad():
        hat = model.score(xt, t, label).double()
    return float((((hat - true) ** 2).sum(-1).mean() / (true**2).sum(-1).mean()).sqrt())


def field_frames(dist, schedule, model=None, label=None, ts=FRAME_TS, n_arrows: int = 15, n_density: int = 40) -> list:
    """For each t: the exact density, the exact and learned sigma*score at arrow points, and their gap.

    Returns a list of dicts with t, alpha, sigma, half, xs (density grid), p [n, n], ax (arrow grid),
    exact [m, 2], learned [m, 2] or None, diff [n, n] = |sigma (s_learned - s_exact)| on the density
    grid or None, rel_error (float or None).
    """
    with one_thread():
        return [_field_frame(dist, schedule, model, label, t, n_arrows, n_density) for t in ts]


def _field_frame(dist, schedule, model, label, t, n_arrows, n_density) -> dict:
    """One frame of field_frames."""
    alpha, sigma = (float(a) for a in schedule.alpha_sigma(t))
    half = view_half_width(alpha, sigma)
    xs, pts = square_grid(n_density, half)
    p = np.exp(dist.log_prob(pts, alpha, sigma, label).numpy()).reshape(n_density, n_density)
    ax, apts = square_grid(n_arrows, half, centred=True)
    frame = dict(t=float(t), alpha=alpha, sigma=sigma, half=half, xs=xs, p=p, ax=ax, points=apts.numpy(),
                 exact=exact_scaled_score(dist, apts, alpha, sigma, label), learned=None, diff=None, rel_error=None)
    if model is not None:
        frame["learned"] = learned_scaled_score(model, apts, t, sigma, label)
        gap = learned_scaled_score(model, pts, t, sigma, label) - exact_scaled_score(dist, pts, alpha, sigma, label)
        frame["diff"] = np.hypot(gap[:, 0], gap[:, 1]).reshape(n_density, n_density)
        frame["rel_error"] = relative_error(model, dist, schedule, t, label)
    return frame


def nearest_frame(ts, t: float) -> int:
    return int(np.argmin(np.abs(np.asarray(ts) - t)))


def arrows(points: np.ndarray, vec: np.ndarray, spacing: float, color: str, name: str, showlegend: bool = True,
           cap: float = ARROW_CAP) -> go.Scatter:
    """ui.figures.quiver of sigma*score, drawn at length spacing * min(|v|, cap) / cap (direction kept).

    The line coordinates become float arrays with NaN gaps (compact in the browser, same picture).
    """
    mag = np.hypot(vec[:, 0], vec[:, 1])
    k = 0.9 * spacing * np.minimum(mag, cap) / cap / np.maximum(mag, 1e-12)
    tr = quiver(points[:, 0], points[:, 1], vec[:, 0] * k, vec[:, 1] * k, color=color, name=name,
                showlegend=showlegend, width=1.6)
    tr.x = np.array([np.nan if a is None else a for a in tr.x], dtype=np.float32)
    tr.y = np.array([np.nan if a is None else a for a in tr.y], dtype=np.float32)
    return tr


def _density(xs, p, showscale=False):
    """The density as a grey heat map, scaled to its maximum and stored as bytes (0-255: light to send)."""
    z = np.round(255 * p / max(float(p.max()), 1e-300)).astype(np.uint8)
    return go.Heatmap(x=xs.astype(np.float32), y=xs.astype(np.float32), z=z, colorscale=DENSITY_SCALE, zmin=0,
                      zmax=255, showscale=showscale, hoverinfo="skip")


def _frame_traces(f) -> list:
    diff_max = diff_range(f)
    spacing = float(f["ax"][1] - f["ax"][0])
    traces = [_density(f["xs"], f["p"]), arrows(f["points"], f["exact"], spacing, PALETTE[0], "exact σ·∇log p_t")]
    if f["learned"] is not None:
        traces += [_density(f["xs"], f["p"]), arrows(f["points"], f["learned"], spacing, PALETTE[1], "learned σ·ŝ_θ"),
                   go.Heatmap(x=f["xs"].astype(np.float32), y=f["xs"].astype(np.float32),
                              z=f["diff"].astype(np.float32), colorscale=DIFF_SCALE, zmin=0, zmax=diff_max,
                              colorbar=dict(title=dict(text="|σ(ŝ−s)|"), len=0.8),
                              hovertemplate="x₁ = %{x:.2f}<br>x₂ = %{y:.2f}<br>|σ(ŝ−s)| = %{z:.3f}<extra></extra>")]
    for tr, col in zip(traces, [1, 1, 2, 2, 3]):  # frames may become base traces (at_frame): name their axes
        tr.update(xaxis=f"x{col if col > 1 else ''}", yaxis=f"y{col if col > 1 else ''}")
    return traces


def _axes_layout(cols: int, half: float) -> dict:
    lay = {}
    for j in range(1, cols + 1):
        sfx = "" if j == 1 else str(j)
        lay[f"xaxis{sfx}"] = dict(range=[-half, half])
        lay[f"yaxis{sfx}"] = dict(range=[-half, half])
    return lay


def diff_range(frame) -> float:
    """The difference map's colour range for one frame: the 99th percentile of the gap where p_t is at least
    1/1000 of its peak, and at least 0.05. Off the data the network never trained and its gap there can be
    far larger; it saturates the colour instead of washing out the region that matters. The error at t near
    0 is tens of times that near t = 1, so each frame gets its own range."""
    if frame["diff"] is None:
        return 1.0
    where = frame["p"] >= 1e-3 * frame["p"].max()
    return max(0.05, float(np.quantile(frame["diff"][where], 0.99)))


def score_animation(frames, active: int = 0, t_title: bool = True) -> go.Figure:
    """Exact | Learned | Difference, one animation frame per t, opened at frame `active` (plotly's own player)."""
    learned = frames[0]["learned"] is not None
    cols = 3 if learned else 1
    titles = ["Exact: σ·∇log p_t"] + (["Learned: σ·ŝ_θ", "Difference |σ(ŝ_θ − ∇log p_t)|"] if learned else [])
    fig = make_subplots(rows=1, cols=cols, subplot_titles=titles, horizontal_spacing=0.05)
    base = _frame_traces(frames[active])
    fig.add_traces(base)
    names = [f"{f['t']:.2f}" for f in frames]
    fig.frames = [go.Frame(name=name, data=_frame_traces(f), traces=list(range(len(base))),
                           layout=_axes_layout(cols, f["half"])) for name, f in zip(names, frames)]
    half = frames[active]["half"]
    for j in range(1, cols + 1):
        fig.update_xaxes(range=[-half, half], title_text="x₁", constrain="domain", row=1, col=j)
        fig.update_yaxes(range=[-half, half], title_text="x₂" if j == 1 else None, scaleanchor=f"x{j if j > 1 else ''}",
                         constrain="domain", row=1, col=j)
    fig.update_layout(height=560, margin=dict(l=60, r=20, t=60, b=150), font=FONT, plot_bgcolor="white",
                      showlegend=False)  # the panel titles say which arrows are which
    add_player(fig, names, active=active)
    fig.layout.sliders[0].update(y=-0.12, x=0.2, len=0.8)
    fig.layout.updatemenus[0].y = -0.12
    return fig


def _log_range(values, pad: float = 0.15) -> list[float] | None:
    """A log axis's range (in decades) holding every positive value with `pad` decades to spare."""
    pos = [v for v in values if v and v > 0]
    if not pos:
        return None
    return [float(np.log10(min(pos))) - pad, float(np.log10(max(pos))) + pad]


def error_curve(frames, t_now: float | None = None, err_now: float | None = None) -> go.Figure:
    """The relative score error of the learned model against t, with the current t marked."""
    ts = [f["t"] for f in frames if f["rel_error"] is not None]
    es = [f["rel_error"] for f in frames if f["rel_error"] is not None]
    fig = go.Figure(go.Scatter(x=ts, y=es, mode="lines+markers", name="relative score error",
                               line=dict(color=PALETTE[1], width=3), marker=dict(size=8),
                               hovertemplate="t = %{x:.2f}<br>error = %{y:.3f}<extra></extra>"))
    if t_now is not None and err_now is not None:
        fig.add_trace(go.Scatter(x=[t_now], y=[err_now], mode="markers", name=f"sidebar t = {t_now:.2f}",
                                 marker=dict(size=16, color=PALETTE[5], symbol="circle", line=dict(width=1, color="black"))))
    fig.update_layout(height=360, margin=dict(l=60, r=20, t=40, b=50), font=FONT, plot_bgcolor="white",
                      # a margin on both axes, so the points at t = 0 and t = 1 are not cut in half by the frame
                      xaxis=dict(title="t", range=[-0.03, 1.03], gridcolor="#e5e5e5", zeroline=False),
                      yaxis=dict(title="relative error", type="log", dtick=1, gridcolor="#e5e5e5", tickformat=".2~g",
                                 range=_log_range(es + ([err_now] if err_now else []))),
                      legend=dict(orientation="h", y=1.12))
    return fig


def guidance_fields(dist, schedule, t: float, label: int, w: float, model=None, n_arrows: int = 15,
                    n_density: int = 50) -> dict:
    """Unconditional, conditional and guided sigma*score at t, exact and (if a model is given) learned.

    The background of the guided panel is the density the guided score belongs to,
    p_t(x | y)^(1+w) p_t(x)^(-w), normalised on the grid: guidance sharpens the label's own region
    and pushes away from where the other labels live.
    """
    alpha, sigma = (float(a) for a in schedule.alpha_sigma(t))
    half = view_half_width(alpha, sigma)
    xs, pts = square_grid(n_density, half)
    ax, apts = square_grid(n_arrows, half, centred=True)
    lp_u = dist.log_prob(pts, alpha, sigma, None).numpy()
    lp_c = dist.log_prob(pts, alpha, sigma, label).numpy()
    lp_g = (1 + w) * lp_c - w * lp_u
    dens = {name: np.exp(lp - lp.max()).reshape(n_density, n_density)
            for name, lp in (("unconditional", lp_u), ("conditional", lp_c), ("guided", lp_g))}
    e_u = exact_scaled_score(dist, apts, alpha, sigma, None)
    e_c = exact_scaled_score(dist, apts, alpha, sigma, label)
    out = dict(t=t, w=w, half=half, xs=xs, ax=ax, points=apts.numpy(), density=dens,
               exact={"unconditional": e_u, "conditional": e_c, "guided": guided_scaled_score(e_c, e_u, w)},
               learned=None)
    if model is not None:
        l_u = learned_scaled_score(model, apts, t, sigma, None)
        l_c = learned_scaled_score(model, apts, t, sigma, label)
        out["learned"] = {"unconditional": l_u, "conditional": l_c, "guided": guided_scaled_score(l_c, l_u, w)}
    return out


def guidance_figure(g: dict, label_name: str) -> go.Figure:
    """Rows: exact, learned. Columns: unconditional, conditional on the label, guided with weight w."""
    rows = 2 if g["learned"] is not None else 1
    kinds = ["unconditional", "conditional", "guided"]
    heads = ["Unconditional s(x)", f"Conditional s(x | {label_name})", f"Guided, w = {g['w']:g}"]
    titles = [f"Exact · {h}" for h in heads] + ([f"Learned · {h}" for h in heads] if rows == 2 else [])
    fig = make_subplots(rows=rows, cols=3, subplot_titles=titles, horizontal_spacing=0.04, vertical_spacing=0.1)
    spacing = float(g["ax"][1] - g["ax"][0])
    for r, (side, color) in enumerate([("exact", PALETTE[0]), ("learned", PALETTE[1])][:rows], start=1):
        for c, kind in enumerate(kinds, start=1):
            fig.add_trace(_density(g["xs"], g["density"][kind]), row=r, col=c)
            fig.add_trace(arrows(g["points"], g[side][kind], spacing, color, f"{side} σ·s", showlegend=c == 1),
                          row=r, col=c)
    half = g["half"]
    for k in range(1, rows * 3 + 1):
        sfx = "" if k == 1 else str(k)
        fig.layout[f"xaxis{sfx}"].update(range=[-half, half], constrain="domain")
        fig.layout[f"yaxis{sfx}"].update(range=[-half, half], scaleanchor=f"x{sfx}", constrain="domain")
    fig.update_layout(height=430 * rows, margin=dict(l=40, r=20, t=60, b=40), font=FONT, plot_bgcolor="white",
                      legend=dict(orientation="h", y=-0.06 if rows == 2 else -0.12))
    fig.update_annotations(font_size=16)
    return fig
