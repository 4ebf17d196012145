"""Digits as pictures (no Streamlit here), shared by the digit figures of pages 4, 9, 10 and 11: an image as a
heat map's z (`image_z`, `image_heatmap`), grids of digits as subplots (`image_grid`, `hide_image_axes`) or as one
tiled heat map (`tile`, `grid_figure`, `image_figure`: many digits in one trace), the scale x_t is shown at
(`normalised`), a colour per digit (`digit_color`) and a log-SNR label (`fmt_lam`).

Images are tensors or arrays [..., 1, 28, 28] (or [..., 28, 28]) in [-1, 1].
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from .figures import FONT

INK_SCALE = [[0.0, "#ffffff"], [1.0, "#000000"]]  # -1 (background) white, +1 (ink) black: readable when projected
INK = "Greys"  # the tiled grids' scale: white paper to black ink too, through ColorBrewer's greys
# Plotly's D3 palette (the "category10" of d3.js): ten qualitative colours made to be told apart.
DIGIT_COLORS = list(qualitative.D3)


def digit_color(d: int) -> str:
    """Digit d's colour, the same in every digit figure."""
    return DIGIT_COLORS[int(d) % len(DIGIT_COLORS)]


def image_z(img) -> np.ndarray:
    """A [28, 28] (or [1, 28, 28]) image as a heat map's z: clipped to [-1, 1], rows flipped so that row 0 is
    drawn at the top of an ordinary (upward) y axis, rounded to 3 decimals (a smaller figure)."""
    a = np.asarray(torch.as_tensor(img).detach().double().cpu().numpy()).reshape(28, 28)
    return np.round(np.clip(a, -1.0, 1.0)[::-1], 3).astype(np.float32)


def image_heatmap(z, **kw) -> go.Heatmap:
    """A digit's heat map (z from image_z): ink black on white paper, no colour bar."""
    return go.Heatmap(z=z, colorscale=INK_SCALE, zmin=-1, zmax=1, showscale=False,
                      hovertemplate="pixel value %{z:.2f}<extra></extra>", **kw)


def hide_image_axes(fig: go.Figure, rows: int, cols: int) -> None:
    """Hide the axes of a rows x cols grid of image panels and give each panel square pixels."""
    for r in range(1, rows + 1):
        for c in range(1, cols + 1):
            k = (r - 1) * cols + c
            fig.update_xaxes(visible=False, range=[-0.5, 27.5], constrain="domain", row=r, col=c)
            fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, ticks="", range=[-0.5, 27.5],
                             scaleanchor=f"x{k if k > 1 else ''}", constrain="domain", row=r, col=c)


def image_grid(images, titles=None, row_names=None, title: str | None = None, cell: int = 150) -> go.Figure:
    """A rows x cols grid of digits (images [R, C, 28, 28]) as heat maps with hidden axes and equal aspect.

    `titles` [R][C] are the cells' titles; `row_names` [R] are written as each row's y-axis title."""
    images = np.asarray(images)
    rows, cols = images.shape[:2]
    flat = [t for row in titles for t in row] if titles is not None else None
    titled_below = titles is not None and any(t for row in titles[1:] for t in row)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=flat, horizontal_spacing=0.012,
                        vertical_spacing=0.35 / rows if titled_below else 0.03)
    for r in range(rows):
        for c in range(cols):
            fig.add_trace(image_heatmap(image_z(images[r, c])), row=r + 1, col=c + 1)
    hide_image_axes(fig, rows, cols)
    for r, name in enumerate(row_names or []):
        fig.update_yaxes(title_text=name, title_font=dict(size=16), row=r + 1, col=1)
    for ann in fig.layout.annotations:
        ann.font = dict(size=14)
    top = 60 + (35 if title else 0)
    fig.update_layout(height=top + rows * (cell + 40), font=FONT, plot_bgcolor="white", paper_bgcolor="white",
                      margin=dict(l=110 if row_names else 10, r=10, t=top, b=10),
                      title=dict(text=title, font=dict(size=17)) if title else None)
    return fig


def fmt_lam(lam: float, digits: int = 1) -> str:
    """lambda rounded for a label, never '-0.0'."""
    return f"{round(float(lam), digits) + 0.0:.{digits}f}"


def normalised(x, schedule, t):
    """x / sqrt(alpha_t^2 + sigma_t^2): what the network sees; unit scale for every schedule (VE included)."""
    a, s = schedule.alpha_sigma(float(t))
    return x / math.sqrt(float(a) ** 2 + float(s) ** 2)


def tile(images, pad: int = 2, fill: float = np.nan) -> np.ndarray:
    """Images [R, C, H, W] as one array [R H + (R-1) pad, C W + (C-1) pad]; the gaps hold `fill`.

    Image (r, c) sits at rows r (H + pad) .. r (H + pad) + H, columns c (W + pad) .. c (W + pad) + W.
    """
    images = np.asarray(images, dtype=float)
    if images.ndim != 4:
        raise ValueError(f"tile needs images of shape [rows, cols, H, W]; got {list(images.shape)}")
    r, c, h, w = images.shape
    out = np.full((r * h + (r - 1) * pad, c * w + (c - 1) * pad), fill, dtype=float)
    for i in range(r):
        for j in range(c):
            out[i * (h + pad):i * (h + pad) + h, j * (w + pad):j * (w + pad) + w] = images[i, j]
    return out


def grid_figure(images, row_names, title: str, pad: int = 2, cell_px: int | None = None,
                col_names=None) -> go.Figure:
    """A tiled grid of digit images as one heat map: ink dark on white, equal aspect, rows named on the left
    (and columns below, when `col_names` is given)."""
    images = np.asarray(images, dtype=float)
    r, c, h, w = images.shape
    z = np.round(np.clip(tile(images, pad), -1, 1), 3)
    fig = go.Figure(go.Heatmap(z=z, colorscale=INK, zmin=-1, zmax=1, showscale=False, hoverongaps=False,
                               hovertemplate="pixel %{z:.2f}<extra></extra>"))
    centers = [i * (h + pad) + (h - 1) / 2 for i in range(r)]
    width = z.shape[1]
    if cell_px is None:  # large digits, yet a 10-row grid still fits a projector's screen
        cell_px = int(min(110, max(50, 820 / r)))
    fig.update_xaxes(range=[-0.5, width - 0.5], showticklabels=col_names is not None, showgrid=False, ticks="",
                     zeroline=False, constrain="domain", title_text="columns: starting noises" if c > 1 else None)
    if col_names is not None:
        fig.update_xaxes(tickvals=[j * (w + pad) + (w - 1) / 2 for j in range(c)], ticktext=list(col_names),
                         title_text=None, tickfont=dict(size=16))
    fig.update_yaxes(range=[z.shape[0] - 0.5, -0.5], scaleanchor="x", constrain="domain", showgrid=False, ticks="",
                     zeroline=False,
                     tickvals=centers, ticktext=list(row_names), tickfont=dict(size=16))
    fig.update_layout(title=title, font=FONT, plot_bgcolor="#b8c2cc", height=max(260, 90 + r * cell_px),
                      margin=dict(l=40 + 8 * max(len(n) for n in row_names), r=10, t=60, b=50))
    return fig


def image_figure(image, title: str) -> go.Figure:
    """One digit [28, 28] as a heat map."""
    return grid_figure(np.asarray(image, dtype=float).reshape(1, 1, 28, 28), [""], title, cell_px=200) \
        .update_xaxes(title_text=None).update_layout(height=300, margin=dict(l=20, r=20, t=60, b=20))
