"""One digit's sampling run as pictures (no Streamlit here): x_t and the model's x0_hat at chosen steps
(`film_strip`) and at every step as an in-browser movie (`journey_animation`), x_t shown divided by
sqrt(alpha^2 + sigma^2)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .figures import FONT, add_player, place_player, with_frames
from .images import fmt_lam, hide_image_axes, image_grid, image_heatmap, image_z, normalised


def film_steps(n_steps: int, k: int = 8) -> list[int]:
    """k step indices spread evenly over 0..n_steps (n_steps = the sample), always with both ends."""
    if n_steps <= 0:
        return [0]
    return sorted(set(np.round(np.linspace(0, n_steps, min(k, n_steps + 1))).astype(int).tolist()))


def _frames_of(traj, schedule):
    """(names, x_t images, x0_hat images, titles) for every step of a Trajectory of one image (batch index 0).

    x_t is shown divided by sqrt(alpha^2 + sigma^2); the last frame is the sample itself, in both panels."""
    ts = traj.ts.tolist()
    n = len(ts) - 1
    names, xts, x0s, labels = [], [], [], []
    for i in range(n + 1):
        t = ts[i]
        lam = float(schedule.logsnr(t))
        if i < n:
            xts.append(normalised(traj.xs[i, 0], schedule, t))
            x0s.append(traj.x0_hats[i, 0])
        else:  # the sample (already divided by alpha(t_min) by the sampler's front door)
            xts.append(traj.xs[n, 0])
            x0s.append(traj.xs[n, 0])
        names.append(f"{i}")
        labels.append(f"step {i}: t = {t:.3f}, λ = {fmt_lam(lam)}" if i < n else f"the sample: t = {t:.3f}, λ = {fmt_lam(lam)}")
    return names, xts, x0s, labels


def film_strip(traj, schedule, k: int = 8) -> go.Figure:
    """x_t (top row) and the model's x0_hat (bottom row) at k chosen steps of one sample's run."""
    _, xts, x0s, labels = _frames_of(traj, schedule)
    idx = film_steps(len(traj.ts) - 1, k)
    ts = traj.ts.tolist()
    titles = [[f"t = {ts[i]:.2f}<br>λ = {fmt_lam(schedule.logsnr(ts[i]))}" for i in idx], [""] * len(idx)]
    images = np.stack([[xts[i].reshape(28, 28).numpy() for i in idx], [x0s[i].reshape(28, 28).numpy() for i in idx]])
    return image_grid(images, titles, ["x_t (scaled)", "predicted x̂₀"], cell=115)


def journey_animation(traj, schedule, active: int = 0) -> go.Figure:
    """A movie over every step: x_t (scaled by 1 / sqrt(alpha^2 + sigma^2)) beside the model's x0_hat."""
    names, xts, x0s, labels = _frames_of(traj, schedule)
    fig = make_subplots(rows=1, cols=2, subplot_titles=["x_t / √(α² + σ²)", "predicted x̂₀"],
                        horizontal_spacing=0.06)
    fig.add_trace(image_heatmap(image_z(xts[active])), row=1, col=1)
    fig.add_trace(image_heatmap(image_z(x0s[active])), row=1, col=2)
    hide_image_axes(fig, 1, 2)
    fig.update_layout(height=560, font=FONT, plot_bgcolor="white", margin=dict(l=20, r=20, t=90, b=120),
                      title=dict(text=labels[active], font=dict(size=17)))
    add_player(fig, names, active=active, prefix="step ", ms_per_frame=120)
    place_player(fig, below=20)
    frames = [dict(name=nm, data=[dict(type="heatmap", z=image_z(a)), dict(type="heatmap", z=image_z(b))],
                   layout=dict(title=dict(text=lab))) for nm, a, b, lab in zip(names, xts, x0s, labels)]
    return with_frames(fig, frames)
