"""Builders for page 10, a digit's journey, and for the digit view of page 4 (no streamlit here).

* `film_strip` / `journey_animation`: one sample's x_t and predicted x0_hat at chosen steps, and as a movie.
* `noise_to` / `journey_from` / `survival_sweep` / `survival_figure`: noise a real digit to time t, run a
  sampler from t (not from t_max) back to 0 (diffusion.samplers.sample with t_start), and measure how much
  of the original survives at each log-SNR.
* `fit_pca` / `project_trajectory` / `pca_journey`: many reverse trajectories projected onto the first two
  principal components of real digits, animated from the noise blob to the digit clusters.
* `film_trajectory` / `noise_and_back` / `survival` / `many_trajectories`: the page's sampling runs, as
  module-level functions of (model, schedule, ...) so that they can run in a worker process.
* `logsnr_digit_grid` / `logsnr_grid_figure`: the same digit and the same noise at a row of log-SNR
  values for every schedule (page 4): equal lambda gives the same picture once divided by sqrt(alpha^2 + sigma^2).

Images are tensors [..., 1, 28, 28] (or [..., 28, 28]) in [-1, 1]; everything returned is numpy or plotly.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from diffusion.models import reschedule
from diffusion.samplers import guided, prior_sample, sample

from .figures import FONT, PALETTE, add_player, place_player, with_frames

INK_SCALE = [[0.0, "#ffffff"], [1.0, "#000000"]]  # -1 (background) white, +1 (ink) black: readable when projected
# Plotly's D3 palette (the "category10" of d3.js): ten qualitative colours made to be told apart.
DIGIT_COLORS = list(qualitative.D3)
FORWARD_LAMBDAS = (8.0, 4.0, 2.0, 0.0, -2.0, -4.0, -8.0)  # the digit view's columns on page 4


def digit_color(d: int) -> str:
    return DIGIT_COLORS[int(d) % len(DIGIT_COLORS)]


# --- showing digits -------------------------------------------------------------------------------

def image_z(img) -> np.ndarray:
    """A [28, 28] (or [1, 28, 28]) image as a heat map's z: clipped to [-1, 1], rows flipped so that row 0 is
    drawn at the top of an ordinary (upward) y axis, rounded to 3 decimals (a smaller figure)."""
    a = np.asarray(torch.as_tensor(img).detach().double().cpu().numpy()).reshape(28, 28)
    return np.round(np.clip(a, -1.0, 1.0)[::-1], 3).astype(np.float32)


def _heat(z, **kw) -> go.Heatmap:
    return go.Heatmap(z=z, colorscale=INK_SCALE, zmin=-1, zmax=1, showscale=False,
                      hovertemplate="pixel value %{z:.2f}<extra></extra>", **kw)


def _hide_axes(fig: go.Figure, rows: int, cols: int) -> None:
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
            fig.add_trace(_heat(image_z(images[r, c])), row=r + 1, col=c + 1)
    _hide_axes(fig, rows, cols)
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
    fig.add_trace(_heat(image_z(xts[active])), row=1, col=1)
    fig.add_trace(_heat(image_z(x0s[active])), row=1, col=2)
    _hide_axes(fig, 1, 2)
    fig.update_layout(height=560, font=FONT, plot_bgcolor="white", margin=dict(l=20, r=20, t=90, b=120),
                      title=dict(text=labels[active], font=dict(size=17)))
    add_player(fig, names, active=active, prefix="step ", ms_per_frame=120)
    place_player(fig, below=20)
    frames = [dict(name=nm, data=[dict(type="heatmap", z=image_z(a)), dict(type="heatmap", z=image_z(b))],
                   layout=dict(title=dict(text=lab))) for nm, a, b, lab in zip(names, xts, x0s, labels)]
    return with_frames(fig, frames)


# --- noise a digit to t and denoise it back -------------------------------------------------------

def noise_to(schedule, t: float, x0: torch.Tensor, seed: int = 0):
    """(x_t = alpha_t x0 + sigma_t eps, eps): eps ~ N(0, I) from a generator seeded with `seed`."""
    g = torch.Generator().manual_seed(int(seed))
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float32)
    a, s = schedule.alpha_sigma(float(t))
    return (float(a) * x0.float() + float(s) * eps), eps


def mse(a, b) -> float:
    """Mean squared error per pixel, after clipping both to the pixel range [-1, 1]."""
    a, b = torch.as_tensor(a).double().clamp(-1, 1), torch.as_tensor(b).double().clamp(-1, 1)
    return float(((a - b) ** 2).mean())


def psnr(err: float) -> float:
    """Peak signal-to-noise ratio in dB for pixels in [-1, 1] (peak-to-peak 2): 10 log10(4 / MSE); inf at 0."""
    return math.inf if err <= 0 else 10 * math.log10(4.0 / err)


def journey_from(denoise, x0, schedule, t: float, sampler: str, steps: int, seed: int = 0) -> dict:
    """Noise x0 [1, 1, 28, 28] to t, predict x0 in one step, and denoise back to 0 with the sampler.

    Returns {'x_t', 'x0_hat' (one step), 'back' (after the full reverse run), 'mse_*', 'psnr_*'}; the
    sampler's own noise (DDPM, SDE) comes from a generator seeded with seed + 1."""
    x_t, _ = noise_to(schedule, t, x0, seed)
    t_c = float(schedule.clamp(float(t)))
    one = denoise(x_t, torch.tensor(t_c, dtype=torch.float64))
    back = sample(denoise, x_t, schedule, sampler, steps, t_start=t_c,
                  generator=torch.Generator().manual_seed(seed + 1))
    out = {"x_t": x_t, "x0_hat": one, "back": back}
    for k in ("x0_hat", "back"):
        out[f"mse_{k}"] = mse(out[k], x0)
        out[f"psnr_{k}"] = psnr(out[f"mse_{k}"])
    return out


