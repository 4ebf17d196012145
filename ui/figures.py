"""The figure plumbing every page shares, and the home page's panels (no Streamlit here).

* palette, fonts and EXTENT, the square the standardised toy sets live in;
* grids: `mesh_points` / `square_grid` (points of a grid, row-major like a heat map), `view_scale` /
  `view_half_width` (how far the view zooms out with the noise), `square_axes` (equal axes over a square),
  `density_grid` (the exact p_t on a grid);
* compact coordinates: `round_coords`, `round_density`, `joined` (several paths as one line trace);
* figures as dicts: `figure_dict` / `plain_dict`, `with_frames` (frames given as plain dicts), `patch` /
  `patch_layout` / `at_frame` (a cached dict redrawn with a few keys replaced, or opened at a frame),
  `SpecFigure` (draw a finished dict as it is) and `LazyFigure` (build the real figure only for a download);
* the in-browser player: `add_player`, `place_player`;
* `quiver` (arrows as one line trace) and `forward_panels` (the home page's noising panels).
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

# Okabe & Ito's colour-blind-safe palette.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
EXACT_COLOR, LEARNED_COLOR, XT_COLOR = PALETTE[0], PALETTE[5], PALETTE[7]  # page 6: exact, network, the noisy x_t
DENSITY_SCALE = [[0.0, "#ffffff"], [1.0, "#5a5a5a"]]  # density in grey, so coloured points stay readable
FONT = dict(size=16)
EXTENT = 3.0  # the toy sets are standardised: [-3, 3]^2 holds nearly all the mass at t = 0


# --- grids and the view --------------------------------------------------------------------------------------

def mesh_points(xs, ys=None) -> np.ndarray:
    """The points of the grid xs x ys (ys = xs when not given), row-major like a heat map's z:
    [len(ys) * len(xs), 2], point i * len(xs) + j is (xs[j], ys[i])."""
    gx, gy = np.meshgrid(xs, xs if ys is None else ys)
    return np.stack([gx.ravel(), gy.ravel()], -1)


def square_grid(n: int, half: float, centred: bool = False) -> tuple[np.ndarray, torch.Tensor]:
    """(xs [n], points [n * n, 2] as a float64 tensor) of a square grid over [-half, half]^2 (see mesh_points).

    `centred` puts the points at the centres of n equal cells (the midpoint rule; arrows that do not start on
    the frame's edge), otherwise on n evenly spaced nodes that include the edges (for drawing).
    """
    if centred:
        h = 2 * half / n
        xs = -half + h * (np.arange(n) + 0.5)
    else:
        xs = np.linspace(-half, half, n)
    return xs, torch.from_numpy(mesh_points(xs))


def view_scale(alpha, sigma) -> float:
    """How far p_t spreads compared with the data: max(1, sqrt(alpha^2 + sigma^2)) (1 for VP schedules).

    alpha and sigma are floats or 0-d tensors; for tensors the root is torch's, which can differ from
    math.sqrt in the last bit."""
    total = alpha**2 + sigma**2
    return max(1.0, float(torch.sqrt(total)) if isinstance(total, torch.Tensor) else math.sqrt(total))


def view_half_width(alpha, sigma, extent: float = EXTENT) -> float:
    """Half the side of the square shown at noise level (alpha, sigma): the data's extent, grown with the total
    scale sqrt(alpha^2 + sigma^2), so that variance-exploding schedules (sigma up to 80) stay in view."""
    return extent * view_scale(alpha, sigma)


def square_axes(fig: go.Figure, extent: float, row=None, col=None, ylabel="x₂", xlabel="x₁", anchor="x") -> None:
    """Equal axes over [-extent, extent] on a panel (every panel when row and col are None): `anchor` is the
    x axis the y axis keeps its scale with, and the panel shrinks to stay square instead of widening its range."""
    fig.update_xaxes(range=[-extent, extent], title_text=xlabel, constrain="domain", row=row, col=col)
    fig.update_yaxes(range=[-extent, extent], title_text=ylabel, scaleanchor=anchor, constrain="domain",
                     row=row, col=col)


def density_grid(dist, alpha, sigma, n: int = 100, extent: float = EXTENT, label=None):
    """(xs [n], ys [n], p [n, n]) of the exact density p_t on a square grid; p[i, j] is at (xs[j], ys[i])."""
    xs, pts = square_grid(n, extent)
    logp = dist.log_prob(pts, alpha, sigma, label).numpy().reshape(n, n)
    return xs, xs, np.exp(logp)


# --- figures as plain dicts: built once, patched or opened at a frame per rerun ------------------------------

def plain_dict(fig: go.Figure) -> dict:
    """fig's data and layout as dicts holding the arrays themselves (fig.to_dict() encodes numpy arrays as
    base64 typed arrays, which the browser reads and ui.export has to decode first)."""
    return {"data": [tr.to_plotly_json() for tr in fig.data], "layout": fig.layout.to_plotly_json()}


def figure_dict(fig: go.Figure) -> dict:
    """The figure with its frames as a plain dict whose arrays stay numpy (so the PNG/GIF export can still read
    them), for drawing through SpecFigure and opening at a frame with at_frame."""
    frames = []
    for f in fig.frames:
        frame = {"name": f.name, "layout": f.layout.to_plotly_json(), "data": [tr.to_plotly_json() for tr in f.data]}
        if f.traces is not None:
            frame["traces"] = list(f.traces)
        frames.append(frame)
    return {**plain_dict(fig), "frames": frames}


def with_frames(fig: go.Figure, frames: list[dict]) -> go.Figure:
    """`fig` (its base traces and layout checked by plotly as usual) with animation frames given as plain dicts
    of trace coordinates, which plotly does not re-validate one value at a time: that check took ~1 s for
    50 frames of 2,000 points and found nothing the builders here could get wrong."""
    return go.Figure({**plain_dict(fig), "frames": frames}, _validate=False)


def patch_layout(spec_layout: dict, updates: dict) -> dict:
    """Layout dict with nested dict keys (xaxis, yaxis, title) merged one level deep."""
    out = dict(spec_layout)
    for k, val in updates.items():
        out[k] = {**out.get(k, {}), **val} if isinstance(val, dict) and isinstance(out.get(k), dict) else val
    return out


def patch(spec: dict, updates: dict[int, dict], layout: dict | None = None) -> dict:
    """A shallow copy of a figure dict with some traces' (and the layout's) keys replaced."""
    out = dict(spec)
    out["data"] = [({**tr, **updates[i]} if i in updates else tr) for i, tr in enumerate(spec["data"])]
    if layout:
        out["layout"] = patch_layout(spec["layout"], layout)
    return out


def at_frame(spec: dict, k: int) -> dict:
    """The animated figure dict opened at frame k: its traces show frame k, the frame's layout (axis ranges)
    applies, and the slider points at it. A shallow copy: the frames are shared with `spec`, so opening a
    big cached animation at a new frame costs neither time nor memory."""
    frame = spec["frames"][k]
    idx = frame.get("traces", list(range(len(frame["data"]))))
    updates = dict(frame.get("layout") or {})  # merged one level deep by patch_layout
    updates["sliders"] = [{**spec["layout"]["sliders"][0], "active": k}] + list(spec["layout"]["sliders"][1:])
    return patch(spec, {i: {kk: vv for kk, vv in tr.items() if kk != "type"} for i, tr in zip(idx, frame["data"])},
                 updates)


class SpecFigure(go.Figure):
    """A figure given as its finished plotly dict. st.plotly_chart serialises figures through to_dict(),
    which deep-copies and is the slow part for big figures; this one hands over its dict as it is.
    Use only for drawing: for export, pass the real figure (or a LazyFigure)."""

    def __init__(self, spec: dict):
        super().__init__()
        self._spec = spec

    def to_dict(self):
        return self._spec


class LazyFigure:
    """Builds the real go.Figure only when something reads it (a download button being clicked).
    `frames` only says whether there are any (ui.page.downloads offers a GIF then); `figure()` is the real one."""

    def __init__(self, build, frames=()):
        self._build, self._fig = build, None
        self.frames = frames  # read by ui.page.downloads without building anything

    def figure(self) -> go.Figure:
        if self._fig is None:
            self._fig = self._build()
        return self._fig

    def __getattr__(self, name):
        return getattr(self.figure(), name)


# --- compact coordinates, arrows and the in-browser player ---------------------------------------------------

def round_coords(a) -> np.ndarray:
    """Coordinates rounded for a smaller figure (the eye cannot tell 1e-3 apart); numpy, so plotly checks it fast."""
    return np.round(np.asarray(a, dtype=float), 3).astype(np.float32)


def round_density(p: np.ndarray) -> np.ndarray:
    """A density rounded to about 4 significant digits of its maximum (smaller JSON; the colours are unchanged)."""
    top = float(np.max(p)) if np.size(p) else 1.0
    return np.round(p, max(0, 3 - int(np.floor(np.log10(top)))) if top > 0 else 6).astype(np.float32)


def joined(paths) -> tuple[np.ndarray, np.ndarray]:
    """Several [m, 2] paths as one line trace's x and y, separated by NaN (a gap)."""
    gap = np.full((1, 2), np.nan)
    pts = np.concatenate([np.concatenate([np.asarray(p, dtype=float), gap]) for p in paths]) if len(paths) else gap
    return round_coords(pts[:, 0]), round_coords(pts[:, 1])


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


def place_player(fig: go.Figure, below: int = 85) -> go.Figure:
    """Move add_player's buttons and slider below the x-axis title (their default overlaps it)."""
    fig.layout.updatemenus[0].pad.t = below + 10
    fig.layout.sliders[0].update(pad=dict(t=below), x=0.36, len=0.64)  # clear of the buttons on a narrow page
    return fig


# --- the home page's noising panels --------------------------------------------------------------------------

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
        half = view_half_width(alpha, sigma, extent)
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
