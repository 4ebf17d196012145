"""Energy and the normaliser: the numbers and figures of page 2 (no Streamlit here, so they can be tested).

E_t(x) = -log p_t(x). The exact side comes from the Gaussian mixture's log_prob; the learned side from
a v-prediction network through the probability-flow ODE (diffusion.likelihood.energy_via_ode). The
normaliser Z = integral of exp(-E) is computed the honest way, by summing over a grid, and its cost is
then extrapolated to d dimensions.
"""

from __future__ import annotations

import math
import time

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from diffusion.likelihood import energy_via_ode

from .figures import EXTENT, FONT, PALETTE, mesh_points, quiver, square_grid
from .threads import one_thread

ENERGY_SCALE = "Viridis"  # low energy (likely) dark blue, high energy (unlikely) yellow
EVALS_PER_SECOND = 1e9  # a generous machine: a billion energy evaluations per second
SECONDS_PER_YEAR = 365.25 * 24 * 3600
AGE_OF_UNIVERSE_YEARS = 13.8e9
ATOMS_IN_UNIVERSE_LOG10 = 80  # about 10^80 atoms in the observable universe
MNIST_DIM = 28 * 28


def exact_energy(dist, alpha: float, sigma: float, label=None, n: int = 80, half: float = EXTENT):
    """(xs [n], E [n, n]) of the exact E_t(x) = -log p_t(x | label) on an n x n grid over [-half, half]^2."""
    xs, pts = square_grid(n, half)
    return xs, -dist.log_prob(pts, alpha, sigma, label).numpy().reshape(n, n)


def learned_energy(model, t: float, label=None, n: int = 40, half: float = EXTENT, steps: int = 16):
    """(xs [n], E [n, n], seconds): the model's E_t(x) = -log p_t(x) through the probability-flow ODE.

    A v- (or eps-, x0-) prediction network has no energy output; its density comes from integrating
    the divergence of the ODE's velocity from t up to pure noise (Heun, `steps` steps, exact 2-D divergence).
    """
    xs, pts = square_grid(n, half)
    start = time.perf_counter()
    with one_thread():
        e = energy_via_ode(model, pts.float(), float(t), label, steps=steps)
    return xs, e.double().numpy().reshape(n, n), time.perf_counter() - start


def raw_energy(model, t: float, label=None, n: int = 40, half: float = EXTENT):
    """(xs [n], E [n, n], log Z): an energy head's own output E_theta(x, t) on a grid, and
    log Z_theta(t) = log of the integral of exp(-E_theta) over the box, by the grid.

    Training fixes only the gradient of E_theta (the score), so E_theta carries an arbitrary constant
    for each t; E_theta + log Z_theta is the model's -log p_t.
    """
    xs, pts = square_grid(n, half)
    with torch.no_grad(), one_thread():
        e = model.energy(pts.float(), float(t), label)
    E = e.double().numpy().reshape(n, n)
    return xs, E, grid_log_z(E, xs)


def partition_function(energy_fn, n: int, half: float, c: float = 0.0) -> dict:
    """Z = integral of exp(-(E + c)) over [-half, half]^2 by the midpoint rule on n x n cells.

    `energy_fn(points [m, 2]) -> E [m]`. Returns Z, log Z, the number of evaluations (n^2), the cell
    area and the wall time. log Z is computed with logsumexp, so large c does not underflow.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"grid points per axis must be >= 1; got {n}")
    _, pts = square_grid(n, half, centred=True)
    start = time.perf_counter()
    e = torch.as_tensor(energy_fn(pts), dtype=torch.float64) + c
    cell = (2 * half / n) ** 2
    log_z = float(torch.logsumexp(-e, 0)) + math.log(cell)
    return {"Z": math.exp(log_z) if log_z < 700 else math.inf, "log_Z": log_z, "evaluations": n * n,
            "cell_area": cell, "seconds": time.perf_counter() - start}


def grid_log_z(E: np.ndarray, xs: np.ndarray, c: float = 0.0) -> float:
    """log Z from energies already on a drawn (node) grid: log of sum exp(-(E + c)) times the cell area."""
    h = float(xs[1] - xs[0])
    e = torch.as_tensor(E, dtype=torch.float64).ravel() + c
    return float(torch.logsumexp(-e, 0)) + 2 * math.log(h)


def z_convergence(energy_fn, half: float, ns=(2, 4, 8, 16, 32, 64, 128, 256)) -> dict:
    """log Z by the midpoint rule for each n in `ns` (how fast the grid estimate settles)."""
    return {int(n): partition_function(energy_fn, n, half)["log_Z"] for n in ns}


def exact_z_convergence(dist, alpha: float, sigma: float, label, half: float) -> dict:
    """z_convergence of the exact energy -log p_t (a module-level function, so a worker process can run it)."""
    return z_convergence(lambda p: -dist.log_prob(p, alpha, sigma, label), half)


def points_needed(convergence: dict, tol: float = 0.01) -> int | None:
    """The smallest n in `convergence` whose Z is within `tol` (relative) of the finest grid's Z."""
    ns = sorted(convergence)
    ref = convergence[ns[-1]]
    for n in ns[:-1]:
        if abs(math.expm1(convergence[n] - ref)) <= tol:
            return n
    return None