SURVIVAL_LAMBDAS = np.linspace(8.0, -8.0, 13)  # the sweep's log-SNR values, clean to nearly pure noise


def survival_ts(schedule, lambdas=SURVIVAL_LAMBDAS) -> np.ndarray:
    """The times at which `schedule` reaches each lambda (clamped to its range; repeats dropped), increasing."""
    ts = schedule.t_of_logsnr(torch.as_tensor(np.asarray(lambdas, dtype=float))).numpy()
    return np.unique(ts)


def survival_row(denoise, x0, schedule, t: float, sampler: str, steps: int, seed: int = 0) -> tuple:
    """(t, logsnr, mse of the one-step x0_hat, of the image denoised back, of the noisy image x_t / alpha_t)."""
    r = journey_from(denoise, x0, schedule, float(t), sampler, steps, seed)
    a = float(schedule.alpha_sigma(float(t))[0])
    return float(t), float(schedule.logsnr(float(t))), r["mse_x0_hat"], r["mse_back"], mse(r["x_t"] / a, x0)


def survival_from_rows(rows) -> dict:
    arr = np.array(rows, dtype=float).reshape(-1, 5)
    return {"t": arr[:, 0], "logsnr": arr[:, 1], "mse_x0_hat": arr[:, 2], "mse_back": arr[:, 3], "mse_noisy": arr[:, 4]}


def survival_sweep(denoise, x0, schedule, sampler: str, steps: int, ts, seed: int = 0) -> dict:
    """journey_from at every t of `ts` (same eps): arrays 't', 'logsnr', 'mse_x0_hat', 'mse_back', 'mse_noisy'
    (the noisy image x_t / alpha_t itself, for scale)."""
    return survival_from_rows([survival_row(denoise, x0, schedule, t, sampler, steps, seed) for t in ts])


