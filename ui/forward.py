"""Builders for page 4, the forward process and the signal-to-noise ratio (no streamlit here).

`forward_animation` is the noising movie (exact p_t as a heat map, noisy points, a few tracked points
with their path so far), `schedule_curves` the alpha / sigma / SNR / log-SNR curves of several schedules
on shared axes, and `schedules_from_params` turns slider values into schedules, falling back to the
defaults (with a message naming the parameter) when a combination is rejected. `logsnr_digit_grid` /
`logsnr_grid_figure` are the digit view: the same digit and the same noise at a row of log-SNR values for
every schedule, where equal lambda gives the same picture once divided by sqrt(alpha^2 + sigma^2).
"""

from __future__ import annotations


import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from diffusion.schedules import SCHEDULES, make_schedule

from .figures import (DENSITY_SCALE, FONT, PALETTE, add_player, density_grid, joined, place_player, plain_dict,
                      round_coords, round_density, view_half_width, with_frames)
from .images import image_grid
from .threads import one_thread

FRAME_TS = np.round(np.linspace(0.0, 1.0, 31), 4)  # the animation's t values (every 1/30)
FORWARD_LAMBDAS = (8.0, 4.0, 2.0, 0.0, -2.0, -4.0, -8.0)  # the digit view's columns
TRACK_COLOR = "#000000"


def nearest_frame(ts, t: float) -> int:
    """Index of the frame time closest to t."""
    return int(np.argmin(np.abs(np.asarray(ts, dtype=float) - float(t))))


def forward_points(dist, n_points: int = 600, seed: int = 0, label=None):
    """(x0 [n, 2], labels [n], eps [n, 2]): clean points and the noise that will be mixed in, fixed by `seed`."""
    g = torch.Generator().manual_seed(seed)
    x0, y = dist.sample(n_points, label=label, generator=g)
    eps = torch.randn(x0.shape, generator=g)
    return x0, y, eps


def noised(schedule, t: float, x0, eps):
    """x_t = alpha_t x0 + sigma_t eps (float32), and the (alpha, sigma) used."""
    alpha, sigma = schedule.alpha_sigma(float(t))
    return (alpha * x0.double() + sigma * eps.double()).float(), float(alpha), float(sigma)


def pixel_power(x) -> tuple[float, float]:
    """(E[x^2], variance) over all pixels of a batch of images: the power the SNR scales, and the part of it
    that varies from image to image and pixel to pixel."""
    x = torch.as_tensor(x, dtype=torch.float64)
    return float((x**2).mean()), float(x.var())


def _frame_traces(dist, alpha, sigma, xt, y, paths, label, grid_n):
    """The frame's traces (coordinates only; forward_animation styles the base traces)."""
    half = view_half_width(alpha, sigma)
    xs, _, p = density_grid(dist, alpha, sigma, n=grid_n, extent=half, label=label)
    traces = [dict(type="heatmap", x=round_coords(xs), y=round_coords(xs), z=round_density(p),
                   colorscale=DENSITY_SCALE, showscale=False,
                   hovertemplate="x₁ %{x:.2f}, x₂ %{y:.2f}<br>p_t = %{z:.3g}<extra></extra>")]
    for c in range(dist.num_classes):
        m = y == c
        traces.append(dict(type="scattergl", x=round_coords(xt[m, 0]), y=round_coords(xt[m, 1])))
    px, py = joined(paths)  # the tracked points' paths x_s for s up to t
    traces.append(dict(type="scatter", x=px, y=py))
    traces.append(dict(type="scatter", x=round_coords([p[-1, 0] for p in paths]),
                       y=round_coords([p[-1, 1] for p in paths])))
    return traces, half


def forward_path(schedule, ts, x0, eps):
    """x_t = alpha_t x0 + sigma_t eps for every t in ts: [len(ts), n, 2] numpy, with alphas and sigmas [len(ts)]."""
    alpha, sigma = schedule.alpha_sigma(torch.as_tensor(np.asarray(ts, dtype=float), dtype=torch.float64))
    xt = alpha[:, None, None] * x0.double()[None] + sigma[:, None, None] * eps.double()[None]
    return xt.float().numpy(), alpha.numpy(), sigma.numpy()


