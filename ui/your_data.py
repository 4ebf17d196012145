"""Your own 2-D data (page 8): parse a CSV, standardise, and build the exact ground truth of a finite set.

No Streamlit here. The ground truth of N points x_i is the mixture (1/N) sum_i N(x; x_i, h^2 I): every
point blurred by a small Gaussian of width h (the bandwidth), which toy_data.finite_set builds. Noising
it keeps it a mixture, so every exact quantity of the other pages (density, score, denoiser, posterior)
is known for it too.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math

import numpy as np
import plotly.graph_objects as go
import torch

from toy_data import finite_set, get_dataset

from .figures import DENSITY_SCALE, EXTENT, FONT, PALETTE, mesh_points

MAX_ROWS = 5000  # points in a file (the mixture has one component per point: the exact pages stay quick)
MAX_BYTES = 1_000_000  # about 1 MB: far more than 5,000 rows of numbers need
MAX_CLASSES = len(PALETTE)  # one colour per class
MIN_BANDWIDTH, MAX_BANDWIDTH = 0.05, 1.0  # in standardised units; 0 would be point masses with no density
PRESETS = {"moons": "Two moons", "circles": "Circles", "8gaussians": "8 Gaussians", "spiral": "Spiral",
           "checkerboard": "Checkerboard"}
X_NAMES, Y_NAMES, LABEL_NAMES = ("x", "x1", "x₁"), ("y", "x2", "x₂"), ("label", "class", "labels", "category")


def _number(cell: str, row: int, column: str) -> float:
    try:
        value = float(cell.strip())
    except ValueError:
        raise ValueError(f"row {row}, column {column}: {cell.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"row {row}, column {column}: {cell.strip()!r} is not a finite number")
    return value


def _is_number(cell: str) -> bool:
    try:
        float(cell.strip())
        return True
    except ValueError:
        return False


def _delimiter(first_line: str) -> str:
    for d in (",", ";", "\t"):
        if d in first_line:
            return d
    return ","


def parse_csv(data: bytes | str, max_rows: int = MAX_ROWS):
    """(points [N, 2] float64, labels [N] int64, label_names tuple) from a CSV of 2-D points.

    Columns: x, y and optionally a label (text or integers). The header line is optional; with one,
    the columns are found by name (x/x1, y/x2, label/class). Commas, semicolons or tabs separate the
    cells. Every problem raises ValueError saying which row and column is wrong, and what is allowed.
    Row numbers are the file's line numbers.
    """
    if isinstance(data, bytes):
        if len(data) > MAX_BYTES:
            raise ValueError(f"the file is {len(data) / 1e6:.1f} MB; the maximum is {MAX_BYTES / 1e6:.0f} MB")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValueError("the file is not a text CSV file (it is not UTF-8 text)") from None
    else:
        text = data
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), None)
    if first is None:
        raise ValueError("the file is empty: expected rows of x, y (and optionally a label)")
    rows = [(i + 1, [c.strip() for c in cells]) for i, cells in enumerate(csv.reader(io.StringIO(text),
                                                                                     delimiter=_delimiter(first)))
            if any(c.strip() for c in cells)]
    line0, head = rows[0]
    if len(head) >= 2 and not (_is_number(head[0]) and _is_number(head[1])):  # a header line
        names = [h.lower() for h in head]
        unknown = [h for h in head if h.lower() not in X_NAMES + Y_NAMES + LABEL_NAMES]
        if unknown:
            raise ValueError(f"row {line0} (the header): unknown column {unknown[0]!r}; the columns must be x, y "
                             "and optionally label")
        try:
            ix = next(i for i, n in enumerate(names) if n in X_NAMES)
            iy = next(i for i, n in enumerate(names) if n in Y_NAMES)
        except StopIteration:
            raise ValueError(f"row {line0} (the header) must name an x and a y column; found {', '.join(head)}") \
                from None
        il = next((i for i, n in enumerate(names) if n in LABEL_NAMES), None)
        width, rows = len(head), rows[1:]
    else:
        if len(head) not in (2, 3):
            raise ValueError(f"row {line0} has {len(head)} columns; expected 2 (x, y) or 3 (x, y, label)")
        width, ix, iy, il = len(head), 0, 1, (2 if len(head) == 3 else None)
    if not rows:
        raise ValueError("the file has a header but no data rows")
    if len(rows) > max_rows:
        raise ValueError(f"the file has {len(rows):,} points; the maximum is {max_rows:,}")
    points, raw_labels = np.empty((len(rows), 2)), []
    for k, (line, cells) in enumerate(rows):
        if len(cells) != width:
            raise ValueError(f"row {line} has {len(cells)} columns; expected {width} like the first row")
        points[k] = _number(cells[ix], line, "x"), _number(cells[iy], line, "y")
        if il is not None:
            if not cells[il]:
                raise ValueError(f"row {line}, column label: the label is empty")
            raw_labels.append(cells[il])
    if il is None:
        labels, label_names = np.zeros(len(rows), dtype=np.int64), ("all",)
    else:
        labels, label_names = encode_labels(raw_labels)
    check_points(points)
    return points, labels, label_names


def encode_labels(raw: list[str]):
    """(labels [N] int64, names): integer labels keep their numeric order, text labels their sorted order."""
    if all(_is_integer(s) for s in raw):
        values = sorted({int(float(s)) for s in raw})
        names = tuple(str(v) for v in values)
        index = {v: i for i, v in enumerate(values)}
        labels = np.array([index[int(float(s))] for s in raw], dtype=np.int64)
    else:
        names = tuple(sorted(set(raw)))
        index = {n: i for i, n in enumerate(names)}
        labels = np.array([index[s] for s in raw], dtype=np.int64)
    if len(names) > MAX_CLASSES:
        raise ValueError(f"the label column has {len(names)} different labels; the maximum is {MAX_CLASSES}")
    return labels, names


def _is_integer(s: str) -> bool:
    try:
        return float(s) == int(float(s))
    except (ValueError, OverflowError):
        return False


def check_points(points) -> None:
    """At least two distinct finite points (one point has no spread to standardise by)."""
    points = np.asarray(points, dtype=float)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be 2-D (x, y); got an array of shape {points.shape}")
    if points.shape[0] < 2:
        raise ValueError(f"at least 2 points are needed; got {points.shape[0]}")
    if not np.isfinite(points).all():
        raise ValueError("every coordinate must be a finite number")
    if np.ptp(points, axis=0).max() == 0:
        raise ValueError("all the points are at the same place; at least two must differ")


def standardise(points):
    """(z, centre, scale): z = (points - centre) * scale has mean 0 and variance 1 averaged over x and y,
    as the toy sets have (toy_data/datasets.py), so one noise schedule suits them all."""
    points = np.asarray(points, dtype=float)
    centre = points.mean(0)
    scale = 1.0 / math.sqrt(((points - centre) ** 2).sum(1).mean() / points.shape[1])
    return (points - centre) * scale, centre, scale


def rule_of_thumb(n: int) -> float:
    """Silverman's rule for 2-D standardised data, h = n^(-1/6) (for d dimensions (4/(d+2))^(1/(d+4)) n^(-1/(d+4))),
    halved: the rule assumes one Gaussian blob and blurs thin shapes; kept within the slider's range."""
    h = 0.5 * (4 / (2 + 2)) ** (1 / 6) * max(1, n) ** (-1 / 6)
    return float(min(MAX_BANDWIDTH, max(MIN_BANDWIDTH, round(h, 2))))


