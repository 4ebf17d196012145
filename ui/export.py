"""Figures redrawn with matplotlib: plotly's own image export (fig.to_image) needs kaleido and Chrome, not shipped here.

A PNG of a plotly figure and a GIF of its animation frames, drawn from the figure's own data and layout
for the trace types the lab uses (heat map, contour, bar, scatter markers and lines, surface): what you
download is what the page showed, on a machine with no browser and no network.
"""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import plotly.colors as pc  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
from matplotlib.colors import LinearSegmentedColormap, to_rgba  # noqa: E402
from PIL import Image  # noqa: E402

DPI = 100


def _color(c, default="#333333"):
    if c is None:
        return default
    if isinstance(c, str) and c.startswith("rgb"):
        parts = c[c.index("(") + 1:c.index(")")].split(",")
        rgb = [float(p) / 255 for p in parts[:3]]
        return (*rgb, float(parts[3]) if len(parts) > 3 else 1.0)
    try:
        return to_rgba(c)
    except ValueError:
        return default


def _cmap(scale):
    if scale is None:
        scale = "Viridis"
    if isinstance(scale, str):
        scale = pc.get_colorscale(scale)
    return LinearSegmentedColormap.from_list("plotly", [(float(p), _color(c)) for p, c in scale])


def _values(v):
    """A trace's array as given, with plotly's typed arrays decoded: a figure built from fig.to_dict()
    holds numpy data as {'dtype', 'bdata', 'shape'} with base64 bytes, which plotly only ever encodes
    (plotly.js decodes them in the browser). The dtype codes ('f8', 'i4', 'u1', ...) are numpy's."""
    if isinstance(v, dict) and "bdata" in v and "dtype" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
        shape = v.get("shape")
        return a.reshape([int(n) for n in str(shape).split(",")]) if shape else a
    return v


def _arr(v):
    """A trace array (1-D or 2-D) as floats, None as NaN (numpy's float conversion does that)."""
    v = _values(v)
    return None if v is None else np.asarray(v, dtype=float)


def _axes(fig, layout):
    """{(xaxis name, yaxis name or scene name): matplotlib Axes} placed by the layout's domains."""
    placed = {}
    for tr in fig.data:
        key = (tr.scene or "scene") if tr.type == "surface" else (tr.xaxis or "x", tr.yaxis or "y")
        if key in placed:
            continue
        if tr.type == "surface":
            dom = layout[key].domain
            x0, x1 = (dom.x if dom and dom.x else (0, 1))
            y0, y1 = (dom.y if dom and dom.y else (0, 1))
            placed[key] = (x0, y0, x1, y1, "3d")
            continue
        xa = layout["xaxis" + key[0][1:]]
        ya = layout["yaxis" + key[1][1:]]
        x0, x1 = xa.domain or (0, 1)
        y0, y1 = ya.domain or (0, 1)
        placed[key] = (x0, y0, x1, y1, None)
    return placed


def _markers(ax, tr, x, y, mode):
    """Scatter markers: numeric colours through the colourscale, open symbols as rings, 'x'/'cross' as strokes."""
    mk = tr.marker
    size = (mk.size if isinstance(mk.size, (int, float)) else 6) or 6
    symbol = mk.symbol if isinstance(mk.symbol, str) else "circle"
    base = symbol.replace("-open", "").replace("-thin", "").replace("-dot", "")
    shape = {"x": "x", "cross": "+", "star": "*", "diamond": "D", "square": "s", "triangle-up": "^"}.get(base, "o")
    label = tr.name if (tr.showlegend is not False and tr.name and "lines" not in mode) else None
    col = _values(mk.color)
    alpha = mk.opacity if mk.opacity is not None else None
    if col is not None and not isinstance(col, str) and np.issubdtype(np.asarray(col).dtype, np.number):
        ax.scatter(x, y, c=np.asarray(col), cmap=_cmap(mk.colorscale), s=size**2 * 0.6, lw=0, label=label)
        return
    rgba = _color(col, "#0072B2")
    edge = _color(mk.line.color, rgba) if mk.line and mk.line.color else rgba
    if shape in ("x", "+"):  # stroke-only symbols: drawn by their edge
        ax.scatter(x, y, color=edge if mk.line and mk.line.color else rgba, marker=shape, s=size**2 * 0.8,
                   lw=max(1.5, (mk.line.width or 0) if mk.line else 0), alpha=alpha, label=label)
    elif "-open" in symbol:
        ax.scatter(x, y, facecolors="none", edgecolors=[rgba], marker=shape, s=size**2 * 0.8,
                   lw=max(1.2, (mk.line.width or 0) if mk.line else 0), alpha=alpha, label=label)
    else:
        lw = (mk.line.width or 0) * 0.7 if mk.line else 0
        ax.scatter(x, y, color=[rgba], marker=shape, s=size**2 * 0.6, lw=lw, edgecolors=[edge], alpha=alpha,
                   label=label)