def survival_figure(sweep: dict, schedule, t_now: float, now: dict, schedule_name: str = "") -> go.Figure:
    """Left: MSE to the original against log-SNR (one-step x0_hat, denoised back, and the noisy image),
    with the sidebar's t marked. Right: the schedule's log-SNR curve lambda(t) with the same point marked."""
    lam_now = float(schedule.logsnr(float(t_now)))
    fig = make_subplots(rows=1, cols=2, column_widths=[0.58, 0.42], horizontal_spacing=0.1,
                        subplot_titles=["How much survives: MSE to the original", f"log-SNR λ(t) of the {schedule_name} schedule".replace("  ", " ")])
    lines = [("mse_back", "denoised back to t = 0", PALETTE[0], "solid"),
             ("mse_x0_hat", "one-step guess x̂₀", PALETTE[1], "solid"),
             ("mse_noisy", "noisy image x_t / α_t", "#777777", "dash")]
    top = 0.0
    for key, name, color, dash in lines:
        y = np.minimum(sweep[key], 4.0)  # x_t / alpha explodes at low SNR: the plot stops at the pixel range
        top = max(top, float(np.max(sweep[key if key != "mse_noisy" else "mse_back"])))
        fig.add_trace(go.Scatter(x=sweep["logsnr"], y=y, mode="lines+markers", name=name, showlegend=True,
                                 line=dict(color=color, width=3, dash=dash), marker=dict(size=7, color=color),
                                 hovertemplate=f"{name}<br>λ = %{{x:.2f}}<br>MSE = %{{y:.3f}}<extra></extra>"),
                      row=1, col=1)
    for key, color, name in (("mse_back", PALETTE[0], "this t: denoised back"), ("mse_x0_hat", PALETTE[1], "this t: one-step")):
        fig.add_trace(go.Scatter(x=[lam_now], y=[now[key]], mode="markers", name=name, showlegend=False,
                                 marker=dict(size=16, color=color, line=dict(width=2, color="black")),
                                 hovertemplate=f"{name}: MSE %{{y:.3f}}<extra></extra>"), row=1, col=1)
    ts = np.linspace(0, 1, 201)
    lam = schedule.logsnr(torch.as_tensor(ts)).numpy()
    fig.add_trace(go.Scatter(x=ts, y=lam, mode="lines", name="λ(t)", line=dict(color=PALETTE[2], width=3),
                             showlegend=False, hovertemplate="t = %{x:.2f}<br>λ = %{y:.2f}<extra></extra>"), row=1, col=2)
    fig.add_trace(go.Scatter(x=[float(t_now)], y=[lam_now], mode="markers", name="sidebar t", showlegend=False,
                             marker=dict(size=16, color=PALETTE[2], line=dict(width=2, color="black")),
                             hovertemplate="sidebar t = %{x:.2f}<br>λ = %{y:.2f}<extra></extra>"), row=1, col=2)
    lo, hi = float(np.min(sweep["logsnr"])), float(np.max(sweep["logsnr"]))
    pad = 0.04 * (hi - lo + 1e-9)
    fig.update_xaxes(title_text="log-SNR λ (noisier to the right)", range=[hi + pad, lo - pad], row=1, col=1)
    fig.update_yaxes(title_text="MSE per pixel (pixels in [-1, 1])", range=[0, max(0.1, 1.1 * top)], row=1, col=1)
    fig.update_xaxes(title_text="t (0 = data, 1 = noise)", range=[0, 1], row=1, col=2)
    fig.update_yaxes(title_text="λ (nats)", row=1, col=2)
    fig.update_xaxes(gridcolor="#e5e5e5")
    fig.update_yaxes(gridcolor="#e5e5e5")
    fig.update_layout(height=470, font=FONT, plot_bgcolor="white", margin=dict(l=80, r=20, t=60, b=130),
                      legend=dict(orientation="h", y=-0.3, x=0))
    return fig


# --- PCA of many trajectories ----------------------------------------------------------------------

def fit_pca(images, seed: int = 0):
    """sklearn PCA(2) fitted on flattened digits [N, 784]."""
    from sklearn.decomposition import PCA

    x = torch.as_tensor(images).reshape(len(images), -1).double().numpy()
    return PCA(n_components=2, svd_solver="randomized", random_state=seed).fit(x)