def cost_in_d(n: int, dims: np.ndarray) -> np.ndarray:
    """log10 of the evaluations a grid with n points per axis needs in d dimensions: d log10 n."""
    return np.asarray(dims, dtype=float) * math.log10(max(int(n), 1))


def cost_story(n: int, d: int = MNIST_DIM) -> dict:
    """What an n-per-axis grid costs in d dimensions, as powers of ten (computed, never overflowing)."""
    log_evals = d * math.log10(max(int(n), 1))
    log_seconds = log_evals - math.log10(EVALS_PER_SECOND)
    log_years = log_seconds - math.log10(SECONDS_PER_YEAR)
    return {"log10_evaluations": log_evals, "log10_years": log_years,
            "log10_universe_ages": log_years - math.log10(AGE_OF_UNIVERSE_YEARS),
            "beats_atoms": log_evals > ATOMS_IN_UNIVERSE_LOG10,
            "max_dim_in_a_day": math.floor(math.log10(EVALS_PER_SECOND * 86400) / math.log10(n)) if n > 1 else None}


def finite_difference_score(energy_fn, x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """-grad E at points x [m, 2] by central differences: the score, from the energy alone."""
    x = np.asarray(x, dtype=float).reshape(-1, 2)
    out = np.zeros_like(x)
    for i in range(2):
        dx = np.zeros(2)
        dx[i] = h
        ep = np.asarray(energy_fn(torch.from_numpy(x + dx)), dtype=float)
        em = np.asarray(energy_fn(torch.from_numpy(x - dx)), dtype=float)
        out[:, i] = -(ep - em) / (2 * h)
    return out


def grid_score(E: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """-dE/dx1, -dE/dx2 on a drawn grid (numpy gradient: central differences inside, one-sided at edges)."""
    h = float(xs[1] - xs[0])
    d_y, d_x = np.gradient(E, h)
    return -d_x, -d_y


# --- figures ----------------------------------------------------------------------------------------

def _heat(xs, E, zmin, zmax, showscale, colorbar_x=None):
    shown = np.minimum(E, zmax)
    return [
        go.Heatmap(x=xs, y=xs, z=shown, colorscale=ENERGY_SCALE, zmin=zmin, zmax=zmax, showscale=showscale,
                   colorbar=dict(title=dict(text="E (nats)"), x=colorbar_x) if showscale else None,
                   hovertemplate="x₁ = %{x:.2f}<br>x₂ = %{y:.2f}<br>E = %{z:.2f}<extra></extra>"),
        go.Contour(x=xs, y=xs, z=shown, contours=dict(coloring="lines", start=zmin, end=zmax,
                                                       size=(zmax - zmin) / 12),
                   line=dict(width=1, color="white"), colorscale=[[0, "white"], [1, "white"]], showscale=False,
                   hoverinfo="skip"),
    ]


def _square_panels(fig: go.Figure, half: float, cols: int, height: int) -> go.Figure:
    """Equal-axis square panels over [-half, half]^2 in one row, with the pages' shared layout."""
    for j in range(1, cols + 1):
        fig.update_xaxes(range=[-half, half], title_text="x₁", constrain="domain", row=1, col=j)
        fig.update_yaxes(range=[-half, half], title_text="x₂", scaleanchor=f"x{j if j > 1 else ''}",
                         constrain="domain", row=1, col=j)
    fig.update_layout(height=height, margin=dict(l=60, r=20, t=60, b=50), font=FONT, plot_bgcolor="white")
    return fig


def energy_cap(E_exact: np.ndarray, span: float = 16.0) -> tuple[float, float]:
    """The shared colour range: from the exact minimum up `span` nats (beyond that both are 'very unlikely')."""
    lo = float(np.min(E_exact))
    return lo, lo + span


def energy_heatmaps(xs, E_exact, xs_learned=None, E_learned=None, title_exact="Exact", title_learned="Learned",
                    span: float = 16.0) -> go.Figure:
    """Exact (and learned, beside it) energy as heat maps with contour lines, on one colour range."""
    zmin, zmax = energy_cap(E_exact, span)
    two = E_learned is not None
    fig = make_subplots(rows=1, cols=2 if two else 1, subplot_titles=[title_exact] + ([title_learned] if two else []),
                        horizontal_spacing=0.08)
    for tr in _heat(xs, E_exact, zmin, zmax, showscale=True):
        fig.add_trace(tr, row=1, col=1)
    if two:
        for tr in _heat(xs_learned, E_learned, zmin, zmax, showscale=False):
            fig.add_trace(tr, row=1, col=2)
    return _square_panels(fig, float(xs[-1]), 2 if two else 1, 480)


def raw_energy_figure(xs, E_raw, log_z: float, E_exact, xs_exact, span: float = 16.0) -> go.Figure:
    """An energy head's raw E_theta (own colour range) beside E_theta + log Z_theta (the exact map's range)."""
    # wide spacing: the left panel's colour bar sits in it, clear of the right panel's axis title
    fig = make_subplots(rows=1, cols=2, subplot_titles=["Raw E_θ", "E_θ + log Z_θ"], horizontal_spacing=0.22)
    lo = float(np.min(E_raw))
    for tr in _heat(xs, E_raw, lo, lo + span, showscale=True, colorbar_x=0.41):
        fig.add_trace(tr, row=1, col=1)
    zmin, zmax = energy_cap(E_exact, span)
    for tr in _heat(xs, E_raw + log_z, zmin, zmax, showscale=True):
        fig.add_trace(tr, row=1, col=2)
    return _square_panels(fig, float(xs[-1]), 2, 420)


def energy_surfaces(xs, E_exact, xs_learned=None, E_learned=None, span: float = 16.0) -> go.Figure:
    """The same energies as 3-D surfaces, on one z range: from the lowest energy of either (a learned map
    can dip below the exact minimum) to the colour range's top, where higher values are capped."""
    zmin, zmax = energy_cap(E_exact, span)
    two = E_learned is not None
    if two:
        zmin = min(zmin, float(np.nanmin(E_learned)))
    fig = make_subplots(rows=1, cols=2 if two else 1, specs=[[{"type": "surface"}] * (2 if two else 1)],
                        subplot_titles=["Exact"] + (["Learned"] if two else []), horizontal_spacing=0.04)
    pairs = [(xs, E_exact)] + ([(xs_learned, E_learned)] if two else [])
    for j, (x, e) in enumerate(pairs, start=1):
        fig.add_trace(go.Surface(x=x, y=x, z=np.clip(e, zmin, zmax), cmin=zmin, cmax=zmax, colorscale=ENERGY_SCALE,
                                 showscale=j == 1, colorbar=dict(title=dict(text="E (nats)"), x=1.0),
                                 hovertemplate="x₁ = %{x:.2f}<br>x₂ = %{y:.2f}<br>E = %{z:.2f}<extra></extra>"),
                      row=1, col=j)
    scene = dict(xaxis=dict(title=dict(text="x₁"), nticks=5), yaxis=dict(title=dict(text="x₂"), nticks=5),
                 zaxis=dict(title=dict(text="E"), range=[zmin, zmax], nticks=4),
                 camera=dict(eye=dict(x=1.55, y=-1.55, z=1.15)), aspectmode="manual",
                 aspectratio=dict(x=1, y=1, z=0.6))
    fig.update_layout(scene=scene, height=520, margin=dict(l=40, r=10, t=50, b=10), font=FONT)
    if two:
        fig.update_layout(scene2=scene)
    return fig


def constant_figure(xs, E, c: float, arrows: int = 13, span: float = 16.0) -> go.Figure:
    """E and E + c side by side, each with the score -grad E (finite differences of what is drawn) on top.

    The colours' numbers move by c; the arrows, computed separately from each panel's own energy, do not.
    """
    zmin, zmax = energy_cap(E, span)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.2, subplot_titles=["E(x)", f"E(x) + c,  c = {c:g}"])
    step = max(1, len(xs) // arrows)
    sub = slice(step // 2, None, step)
    gx, gy = mesh_points(xs[sub]).T  # the arrows' tails
    spacing = float(xs[step] - xs[0]) if len(xs) > step else 1.0
    for j, (e, lo, hi) in enumerate([(E, zmin, zmax), (E + c, zmin + c, zmax + c)], start=1):
        fig.add_trace(go.Heatmap(x=xs, y=xs, z=np.minimum(e, hi), colorscale=ENERGY_SCALE, zmin=lo, zmax=hi,
                                 colorbar=dict(title=dict(text="nats"), x=0.41 if j == 1 else 1.0, len=0.9),
                                 hovertemplate="E = %{z:.2f}<extra></extra>"), row=1, col=j)
        u, w = grid_score(e, xs)
        u, w = u[sub, sub], w[sub, sub]
        mag = np.hypot(u, w)
        k = np.minimum(1.0, 1.0 / np.maximum(mag, 1e-12)) * 0.8 * spacing  # unit-ish arrows, capped at 0.8 cells
        fig.add_trace(quiver(gx, gy, u * k, w * k, color="#ffffff", name="score −∇E", showlegend=False, width=1.5),
                      row=1, col=j)
    return _square_panels(fig, float(xs[-1]), 2, 460)


def format_z(z: dict) -> str:
    """Z for display; as e^(log Z) when it is too small for a float."""
    return f"{z['Z']:.4g}" if math.isfinite(z["Z"]) and z["Z"] > 1e-300 else f"e^{z['log_Z']:.1f}"


def convergence_figure(convergence: dict) -> go.Figure:
    """How far the 2-D grid's Z is from the finest grid's, against the number of evaluations (log-log)."""
    ns = sorted(convergence)[:-1]
    ref = convergence[max(convergence)]
    err = [max(abs(math.expm1(convergence[m] - ref)), 1e-16) for m in ns]
    fig = go.Figure(go.Scatter(x=[m * m for m in ns], y=err, mode="lines+markers", name="|Z(n) / Z(finest) − 1|",
                               line=dict(color=PALETTE[3], width=3), marker=dict(size=9),
                               customdata=ns, hovertemplate="n = %{customdata}: %{x:,} evaluations<br>"
                                                            "relative error %{y:.2g}<extra></extra>"))
    fig.update_layout(title=dict(text="2-D: error of the grid's Z"), height=480, font=FONT, plot_bgcolor="white",
                      margin=dict(l=70, r=20, t=60, b=60),
                      xaxis=dict(type="log", title="evaluations n²", dtick=1, gridcolor="#e5e5e5"),
                      yaxis=dict(type="log", title=f"relative error (vs n = {max(convergence)})", dtick=2,
                                 exponentformat="power", gridcolor="#e5e5e5"))
    return fig


def cost_figure(n: int, max_dim: int = MNIST_DIM) -> go.Figure:
    """log10 of the n^d evaluations a grid needs in d dimensions, against d, beside two cosmic yardsticks."""
    dims = np.arange(1, max_dim + 1)
    y = cost_in_d(n, dims)
    fig = go.Figure(go.Scatter(x=dims, y=y, mode="lines", name=f"{n} points per axis",
                               line=dict(color=PALETTE[0], width=3),
                               hovertemplate="d = %{x}<br>10^%{y:.1f} evaluations<extra></extra>"))
    atoms = ATOMS_IN_UNIVERSE_LOG10
    budget = math.log10(EVALS_PER_SECOND * SECONDS_PER_YEAR * AGE_OF_UNIVERSE_YEARS)
    fig.add_trace(go.Scatter(x=[1, max_dim], y=[atoms, atoms], mode="lines", name="atoms in the universe (10^80)",
                             line=dict(color=PALETTE[5], width=2, dash="dash")))
    fig.add_trace(go.Scatter(x=[1, max_dim], y=[budget, budget], mode="lines",
                             name=f"10^9 per second since the Big Bang (10^{budget:.1f})",
                             line=dict(color=PALETTE[2], width=2, dash="dash")))
    marks = [2, max_dim]
    fig.add_trace(go.Scatter(x=marks, y=list(cost_in_d(n, marks)), mode="markers+text",
                             text=["", f"a 28×28 image (d = {max_dim}): 10^{float(cost_in_d(n, [max_dim])[0]):.0f}"],
                             textposition="middle left", textfont=dict(size=16),
                             marker=dict(size=14, color=PALETTE[1], line=dict(width=1, color="black")),
                             name=f"our 2-D toy (10^{float(cost_in_d(n, [2])[0]):.1f}) and an MNIST image",
                             hovertemplate="d = %{x}<br>10^%{y:.1f} evaluations<extra></extra>"))
    fig.update_layout(title=dict(text=f"The same grid in d dimensions: {n}^d evaluations"), height=480, font=FONT,
                      plot_bgcolor="white", margin=dict(l=70, r=20, t=60, b=60),
                      xaxis=dict(title="dimensions d", type="log", gridcolor="#e5e5e5"),
                      yaxis=dict(title="log₁₀ (evaluations)", range=[0, max(float(y[-1]), 100) * 1.15],
                                 gridcolor="#e5e5e5"),
                      legend=dict(x=0.02, y=0.72, xanchor="left", yanchor="top", bgcolor="rgba(255,255,255,0.85)",
                                  font=dict(size=14)))
    return fig
