"""Builders for page 7, reverse sampling (no streamlit here).

`run` draws noise and runs a sampler with its whole trajectory; `sampling_animation` turns one or two
trajectories (exact beside learned, same starting noise) into an in-browser movie over the exact p_t;
`ode_sde_figure` puts a deterministic and a stochastic run from the same start side by side;
`x0_hat_figure` follows the predicted clean point along a path; `reference_with_controls` and `ed_vs_steps`
score samples against the exact truth with diffusion.metrics.EnergyReference, as an energy-distance ratio
(1 = as close as a fresh true sample), beside how much a perfect sampler's ratio scatters.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from diffusion.metrics import EnergyReference
from diffusion.samplers import Trajectory, guided, prior_sample, sample

from .figures import (DENSITY_SCALE, EXTENT, FONT, PALETTE, add_player, density_grid, joined, place_player,
                      round_coords, round_density, view_half_width, with_frames)
from .threads import one_thread

TRACKED = (0, 1, 2)  # the particles whose predicted x0 is followed
MAX_FRAMES = 61


def run(model, schedule, sampler: str, steps: int, n: int = 2000, seed: int = 0, label=None, guidance: float = 0.0,
        eta: float = 0.0, device: str = "cpu", x_start=None) -> Trajectory:
    """A whole sampling run (on the CPU tensors it returns): noise from `seed` (or `x_start`), sampler noise from
    seed + 1. `model(x, t, label)` returns x0_hat; label and guidance go through classifier-free guidance."""
    x = prior_sample(schedule, (n, 2), seed=seed) if x_start is None else x_start
    g = torch.Generator().manual_seed(seed + 1)
    with one_thread(), torch.no_grad():
        traj = sample(guided(model, label, guidance), x.to(device), schedule, sampler, steps, eta=eta, generator=g,
                      return_trajectory=True)
    return Trajectory(traj.ts.cpu(), traj.xs.detach().cpu().float(), traj.x0_hats.detach().cpu().float())


def frame_indices(n_states: int, max_frames: int = MAX_FRAMES) -> list[int]:
    """Which of the n_states recorded states become frames: all of them, or max_frames spread evenly (ends kept)."""
    if n_states <= max_frames:
        return list(range(n_states))
    return sorted(set(np.round(np.linspace(0, n_states - 1, max_frames)).astype(int).tolist()))


def x0_hat_at(traj: Trajectory, k: int) -> torch.Tensor:
    """The prediction made at state k (the last state, the sample itself, predicts itself)."""
    return traj.x0_hats[k] if k < len(traj.x0_hats) else traj.xs[-1]


def _density(dist, schedule, t, label, grid_n, half):
    alpha, sigma = schedule.alpha_sigma(float(t))
    xs, _, p = density_grid(dist, alpha, sigma, n=grid_n, extent=half, label=label)
    return dict(type="heatmap", x=round_coords(xs), y=round_coords(xs), z=round_density(p), colorscale=DENSITY_SCALE,
                showscale=False, hovertemplate="p_t = %{z:.3g}<extra></extra>")


def _final_labels(dist, traj) -> np.ndarray:
    return dist.nearest_label(traj.xs[-1]).numpy()


def sampling_animation(dist, schedule, trajs: dict, label=None, tracked=TRACKED, max_frames: int = MAX_FRAMES,
                       grid_n: int = 48) -> go.Figure:
    """Particles travelling from noise to data, one panel per trajectory in `trajs` ({title: Trajectory}, all
    with the same time grid), as an in-browser movie over the sampler's steps (subsampled to max_frames).

    Each frame: the exact p_t of that step's t in grey (the particles should look like a sample of it),
    the particles coloured by the class their final sample lands in, and for the `tracked` particles a ring
    at x_t, a cross at the model's predicted x0_hat, and a dashed line joining them.
    """
    with one_thread():
        return _sampling_animation(dist, schedule, trajs, label, tracked, max_frames, grid_n)


def _sampling_animation(dist, schedule, trajs, label, tracked, max_frames, grid_n):
    titles = list(trajs)
    first = trajs[titles[0]]
    n_states = len(first.ts)
    idx = frame_indices(n_states, max_frames)
    ncls = dist.num_classes
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles, horizontal_spacing=0.06)
    per_panel = 1 + ncls + 3
    frames, names = [], []
    finals = {k: _final_labels(dist, tr) for k, tr in trajs.items()}
    tracked = [i for i in tracked if i < first.xs.shape[1]]
    for k in idx:
        t = float(first.ts[k])
        alpha, sigma = schedule.alpha_sigma(t)
        last = k == n_states - 1
        half = EXTENT if last else view_half_width(float(alpha), float(sigma))
        data, lay = [], {}
        for j, title in enumerate(titles):
            tr = trajs[title]
            x = tr.xs[k].numpy()
            x0 = x0_hat_at(tr, k).numpy()
            data.append(_density(dist, schedule, t, label, grid_n, half))
            for c in range(ncls):
                m = finals[title] == c
                data.append(dict(type="scattergl", x=round_coords(x[m, 0]), y=round_coords(x[m, 1])))
            sx, sy = joined([np.stack([x[i], x0[i]]) for i in tracked])
            data.append(dict(type="scatter", x=sx, y=sy))
            data.append(dict(type="scatter", x=round_coords(x[tracked, 0]), y=round_coords(x[tracked, 1])))
            data.append(dict(type="scatter", x=round_coords(x0[tracked, 0]), y=round_coords(x0[tracked, 1])))
            sfx = "" if j == 0 else str(j + 1)
            lay[f"xaxis{sfx}"] = dict(range=[-half, half])
            lay[f"yaxis{sfx}"] = dict(range=[-half, half])
        step = k
        name = f"{step}"
        names.append(name)
        lam = float(schedule.logsnr(t)) + 0.0
        what = "the samples (x_t / α_t)" if last else f"t = {t:.3f}, log-SNR λ = {lam:.2f}"
        frames.append(dict(name=name, data=data, layout=dict(title=dict(text=f"Step {step} of {n_states - 1}: {what}"),
                                                             **lay)))
    for j in range(len(titles)):
        for i, tr in enumerate(frames[0]["data"][j * per_panel:(j + 1) * per_panel]):
            fig.add_trace(tr, row=1, col=j + 1)
    names_ = list(dist.label_names)
    for j in range(len(titles)):
        b = j * per_panel
        for c in range(ncls):
            fig.data[b + 1 + c].update(mode="markers", name=f"ends in {names_[c]}", legendgroup=str(c),
                                       showlegend=j == 0, marker=dict(size=4, color=PALETTE[c % len(PALETTE)]),
                                       hoverinfo="skip")
        fig.data[b + 1 + ncls].update(mode="lines", name="x_t to its predicted x0", line=dict(color="black", width=2,
                                      dash="dash"), showlegend=j == 0, legendgroup="track", hoverinfo="skip")
        fig.data[b + 2 + ncls].update(mode="markers", name="tracked particle x_t", showlegend=j == 0,
                                      legendgroup="track",
                                      marker=dict(size=13, color="rgba(0,0,0,0)", line=dict(width=3, color="black")),
                                      hovertemplate="x_t (%{x:.2f}, %{y:.2f})<extra></extra>")
        fig.data[b + 3 + ncls].update(mode="markers", name="its predicted x0_hat", showlegend=j == 0,
                                      legendgroup="track", marker=dict(size=13, symbol="x", color="black"),
                                      hovertemplate="x0_hat (%{x:.2f}, %{y:.2f})<extra></extra>")
    fig.update_layout(frames[0]["layout"])
    for j in range(len(titles)):
        sfx = "" if j == 0 else str(j + 1)
        fig.update_xaxes(title_text="x₁ (data units)", constrain="domain", row=1, col=j + 1)
        fig.update_yaxes(title_text="x₂" if j == 0 else None, scaleanchor=f"x{sfx}", scaleratio=1, constrain="domain",
                         row=1, col=j + 1)
    fig.update_layout(height=700 if len(titles) > 1 else 740, font=FONT, plot_bgcolor="white",
                      margin=dict(l=60, r=20, t=90, b=250), legend=dict(orientation="h", y=-0.5, x=0),
                      title=dict(font=dict(size=17)))
    add_player(fig, names, active=0, prefix="step ", ms_per_frame=120)
    place_player(fig)
    return with_frames(fig, frames)


def ode_sde_figure(dist, ode: Trajectory, sde: Trajectory, titles=("Deterministic: probability-flow ODE",
                   "Stochastic: reverse SDE"), label=None, n_paths: int = 6, grid_n: int = 90) -> go.Figure:
    """Two runs from the same starting noise side by side: final samples over the exact data density, and the
    first `n_paths` particles' whole paths (the same colour for the same start in both panels), each with a ring
    where it starts and a dot where it ends."""
    half = EXTENT * 1.25
    fig = make_subplots(rows=1, cols=2, subplot_titles=list(titles), horizontal_spacing=0.06)
    xs, _, p = density_grid(dist, 1.0, 0.0, n=grid_n, extent=half, label=label)
    for j, tr in enumerate((ode, sde), start=1):
        fig.add_trace(go.Heatmap(x=xs, y=xs, z=p, colorscale=DENSITY_SCALE, showscale=False, hoverinfo="skip"),
                      row=1, col=j)
        x = tr.xs[-1].numpy()
        fig.add_trace(go.Scattergl(x=round_coords(x[:, 0]), y=round_coords(x[:, 1]), mode="markers", name="samples",
                                   showlegend=j == 1, marker=dict(size=3, color=PALETTE[4], opacity=0.7),
                                   hoverinfo="skip"), row=1, col=j)
        for i in range(min(n_paths, x.shape[0])):
            path = tr.xs[:, i].numpy()
            color = PALETTE[(i % 6) + (1 if i % 6 >= 4 else 0)]  # skip the light blue of the samples
            fig.add_trace(go.Scatter(x=round_coords(path[:, 0]), y=round_coords(path[:, 1]), mode="lines",
                                     line=dict(color=color, width=2), name="a particle's path", legendgroup="path",
                                     showlegend=j == 1 and i == 0,
                                     hovertemplate=f"particle {i}<extra></extra>"), row=1, col=j)
            fig.add_trace(go.Scatter(x=round_coords(path[:1, 0]), y=round_coords(path[:1, 1]), mode="markers",
                                     name="its start (the same in both)", legendgroup="start",
                                     showlegend=j == 1 and i == 0,
                                     marker=dict(size=13, color=color, symbol="circle-open", line=dict(width=2.5)),
                                     hovertemplate=f"particle {i} starts here<extra></extra>"), row=1, col=j)
            fig.add_trace(go.Scatter(x=round_coords(path[-1:, 0]), y=round_coords(path[-1:, 1]), mode="markers",
                                     showlegend=False,
                                     marker=dict(size=11, color=color, line=dict(width=1.5, color="black")),
                                     hovertemplate=f"particle {i} ends here<extra></extra>"), row=1, col=j)
        fig.update_xaxes(range=[-half, half], title_text="x₁ (data units)", constrain="domain", row=1, col=j)
        fig.update_yaxes(range=[-half, half], title_text="x₂" if j == 1 else None, constrain="domain",
                         scaleanchor="x" if j == 1 else "x2", scaleratio=1, row=1, col=j)
    fig.update_layout(height=560, font=FONT, plot_bgcolor="white", margin=dict(l=60, r=20, t=60, b=90),
                      legend=dict(orientation="h", y=-0.18, x=0))
    return fig


def x0_hat_figure(dist, schedule, traj: Trajectory, tracked=TRACKED, label=None, grid_n: int = 90) -> go.Figure:
    """Left: the tracked particles' paths x_t (lines) and their predicted clean points x0_hat at every step
    (dots, small early, large late) over the exact data density. Right: how far each prediction still is from
    where the particle finally lands, against t."""
    half = EXTENT * 1.25
    fig = make_subplots(rows=1, cols=2, column_widths=[0.5, 0.5], horizontal_spacing=0.1,
                        subplot_titles=["Paths x_t and predictions x0_hat", "Distance |x0_hat(t) − final sample|"])
    xs, _, p = density_grid(dist, 1.0, 0.0, n=grid_n, extent=half, label=label)
    fig.add_trace(go.Heatmap(x=xs, y=xs, z=p, colorscale=DENSITY_SCALE, showscale=False, hoverinfo="skip"), 1, 1)
    ts = traj.ts[:-1].numpy()
    sizes = (5 + 9 * np.linspace(0, 1, len(ts))).tolist()
    for n, i in enumerate(i for i in tracked if i < traj.xs.shape[1]):
        color = PALETTE[[0, 5, 2, 3, 1][n % 5]]
        path, x0 = traj.xs[:, i].numpy(), traj.x0_hats[:, i].numpy()
        fig.add_trace(go.Scatter(x=round_coords(path[:, 0]), y=round_coords(path[:, 1]), mode="lines",
                                 line=dict(color=color, width=2.5), name=f"particle {i}: path x_t", legendgroup=str(i),
                                 hovertemplate="x_t (%{x:.2f}, %{y:.2f})<extra></extra>"), 1, 1)
        fig.add_trace(go.Scatter(x=round_coords(x0[:, 0]), y=round_coords(x0[:, 1]), mode="markers",
                                 name=f"particle {i}: x0_hat", legendgroup=str(i), showlegend=False,
                                 marker=dict(size=sizes, color=color, symbol="x", line=dict(width=0)),
                                 text=[f"t = {t:.3f}" for t in ts],
                                 hovertemplate="x0_hat at %{text}: (%{x:.2f}, %{y:.2f})<extra></extra>"), 1, 1)
        d = np.linalg.norm(x0 - path[-1][None], axis=1)
        fig.add_trace(go.Scatter(x=ts.tolist(), y=d.tolist(), mode="lines+markers", line=dict(color=color, width=2.5),
                                 marker=dict(size=5), showlegend=False, legendgroup=str(i),
                                 hovertemplate="t = %{x:.3f}: %{y:.3f}<extra></extra>"), 1, 2)
    fig.update_xaxes(range=[-half, half], title_text="x₁ (data units)", constrain="domain", row=1, col=1)
    fig.update_yaxes(range=[-half, half], title_text="x₂", scaleanchor="x", scaleratio=1, constrain="domain",
                     row=1, col=1)
    fig.update_xaxes(title_text="t (sampling runs left to right, from 1 to 0)", autorange="reversed", row=1, col=2)
    fig.update_yaxes(title_text="distance (data units)", rangemode="tozero", row=1, col=2)
    fig.update_layout(height=560, font=FONT, plot_bgcolor="white", margin=dict(l=60, r=20, t=60, b=90),
                      legend=dict(orientation="h", y=-0.18, x=0))
    return fig


# --- quality against the exact truth ---------------------------------------------------------------

def reference_with_controls(dist, n: int, label=None, k: int = 12) -> tuple[EnergyReference, list[float]]:
    """An EnergyReference and the ratios of k fresh exact samples against it (one call, for a worker process)."""
    with one_thread():
        ref = EnergyReference(dist, n, label)
        return ref, ref.controls(k)


def ed_vs_steps(model, dist, schedule, sampler: str, steps_list, reference: EnergyReference, seed: int = 0,
                label=None, guidance: float = 0.0, eta: float = 0.0, device: str = "cpu") -> list[float]:
    """The energy-distance ratio of `reference.n` samples for each number of steps (same starting noise)."""
    out = []
    for steps in steps_list:
        tr = run(model, schedule, sampler, int(steps), reference.n, seed, label, guidance, eta, device)
        with one_thread():
            out.append(reference.ratio(tr.xs[-1]))
    return out


def ed_steps_figure(steps_list, curves: dict, band=None) -> go.Figure:
    """ED ratio against the number of steps, one line per model ({name: ratios}), with the ideal level 1 and,
    given `band` (the ratios of fresh exact samples), the range they span: a perfect sampler's own scatter."""
    fig = go.Figure()
    if band is not None and len(band):
        lo, hi = float(min(band)), float(max(band))
        fig.add_trace(go.Scatter(x=[steps_list[0], steps_list[-1], steps_list[-1], steps_list[0], steps_list[0]],
                                 y=[lo, lo, hi, hi, lo], fill="toself", mode="lines", line=dict(width=0),
                                 fillcolor="rgba(0, 158, 115, 0.18)", hoverinfo="skip",
                                 name=f"range of {len(band)} fresh exact samples ({lo:.2f} to {hi:.2f})"))
    for j, (name, ratios) in enumerate(curves.items()):
        fig.add_trace(go.Scatter(x=list(steps_list), y=list(ratios), mode="lines+markers", name=name,
                                 line=dict(color=PALETTE[[0, 5, 2][j % 3]], width=3), marker=dict(size=10),
                                 hovertemplate=f"{name}: %{{x}} steps, ratio %{{y:.2f}}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[steps_list[0], steps_list[-1]], y=[1.0, 1.0], mode="lines", hoverinfo="skip",
                             line=dict(color="#555555", dash="dash", width=1.5), name="1: as close as an exact sample"))
    fig.update_xaxes(type="log", title_text="sampler steps (log axis)", tickvals=list(steps_list))
    fig.update_yaxes(type="log", title_text="ED ratio (log axis)")
    fig.update_layout(height=470, font=FONT, plot_bgcolor="white", margin=dict(l=70, r=20, t=30, b=120),
                      legend=dict(orientation="h", x=0, y=0, yanchor="bottom", yref="container"))  # under the x title
    return fig
