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


def figure_dict(fig: go.Figure) -> dict:
    """The figure as a plain dict whose arrays stay numpy (so the PNG/GIF export can still read them), for
    drawing through ui.denoise.SpecFigure and opening at a frame with ui.denoise.at_frame."""
    frames = []
    for f in fig.frames:
        frame = {"name": f.name, "layout": f.layout.to_plotly_json(), "data": [tr.to_plotly_json() for tr in f.data]}
        if f.traces is not None:
            frame["traces"] = list(f.traces)
        frames.append(frame)
    return {"data": [tr.to_plotly_json() for tr in fig.data], "layout": fig.layout.to_plotly_json(), "frames": frames}


def density_grid(dist, alpha, sigma, n: int = 100, extent: float = EXTENT, label=None):
    """(xs [n], ys [n], p [n, n]) of the exact density p_t on a square grid; p[i, j] is at (xs[j], ys[i])."""
    xs = np.linspace(-extent, extent, n)
    gx, gy = np.meshgrid(xs, xs)
    pts = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], -1))
    logp = dist.log_prob(pts, alpha, sigma, label).numpy().reshape(n, n)
    return xs, xs, np.exp(logp)


def forward_panels(dist, schedule, ts, n_points: int = 600, seed: int = 0, extent: float = EXTENT, label=None):
    """One panel per t: the exact density of p_t (given `label`, if any) as a heat map, with samples
    x_t = alpha x0 + sigma eps on top."""
    g = torch.Generator().manual_seed(seed)
    x0, y = dist.sample(n_points, label=label, generator=g)
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
        xs, ys, p = density_grid(dist, alpha, sigma, n=80, extent=half, label=label)
        fig.add_trace(go.Heatmap(x=xs, y=ys, z=p, colorscale=DENSITY_SCALE, showscale=False,
                                 hovertemplate="p_t = %{z:.3g}<extra></extra>"), row=1, col=j)
        xt = (alpha * x0 + sigma * eps).numpy()
        for c in range(dist.num_classes):
            m = (y == c).numpy()
            if not m.any():
                continue
            fig.add_trace(go.Scatter(x=xt[m, 0], y=xt[m, 1], mode="markers", name=dist.label_names[c],
                                       legendgroup=str(c), showlegend=j == 1,
                                       marker=dict(size=4, color=PALETTE[c % len(PALETTE)],
                                                   line=dict(width=0.3, color="white"))), row=1, col=j)
        # constrain="domain": equal axes shrink the panel instead of widening its range past the heat map
        fig.update_xaxes(range=[-half, half], row=1, col=j, title_text="x₁", constrain="domain", zeroline=False)
        fig.update_yaxes(range=[-half, half], row=1, col=j, scaleanchor=f"x{j if j > 1 else ''}",
                         constrain="domain", zeroline=False, showticklabels=j == 1,
                         title_text="x₂" if j == 1 else None)
    # the legend sits above the panels' titles, clear of the x-axis titles below
    fig.update_layout(height=350, margin=dict(l=40, r=10, t=105, b=40), font=FONT, plot_bgcolor="white",
                      legend=dict(orientation="h", x=0, y=1.0, yanchor="top", yref="container"))
    return fig


def quiver(x, y, u, v, color: str = "#000000", name: str = "score", arrow: float = 0.3, width: float = 1.5,
           showlegend: bool = True, **scatter_kwargs) -> go.Scatter:
    """Arrows from (x, y) to (x + u, y + v) as one line trace (None-separated segments with a two-stroke head).

    Arrays are flat numpy arrays of equal length; scale u, v before calling. Heads are `arrow` times the
    arrow's length, capped at 1.5 times the median length, and open 0.45 rad to each side.
    Not plotly's create_quiver: its heads have no cap and its loop is quadratic (225 arrows: 34 ms, here 6 ms).
    """
    x, y, u, v = (np.asarray(a, dtype=float).ravel() for a in (x, y, u, v))
    ex, ey = x + u, y + v
    length = np.hypot(u, v) + 1e-12
    ux, uy = u / length, v / length
    head = arrow * np.minimum(length, np.median(length) * 1.5 + 1e-12)
    c, s = np.cos(0.45), np.sin(0.45)
    h1x, h1y = ex - head * (c * ux - s * uy), ey - head * (s * ux + c * uy)
    h2x, h2y = ex - head * (c * ux + s * uy), ey - head * (-s * ux + c * uy)
    nan = np.full_like(x, np.nan)
    xs = np.stack([x, ex, nan, h1x, ex, h2x, nan], 1).ravel()
    ys = np.stack([y, ey, nan, h1y, ey, h2y, nan], 1).ravel()
    xs, ys = [None if np.isnan(a) else float(a) for a in xs], [None if np.isnan(a) else float(a) for a in ys]
    return go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=color, width=width), name=name,
                      showlegend=showlegend, hoverinfo="skip", **scatter_kwargs)


def add_player(fig: go.Figure, names: list[str], active: int = 0, prefix: str = "t = ",
               ms_per_frame: int = 120) -> go.Figure:
    """Give `fig` (whose fig.frames are named `names`) a slider and play/pause buttons that run in the browser.

    Scrubbing then needs no server round trip. `active` is the frame the figure opens at; set the base
    traces to that frame's data.
    """
    steps = [dict(method="animate", label=n,
                  args=[[n], dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))])
             for n in names]
    play = dict(label="▶ Play", method="animate",
                args=[None, dict(frame=dict(duration=ms_per_frame, redraw=True), transition=dict(duration=0),
                                 fromcurrent=True, mode="immediate")])
    pause = dict(label="❚❚ Pause", method="animate",
                 args=[[None], dict(frame=dict(duration=0, redraw=False), transition=dict(duration=0), mode="immediate")])
    fig.update_layout(
        updatemenus=[dict(type="buttons", direction="left", buttons=[play, pause], x=0.0, y=0, xanchor="left",
                          yanchor="top", pad=dict(t=50, r=10), showactive=False, font=dict(size=14))],
        sliders=[dict(active=active, steps=steps, x=0.16, len=0.84, y=0, yanchor="top", pad=dict(t=40),
                      currentvalue=dict(prefix=prefix, xanchor="right", font=dict(size=16)), font=dict(size=12))])
    return fig