def project(pca, images) -> np.ndarray:
    """[N, 2] coordinates of flattened images [N, ...] on the two principal components."""
    x = torch.as_tensor(images).reshape(len(images), -1).double().numpy()
    return pca.transform(x)


def project_trajectory(pca, traj, schedule, what: str = "x_t") -> np.ndarray:
    """[S+1, B, 2]: every step of a Trajectory projected. what = 'x_t': x_t / sqrt(alpha^2 + sigma^2) (the last
    row is the sample); what = 'x0_hat': the model's x0_hat at each step (the last row is the sample)."""
    if what not in ("x_t", "x0_hat"):
        raise ValueError(f"what must be 'x_t' or 'x0_hat'; got {what!r}")
    n = len(traj.ts) - 1
    rows = []
    for i in range(n):
        img = normalised(traj.xs[i], schedule, float(traj.ts[i])) if what == "x_t" else traj.x0_hats[i]
        rows.append(project(pca, img))
    rows.append(project(pca, traj.xs[n]))
    return np.stack(rows)


def pca_journey(cloud_xy, cloud_labels, paths, path_labels, ts, schedule, active: int | None = None,
                what: str = "x_t") -> go.Figure:
    """The real digits' PCA cloud (faint, coloured by digit) and the particles' positions at each step, animated.

    `paths` [S+1, B, 2] from project_trajectory, `path_labels` [B] the digit each particle was asked for."""
    paths = np.asarray(paths, dtype=float)
    cloud_xy, cloud_labels, path_labels = np.asarray(cloud_xy), np.asarray(cloud_labels), np.asarray(path_labels)
    n = paths.shape[0] - 1
    active = n if active is None else active
    digits = sorted(set(cloud_labels.tolist()) | set(path_labels.tolist()))
    fig = go.Figure()
    for d in digits:
        m = cloud_labels == d
        fig.add_trace(go.Scattergl(x=np.round(cloud_xy[m, 0], 3), y=np.round(cloud_xy[m, 1], 3), mode="markers",
                                   name=f"digit {d}", legendgroup=str(d),
                                   marker=dict(size=5, color=digit_color(d), opacity=0.5),
                                   hovertemplate=f"real {d}<extra></extra>"))
    first = len(fig.data)
    for d in digits:
        m = path_labels == d
        fig.add_trace(go.Scatter(x=np.round(paths[active, m, 0], 3), y=np.round(paths[active, m, 1], 3),
                                 mode="markers", name=f"sample asked for {d}", legendgroup=str(d), showlegend=False,
                                 marker=dict(size=12, color=digit_color(d), line=dict(width=1.5, color="black")),
                                 hovertemplate=f"sample of {d}<extra></extra>"))
    allx = np.concatenate([cloud_xy[:, 0], paths[..., 0].ravel()])
    ally = np.concatenate([cloud_xy[:, 1], paths[..., 1].ravel()])
    pad = 0.05 * max(np.ptp(allx), np.ptp(ally))
    xr, yr = [float(allx.min() - pad), float(allx.max() + pad)], [float(ally.min() - pad), float(ally.max() + pad)]
    ts = [float(t) for t in ts]
    kind = "x_t / √(α² + σ²)" if what == "x_t" else "predicted x̂₀"
    names, frames = [], []
    for i in range(n + 1):
        lam = float(schedule.logsnr(ts[i]))
        name = f"{i}"
        names.append(name)
        title = (f"Step {i} of {n}: t = {ts[i]:.3f}, λ = {fmt_lam(lam)} ({kind})" if i < n
                 else f"The samples (step {n}, t = {ts[i]:.3f})")
        frames.append(dict(name=name, traces=list(range(first, first + len(digits))),
                           data=[dict(type="scatter", x=np.round(paths[i, path_labels == d, 0], 3),
                                      y=np.round(paths[i, path_labels == d, 1], 3)) for d in digits],
                           layout=dict(title=dict(text=title))))
    fig.update_layout(frames[active]["layout"])
    fig.update_xaxes(title_text="principal component 1 (pixel units)", range=xr, constrain="domain",
                     gridcolor="#e5e5e5", zeroline=False)
    fig.update_yaxes(title_text="principal component 2", range=yr, scaleanchor="x", scaleratio=1, constrain="domain",
                     gridcolor="#e5e5e5", zeroline=False)
    fig.update_layout(height=800, font=FONT, plot_bgcolor="white", margin=dict(l=70, r=20, t=100, b=190),
                      legend=dict(orientation="h", y=1.0, yanchor="bottom", x=0, itemsizing="constant"),
                      title=dict(font=dict(size=17), y=0.98))
    add_player(fig, names, active=active, prefix="step ", ms_per_frame=200)
    place_player(fig)
    return with_frames(fig, frames)