def render(fig: go.Figure, width: int | None = None, height: int | None = None):
    """A matplotlib Figure drawn from a plotly figure's data and layout."""
    layout = fig.layout
    w = width or layout.width or 1200
    h = height or layout.height or 500
    m = layout.margin
    ml, mr, mt, mb = (m.l or 60) / w, (m.r or 20) / w, (m.t or 60) / h, (m.b or 50) / h
    mfig = plt.figure(figsize=(w / DPI, h / DPI), dpi=DPI)
    font = (layout.font.size or 14) * 0.8
    axes = {}
    for key, (x0, y0, x1, y1, proj) in _axes(fig, layout).items():
        rect = [ml + x0 * (1 - ml - mr), mb + y0 * (1 - mt - mb), (x1 - x0) * (1 - ml - mr), (y1 - y0) * (1 - mt - mb)]
        axes[key] = mfig.add_axes(rect, projection=proj)
    for tr in fig.data:
        if tr.visible is False:
            continue
        if tr.type == "surface":
            ax = axes[tr.scene or "scene"]
            x, y, z = _arr(tr.x), _arr(tr.y), _arr(tr.z)
            gx, gy = np.meshgrid(x, y)
            ax.plot_surface(gx, gy, z, cmap=_cmap(tr.colorscale), linewidth=0, antialiased=False)
            continue
        ax = axes[(tr.xaxis or "x", tr.yaxis or "y")]
        if tr.type in ("heatmap", "contour"):
            z = _arr(tr.z)
            x = _arr(tr.x) if tr.x is not None else np.arange(z.shape[1])
            y = _arr(tr.y) if tr.y is not None else np.arange(z.shape[0])
            kw = dict(cmap=_cmap(tr.colorscale), vmin=tr.zmin, vmax=tr.zmax)
            if tr.type == "heatmap":
                ax.pcolormesh(x, y, z, shading="nearest", **kw)
            elif tr.contours and tr.contours.coloring == "lines":
                ax.contour(x, y, z, levels=12, linewidths=1, **kw)
            else:
                ax.contourf(x, y, z, levels=20, **kw)
        elif tr.type == "bar":
            horizontal = tr.orientation == "h"
            cats, vals = (tr.y, tr.x) if horizontal else (tr.x, tr.y)
            vals = _arr(vals)
            cats = [str(c) for c in (np.arange(len(vals)) if cats is None else np.asarray(_values(cats)))]
            col = _values(tr.marker.color) if tr.marker else None
            colors = ([_color(c, "#0072B2") for c in col] if isinstance(col, (list, tuple, np.ndarray))
                      else _color(col, "#0072B2"))
            (ax.barh if horizontal else ax.bar)(cats, vals, color=colors)
        elif tr.type in ("scatter", "scattergl"):
            x, y = _arr(tr.x), _arr(tr.y)
            if x is None or y is None or len(x) == 0:
                continue
            mode = tr.mode or "markers"
            if "lines" in mode:
                ln = tr.line
                ax.plot(x, y, color=_color(ln.color, "#0072B2"), lw=(ln.width or 2) * 0.7,
                        ls="--" if ln.dash in ("dash", "dot", "dashdot") else "-", label=tr.name if tr.showlegend else None)
            if "markers" in mode:
                _markers(ax, tr, x, y, mode)
    for key, ax in axes.items():
        if isinstance(key, str):
            continue
        xa = layout["xaxis" + key[0][1:]]
        ya = layout["yaxis" + key[1][1:]]
        for a, set_lim, set_scale in ((xa, ax.set_xlim, ax.set_xscale), (ya, ax.set_ylim, ax.set_yscale)):
            if a.type == "log":
                set_scale("log")
            if a.range:  # plotly gives a log axis's range in powers of ten
                set_lim(*(10.0 ** np.asarray(a.range, dtype=float) if a.type == "log" else a.range))
        if xa.title and xa.title.text:
            ax.set_xlabel(xa.title.text, fontsize=font)
        if ya.title and ya.title.text:
            ax.set_ylabel(ya.title.text, fontsize=font)
        ax.tick_params(labelsize=font * 0.8)
        if ya.showticklabels is False:
            ax.set_yticklabels([])
        for axis, spec in (("x", xa), ("y", ya)):
            get = ax.xaxis if axis == "x" else ax.yaxis
            if spec.visible is False or spec.showticklabels is False:
                get.set_ticklabels([]) if spec.visible is not False else get.set_visible(False)
            elif spec.tickvals is not None and spec.ticktext is not None:
                get.set_ticks(list(spec.tickvals), [str(t) for t in spec.ticktext])
        if ya.autorange == "reversed":  # images: row 0 at the top
            ax.invert_yaxis()
        if xa.visible is False and ya.visible is False:
            ax.set_frame_on(False)
        if ya.scaleanchor or xa.scaleanchor:  # plotly's equal-aspect 2-D panels
            ax.set_aspect("equal", adjustable="box")
    for ann in layout.annotations or ():
        if ann.xref == "paper" and ann.yref == "paper" and ann.text:
            text = ann.text.replace("<br>", "\n").replace("<b>", "").replace("</b>", "")
            mfig.text(ml + ann.x * (1 - ml - mr), mb + ann.y * (1 - mt - mb) + 0.01, text, ha="center", va="bottom",
                      fontsize=font)
    title = layout.title.text if layout.title else None
    if title:
        mfig.suptitle(title.replace("<br>", "\n").replace("<b>", "").replace("</b>", ""), fontsize=font * 1.1)
    handles = [a for a in axes.values() if a.get_legend_handles_labels()[0]]
    if handles:
        handles[0].legend(fontsize=font * 0.7, loc="best", framealpha=0.8)
    return mfig