def forward_animation(dist, schedule, ts=FRAME_TS, n_points: int = 500, n_tracked: int = 5, seed: int = 0,
                      label=None, active: int = 0, grid_n: int = 56) -> go.Figure:
    """The forward process as an in-browser movie over `ts`.

    Each frame: the exact density p_t (of the label's conditional when `label` is set) as a heat map, the
    points x_t = alpha_t x0 + sigma_t eps coloured by class, and `n_tracked` points (the first ones) as black
    rings with their path from t = 0 up to the frame's t. The view zooms out with sqrt(alpha^2 + sigma^2)
    so variance-exploding schedules stay in sight. The figure opens at frame `active`.
    """
    with one_thread():
        return _forward_animation(dist, schedule, ts, n_points, n_tracked, seed, label, active, grid_n)


def _forward_animation(dist, schedule, ts, n_points, n_tracked, seed, label, active, grid_n):
    x0, y, eps = forward_points(dist, n_points, seed, label)
    tracked = list(range(min(n_tracked, n_points)))
    names, frames = [], []
    xts, alphas, sigmas = forward_path(schedule, ts, x0, eps)
    y = y.numpy()
    for k, t in enumerate(ts):
        alpha, sigma = float(alphas[k]), float(sigmas[k])
        paths = [xts[:k + 1, i] for i in tracked]
        traces, half = _frame_traces(dist, alpha, sigma, xts[k], y, paths, label, grid_n)
        lam = float(schedule.logsnr(float(t)))
        name = f"{t:.2f}"
        names.append(name)
        title = (f"Exact p_t and noisy points at t = {t:.2f}: α = {alpha:.3f}, σ = {sigma:.3g}, "
                 f"log-SNR λ = {lam + 0.0:.2f}")
        frames.append(dict(name=name, data=traces, layout=dict(
            title=dict(text=title), xaxis=dict(range=[-half, half]), yaxis=dict(range=[-half, half]))))
    fig = go.Figure(data=frames[active]["data"])
    names_ = list(dist.label_names)
    for c in range(dist.num_classes):  # style the class traces (frames carry only coordinates)
        fig.data[1 + c].update(mode="markers", name=names_[c], legendgroup=str(c),
                               marker=dict(size=5, color=PALETTE[c % len(PALETTE)],
                                           line=dict(width=0.3, color="white")),
                               hovertemplate=f"{names_[c]}<extra></extra>")
        if label is not None and c != label:
            fig.data[1 + c].update(showlegend=False)
    k_path, k_pts = 1 + dist.num_classes, 2 + dist.num_classes
    fig.data[k_path].update(mode="lines", name="path of a tracked point", line=dict(color=TRACK_COLOR, width=2),
                            hoverinfo="skip")
    fig.data[k_pts].update(mode="markers", name="tracked point x_t",
                           marker=dict(size=13, color="rgba(0,0,0,0)", line=dict(width=3, color=TRACK_COLOR)),
                           hovertemplate="tracked x_t (%{x:.2f}, %{y:.2f})<extra></extra>")
    fig.update_layout(frames[active]["layout"])
    fig.update_xaxes(title_text="x₁ (data units)", constrain="domain")
    fig.update_yaxes(title_text="x₂ (data units)", scaleanchor="x", scaleratio=1, constrain="domain")
    fig.update_layout(height=740, font=FONT, plot_bgcolor="white", margin=dict(l=70, r=20, t=60, b=190),
                      legend=dict(orientation="h", y=-0.42, x=0), title=dict(font=dict(size=17)))
    add_player(fig, names, active=active, prefix="t = ", ms_per_frame=150)
    place_player(fig)
    return with_frames(fig, frames)


# --- the schedule curves ---------------------------------------------------------------------------

def default_params(name: str) -> dict[str, float]:
    return dict(SCHEDULES[name]().params)