# --- the page's sampling runs (module level: ui.workers.offload sends them to a worker process) ---------

def _denoiser(model, schedule, label, w):
    return guided(reschedule(model, schedule), label, w)


@torch.no_grad()
def film_trajectory(model, schedule, sampler: str, steps: int, digit, w: float, seed: int):
    """One sample's whole run from x_T (seeded by `seed`) under `schedule`: a Trajectory with x_t and x0_hat at
    every step. digit None: the unconditional model."""
    g = torch.Generator().manual_seed(int(seed))
    x = prior_sample(schedule, (1, 1, 28, 28), generator=g)
    return sample(_denoiser(model, schedule, digit, w), x, schedule, sampler, steps, generator=g,
                  return_trajectory=True)


def noise_and_back(model, schedule, x0, t: float, sampler: str, steps: int, label, w: float) -> dict:
    """journey_from for the model prompted with `label` (None: unconditional) and guidance w."""
    with torch.no_grad():
        return journey_from(_denoiser(model, schedule, label, w), x0, schedule, t, sampler, steps)


def survival_at(model, schedule, x0, t: float, sampler: str, steps: int, label, w: float) -> tuple:
    """survival_row of x0 at time t for the model prompted with `label` and guidance w."""
    with torch.no_grad():
        return survival_row(_denoiser(model, schedule, label, w), x0, schedule, t, sampler, steps)


def survival(model, schedule, x0, sampler: str, steps: int, label, w: float) -> dict:
    """survival_sweep of x0 at the log-SNR values SURVIVAL_LAMBDAS."""
    with torch.no_grad():
        return survival_sweep(_denoiser(model, schedule, label, w), x0, schedule, sampler, steps,
                              survival_ts(schedule))


@torch.no_grad()
def digit_trajectories(model, schedule, w: float, digit: int, per_digit: int, steps: int, seed: int = 0):
    """The part of many_trajectories that samples `digit`: the same starting noises, so the same samples."""
    g = torch.Generator().manual_seed(int(seed))
    x = prior_sample(schedule, (10 * per_digit, 1, 28, 28), generator=g)[digit * per_digit:(digit + 1) * per_digit]
    return sample(_denoiser(model, schedule, int(digit), w), x, schedule, "ddim", steps, generator=g,
                  return_trajectory=True)


@torch.no_grad()
def many_trajectories(model, schedule, w: float, per_digit: int, steps: int, seed: int = 0):
    """(Trajectory of per_digit samples of each digit 0..9 with DDIM, labels [10 per_digit])."""
    labels = torch.arange(10).repeat_interleave(per_digit)
    g = torch.Generator().manual_seed(int(seed))
    x = prior_sample(schedule, (len(labels), 1, 28, 28), generator=g)
    traj = sample(_denoiser(model, schedule, labels, w), x, schedule, "ddim", steps, generator=g,
                  return_trajectory=True)
    return traj, labels.numpy()


# --- page 4: the same digit at equal log-SNR under every schedule ----------------------------------

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