def compact(labels, names):
    """Drop class names no point uses and renumber the labels (a class with no point has no density)."""
    labels = np.asarray(labels, dtype=np.int64)
    used = sorted(set(labels.tolist()))
    index = {old: i for i, old in enumerate(used)}
    return np.array([index[v] for v in labels.tolist()], dtype=np.int64), tuple(names[i] for i in used)


def build_dist(points, labels, names, bandwidth: float):
    """The exact ground truth of your points: standardised, one Gaussian of std `bandwidth` per point."""
    if not MIN_BANDWIDTH <= bandwidth <= MAX_BANDWIDTH:
        raise ValueError(f"bandwidth must be in [{MIN_BANDWIDTH}, {MAX_BANDWIDTH}]; got {bandwidth}")
    check_points(points)
    labels, names = compact(labels, names)
    z, _, _ = standardise(points)
    return finite_set(torch.from_numpy(z), torch.from_numpy(labels), names, bandwidth, name="yours")


def data_key(points, labels, names, bandwidth: float) -> str:
    """A short hash of everything that defines the ground truth (the pages' cache key)."""
    h = hashlib.sha1()
    h.update(np.ascontiguousarray(points, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    h.update("\x1f".join(names).encode())
    h.update(f"{bandwidth:.6g}".encode())
    return h.hexdigest()[:12]


def preset(name: str, n: int = 80, seed: int = 0):
    """(points, labels, names): n points drawn from a toy set, a quick start for your own edits."""
    dist = get_dataset(name)
    x, y = dist.sample(n, generator=torch.Generator().manual_seed(seed))
    return x.double().numpy(), y.numpy().astype(np.int64), tuple(dist.label_names)


def to_csv(points, labels, names) -> str:
    """Your points as a CSV that parse_csv reads back (x, y, label)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["x", "y", "label"])
    for (x, y), lab in zip(np.asarray(points), np.asarray(labels)):
        w.writerow([f"{x:.6g}", f"{y:.6g}", names[lab]])
    return out.getvalue()


# --- figures -------------------------------------------------------------------------------------------

def canvas_range(points, pad: float = 0.15) -> tuple[float, float, float, float]:
    """A square region (x0, x1, y0, y1) around the points to click in; [-3, 3]^2 when there are none."""
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    if len(points) < 2 or np.ptp(points, axis=0).max() == 0:
        return -EXTENT, EXTENT, -EXTENT, EXTENT
    lo, hi = points.min(0), points.max(0)
    c, half = (lo + hi) / 2, (hi - lo).max() / 2 * (1 + 2 * pad)
    return c[0] - half, c[0] + half, c[1] - half, c[1] + half


def grid_points(bounds, n: int = 41):
    """The n x n clickable grid over `bounds` as (xs [n*n], ys [n*n])."""
    x0, x1, y0, y1 = bounds
    xs, ys = mesh_points(np.linspace(x0, x1, n), np.linspace(y0, y1, n)).T
    return xs, ys


def canvas_figure(points, labels, names, bounds, n_grid: int = 41) -> go.Figure:
    """Your points, over a faint grid of dots: clicking a dot adds a point there (trace 0 is the grid)."""
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    labels = np.asarray(labels, dtype=np.int64)
    gx, gy = grid_points(bounds, n_grid)
    fig = go.Figure(go.Scattergl(x=gx, y=gy, mode="markers", name="click to add",
                                 marker=dict(size=7, color="rgba(120,120,120,0.18)"),
                                 hovertemplate="add a point at (%{x:.2f}, %{y:.2f})<extra></extra>"))
    for c, name in enumerate(names):
        m = labels == c
        fig.add_trace(go.Scattergl(x=points[m, 0], y=points[m, 1], mode="markers", name=f"{name} ({int(m.sum())})",
                                   marker=dict(size=10, color=PALETTE[c % len(PALETTE)],
                                               line=dict(width=1, color="white")),
                                   hovertemplate=f"{name}: (%{{x:.2f}}, %{{y:.2f}})<extra></extra>"))
    x0, x1, y0, y1 = bounds
    fig.update_layout(title=f"Your points ({len(points)})", font=FONT, height=560, plot_bgcolor="white",
                      margin=dict(l=50, r=10, t=60, b=100),
                      legend=dict(orientation="h", x=0.5, xanchor="center", y=0, yanchor="bottom", yref="container"),
                      clickmode="event+select", dragmode=False,
                      # constrain="domain": equal axes shrink the square instead of widening the range past the
                      # clickable grid
                      xaxis=dict(title="x", range=[x0, x1], gridcolor="#eeeeee", zeroline=False, constrain="domain"),
                      yaxis=dict(title="y", range=[y0, y1], gridcolor="#eeeeee", zeroline=False,
                                 scaleanchor="x", constrain="domain"))
    return fig


def separable_density_grid(dist, n: int = 110, extent: float = EXTENT):
    """(xs, ys, p) of the exact p(x) of an isotropic Gaussian mixture on an n x n grid, p[i, j] at (xs[j], ys[i]).

    Each component N(x; m_k, s_k^2 I) is a product of 1-D Gaussians in x1 and x2, so the grid is one matrix
    product, sum_k w_k g_k(ys[i]) g_k(xs[j]): the same numbers as ui.figures.density_grid, but about
    N times fewer exponentials (a 5,000-point set stays quick when the bandwidth slider moves).
    """
    xs = torch.linspace(-extent, extent, n, dtype=torch.float64)
    m, s, w = dist.means, dist.stds, dist.weights

    def g(v, d):  # [n, K]: the 1-D normal densities of every component along coordinate d
        return torch.exp(-((v[:, None] - m[None, :, d]) ** 2) / (2 * s**2)) / torch.sqrt(2 * math.pi * s**2)

    p = (g(xs, 1) * w) @ g(xs, 0).T
    return xs.numpy(), xs.numpy(), p.numpy()


def density_figure(dist, n: int = 110, extent: float = EXTENT) -> go.Figure:
    """Left: the exact density p(x) of the mixture (standardised units). Right: the points, coloured by class,
    over its contour lines. Two side-by-side axes laid out by hand (make_subplots costs ~100 ms per call)."""
    xs, ys, p = separable_density_grid(dist, n=n, extent=extent)
    pts, lab = dist.means.numpy(), dist.labels.numpy()
    data = [go.Heatmap(x=xs, y=ys, z=p, colorscale=DENSITY_SCALE, showscale=False,
                       hovertemplate="p(x) = %{z:.3g}<extra></extra>"),
            go.Contour(x=xs, y=ys, z=p, showscale=False, contours=dict(coloring="lines"), ncontours=8,
                       line=dict(width=1), colorscale=[[0, "#999999"], [1, "#999999"]], hoverinfo="skip",
                       xaxis="x2", yaxis="y2")]
    for c, name in enumerate(dist.label_names):
        m = lab == c
        data.append(go.Scattergl(x=pts[m, 0], y=pts[m, 1], mode="markers", name=name, xaxis="x2", yaxis="y2",
                                 marker=dict(size=6, color=PALETTE[c % len(PALETTE)],
                                             line=dict(width=0.5, color="white"))))
    axis = dict(range=[-extent, extent], zeroline=False, title_text="x₁ (standardised)", gridcolor="#eeeeee",
                constrain="domain")
    title = dict(xref="paper", yref="paper", y=1.0, yanchor="bottom", showarrow=False, font=dict(size=18))
    layout = dict(
        font=FONT, height=580, margin=dict(l=60, r=10, t=60, b=40), plot_bgcolor="white",
        legend=dict(orientation="h", x=0.5, xanchor="center", y=-0.2, yanchor="top"),
        xaxis=dict(axis, domain=[0, 0.47]), xaxis2=dict(axis, domain=[0.53, 1]),
        yaxis=dict(axis, title_text="x₂ (standardised)", scaleanchor="x"),
        yaxis2=dict(axis, title_text=None, scaleanchor="x2"),
        annotations=[dict(title, text="Exact density p(x)", x=0.235, xanchor="center"),
                     dict(title, text="Your points (standardised)", x=0.765, xanchor="center")])
    return go.Figure(data=data, layout=layout)