def schedules_from_params(params: dict[str, dict[str, float]]):
    """({name: Schedule}, [messages]): each schedule from its slider values, or its defaults if rejected."""
    out, notes = {}, []
    for name, p in params.items():
        try:
            out[name] = make_schedule(name, **p)
        except ValueError as e:
            notes.append(f"{name}: {e}. Using its default parameters.")
            out[name] = make_schedule(name)
    return out, notes


def curve_values(schedule, ts) -> dict[str, np.ndarray]:
    """alpha, sigma, SNR = alpha^2 / sigma^2 and log-SNR lambda on the times `ts` (clamped to t_range)."""
    t = torch.as_tensor(np.asarray(ts, dtype=float), dtype=torch.float64)
    alpha, sigma = schedule.alpha_sigma(t)
    lam = schedule.logsnr(t)
    return {"alpha": alpha.numpy(), "sigma": sigma.numpy(), "snr": torch.exp(lam).numpy(), "logsnr": lam.numpy()}


CURVES = [("alpha", "α(t): signal kept", False), ("sigma", "σ(t): noise added (log axis)", True),
          ("snr", "SNR(t) = α²/σ² (log axis)", True), ("logsnr", "log-SNR λ(t) = log(α²/σ²)", False)]


# Six schedules told apart on a projector by colour and dash together (two blues or two oranges alone blur).
CURVE_STYLES = [("#0072B2", "solid"), ("#E69F00", "solid"), ("#009E73", "dash"), ("#CC79A7", "dot"),
                ("#000000", "dashdot"), ("#D55E00", "longdash")]


