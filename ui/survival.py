"""Noise a real digit to time t and denoise it back (no Streamlit here): `noise_to` draws x_t, `journey_from`
predicts x0 in one step and runs a sampler from t (not from t_max) back to 0 (diffusion.samplers.sample with
t_start), and `survival_sweep` / `survival_figure` measure how much of the original survives at each log-SNR."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from diffusion.samplers import sample

from .figures import FONT, PALETTE


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
