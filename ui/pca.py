"""Many reverse trajectories on the first two principal components of real digits (no Streamlit here):
`fit_pca` / `project` / `project_trajectory`, and `pca_journey`, animated from the noise blob to the digit
clusters."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch

from .figures import FONT, add_player, place_player, with_frames
from .images import digit_color, fmt_lam, normalised


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