def curve_lines(schedules: dict, current: str, names: dict | None = None, n: int = 201) -> go.Figure:
    """A 2x2 grid: alpha, sigma, SNR and log-SNR against t for every schedule, `current` drawn bold."""
    names = names or {}
    ts = np.linspace(0.0, 1.0, n)
    fig = make_subplots(rows=2, cols=2, subplot_titles=[c[1] for c in CURVES], horizontal_spacing=0.1,
                        vertical_spacing=0.17)
    for j, (name, sched) in enumerate(schedules.items()):
        vals = curve_values(sched, ts)
        bold = name == current
        label = names.get(name, name) + (" (sidebar)" if bold else "")
        for i, (key, _, _) in enumerate(CURVES):
            fig.add_trace(go.Scatter(x=ts, y=vals[key], mode="lines", name=label, legendgroup=name,
                                     showlegend=i == 0, opacity=1.0 if bold else 0.75,
                                     line=dict(color=CURVE_STYLES[j % 6][0], dash=CURVE_STYLES[j % 6][1],
                                               width=5 if bold else 2.5),
                                     hovertemplate=f"{label}<br>t = %{{x:.2f}}<br>{key} = %{{y:.3g}}<extra></extra>"),
                          row=i // 2 + 1, col=i % 2 + 1)
    for i, (key, _, log) in enumerate(CURVES):
        row, col = i // 2 + 1, i % 2 + 1
        fig.update_xaxes(title_text="t (0 = data, 1 = noise)" if row == 2 else None, range=[0, 1], row=row, col=col)
        fig.update_yaxes(type="log" if log else "linear", row=row, col=col, exponentformat="power",
                         dtick=1 if key == "sigma" else None)  # one label a decade
    fig.update_yaxes(title_text="α", row=1, col=1)
    fig.update_yaxes(title_text="σ", row=1, col=2)
    fig.update_yaxes(title_text="SNR", row=2, col=1)
    fig.update_yaxes(title_text="λ (nats)", row=2, col=2)
    fig.update_layout(height=790, font=FONT, plot_bgcolor="white", margin=dict(l=70, r=20, t=50, b=110),
                      legend=dict(orientation="h", x=0, y=0, yanchor="bottom", yref="container"))  # under the x title
    fig.update_xaxes(gridcolor="#e5e5e5")
    fig.update_yaxes(gridcolor="#e5e5e5")
    return fig


def mark_t(lines: go.Figure, schedules: dict, current: str, t: float, names: dict | None = None) -> go.Figure:
    """`lines` (from curve_lines, left untouched) plus each schedule's value at t as a dot and a dashed line at t.

    Built as plain dicts on top of the already checked figure, so moving t costs milliseconds."""
    names = names or {}
    out = plain_dict(lines)
    axes = ["", "2", "3", "4"]
    for j, (name, sched) in enumerate(schedules.items()):
        here = curve_values(sched, [t])
        bold = name == current
        label = names.get(name, name) + (" (sidebar)" if bold else "")
        for i, (key, _, _) in enumerate(CURVES):
            out["data"].append(dict(
                type="scatter", x=[float(t)], y=[float(here[key][0])], mode="markers", legendgroup=name,
                showlegend=False, name=f"{label} at t", xaxis="x" + axes[i], yaxis="y" + axes[i],
                marker=dict(size=15 if bold else 10, color=CURVE_STYLES[j % 6][0], line=dict(width=2, color="black")),
                hovertemplate=f"{label} at t = %{{x:.2f}}: {key} = %{{y:.3g}}<extra></extra>"))
    out["layout"]["shapes"] = [dict(type="line", xref="x" + a, yref=f"y{a} domain", x0=float(t), x1=float(t), y0=0,
                                    y1=1, line=dict(color="#777777", width=1.5, dash="dash")) for a in axes]
    return go.Figure(out, _validate=False)


def schedule_curves(schedules: dict, current: str, t: float, names: dict | None = None, n: int = 201) -> go.Figure:
    """The 2x2 curve grid of every schedule with `current` bold and each schedule's value at `t` marked."""
    return mark_t(curve_lines(schedules, current, names, n), schedules, current, t, names)


# --- the digit view: the same digit at equal log-SNR under every schedule --------------------------

def logsnr_digit_grid(x0, schedules: dict, lambdas=FORWARD_LAMBDAS, seed: int = 0):
    """(images [S, L, 28, 28], ts [S, L], actual lambdas [S, L]) for one digit x0 [1, 28, 28] and one eps.

    For each schedule and each lambda: t = schedule.t_of_logsnr(lambda) (clamped to the schedule's range),
    x_t = alpha_t x0 + sigma_t eps, shown as x_t / sqrt(alpha_t^2 + sigma_t^2) = (x0 + e^{-lambda/2} eps) /
    sqrt(1 + e^{-lambda}): a function of lambda alone, so equal lambdas give equal pictures."""
    x0 = torch.as_tensor(x0, dtype=torch.float64).reshape(28, 28)
    eps = torch.randn((28, 28), generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64)
    lams = torch.tensor(lambdas, dtype=torch.float64)
    imgs, tss, lam_out = [], [], []
    for sched in schedules.values():
        ts = sched.t_of_logsnr(lams)
        a, s = sched.alpha_sigma(ts)
        scale = torch.sqrt(a**2 + s**2)
        imgs.append(((a / scale)[:, None, None] * x0 + (s / scale)[:, None, None] * eps).numpy())
        tss.append(ts.numpy())
        lam_out.append(sched.logsnr(ts).numpy())
    return np.stack(imgs), np.stack(tss), np.stack(lam_out)


def logsnr_grid_figure(images, ts, lams, lambdas=FORWARD_LAMBDAS, row_names=None) -> go.Figure:
    """The grid of logsnr_digit_grid: rows = schedules, columns = log-SNR values, each cell titled with its t."""
    rows, cols = ts.shape
    titles = []
    for r in range(rows):
        row = []
        for c in range(cols):
            head = f"λ = {lambdas[c]:g}<br>" if r == 0 else ""
            off = "" if abs(lams[r, c] - lambdas[c]) < 1e-3 else f" (λ={lams[r, c]:.1f})"
            row.append(f"{head}t = {ts[r, c]:.3f}{off}")
        titles.append(row)
    fig = image_grid(images, titles, row_names, cell=120)
    fig.update_layout(height=80 + rows * 175, margin=dict(l=130, r=10, t=80, b=10))
    return fig