def to_png(fig: go.Figure, width: int | None = None, height: int | None = None) -> bytes:
    mfig = render(fig, width, height)
    buf = io.BytesIO()
    mfig.savefig(buf, format="png", dpi=DPI)
    plt.close(mfig)
    return buf.getvalue()


def frame_figure(fig: go.Figure, k: int) -> go.Figure:
    """The figure as it looks at animation frame k: the frame's traces and layout merged onto the base ones
    (plotly's nested update, which is how plotly.js merges a frame in the browser)."""
    frame = fig.frames[k]
    out = go.Figure(data=fig.data, layout=fig.layout)  # copies: `fig` is left as it is
    idx = frame.traces if frame.traces is not None else range(len(frame.data))
    for i, tr in zip(idx, frame.data):
        out.data[i].update({key: v for key, v in tr.to_plotly_json().items() if key != "type"})
    if frame.layout:
        out.update_layout(frame.layout)
    return out


def to_gif(fig: go.Figure, width: int = 900, height: int | None = None, ms_per_frame: int = 150) -> bytes:
    """Every animation frame of `fig`, drawn as above, as a looping GIF."""
    if not fig.frames:
        raise ValueError("this figure has no animation frames")
    h = height or int((fig.layout.height or 500) * width / (fig.layout.width or 1200))
    images = []
    for k in range(len(fig.frames)):
        buf = io.BytesIO(to_png(frame_figure(fig, k), width, h))
        images.append(Image.open(buf).convert("P", palette=Image.ADAPTIVE))
    out = io.BytesIO()
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:], duration=ms_per_frame, loop=0)
    return out.getvalue()
