"""Page 6's denoising score matching, seen: the training targets at one x_t and their average (no Streamlit here).

Training never sees the score. It sees a clean point x0, noises it into x_t = alpha x0 + sigma eps and
asks for the target -eps / sigma = (alpha x0 - x_t) / sigma^2. At one x_t the clean points that occur are
draws from the exact posterior p(x0 | x_t), so the targets there form a fan, and their mean is the score:

    grad log p_t(x_t) = E_{x0 ~ p(x0 | x_t)} [(alpha x0 - x_t) / sigma^2]      (Tweedie; Vincent 2011)

A network trained with squared error on the targets can therefore learn only that mean. `fan` draws the
targets from the mixture's exact posterior; `fan_figure` and `curve_figure` draw them beside the exact and
learned scores. Every arrow is drawn at sigma^2 times its length, so a target's arrow ends at alpha x0 and the
score's at alpha E[x0 | x_t].
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch

from .figures import DENSITY_SCALE, EXACT_COLOR, FONT, LEARNED_COLOR, PALETTE, XT_COLOR, round_coords, square_axes

NS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)  # the "Targets drawn" choices
N_MAX = NS[-1]
TARGET_COLOR = PALETTE[2]  # the drawn targets and their average (exact: blue, network: vermilion)
CLICK_TRACE = 1  # the fan figure's trace of clickable points
CURVE_POINTS = 60  # log-spaced n at which the convergence curve is drawn

EXPLANATION = (
    "We want the network to match the score ∇log p_t, but nobody can hand it the score: we only have samples "
    "of the data. Denoising score matching uses each sample as it comes: noise a clean x₀ into x_t and ask for "
    "the target (αx₀ − x_t)/σ² = −ε/σ, which points from x_t towards αx₀, the clean point that made it scaled "
    "by α. At one x_t the targets disagree (thin arrows), because many clean points could have made x_t: the "
    "denoiser is not one-to-one. A network trained with squared error on them can only learn their average, and "
    "that average is exactly the score, so matching noisy targets matches the score.")
IDENTITY = (r"\nabla_{x_t}\log p_t(x_t) = \mathbb{E}_{x_0 \sim p(x_0 \mid x_t)}\!\left[\frac{\alpha_t x_0 - x_t}"
            r"{\sigma_t^2}\right] \qquad \text{(Tweedie; Vincent 2011)}")
WIDE_FAN = ("Here a typical target (root mean square) strays from the score by more than three times the score's "
            "own length: x_t sits near "
            "a peak of p_t, where the score is short, or the noise is so low that the targets spread like 1/σ while "
            "the score does not. The average still settles on the score, but slowly, as 1/√n.")

ZERO_SCORE = ("The score is zero at this x_t (p_t is flat here, as at a centre of symmetry), so errors relative to it "
              "are undefined (—). The targets still average to it, with an error that falls as 1/√n.")


def caption(sigma: float) -> str:
    """What the fan figure draws, in words."""
    return (f"Every arrow is drawn at σ² = {sigma**2:.3g} times its length, so each thin arrow ends at αx₀ (dot), "
            "α times the clean point it was made from, and the score's at αE[x₀ | x_t]. The x₀ are drawn from the "
            "exact posterior p(x₀ | x_t), the clean points that training meets at this x_t (seed 0); n = 1 to 4,096 "
            "are the first n of one draw, so the average settles as n grows, by about 1/√n (dashed line). Where "
            "the dotted line crosses the curve, the network is as close to the score as an average of that many "
            "targets.")


def posterior_draws(dist, alpha: float, sigma: float, xt, label=None, n: int = N_MAX, seed: int = 0) -> np.ndarray:
    """n clean points x0 drawn from the exact posterior p(x0 | x_t) of the mixture: [n, D] float64.

    The posterior of a Gaussian mixture is a Gaussian mixture (GaussianMixture.posterior): pick a component
    by its posterior weight, then draw from its Gaussian."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1_000_000:
        raise ValueError(f"number of targets must be an integer in [1, 1000000]; got {n!r}")
    x = torch.tensor(np.asarray(xt, dtype=np.float64).reshape(1, -1))
    w, m, s = dist.posterior(x, alpha, sigma, label)
    g = torch.Generator().manual_seed(seed)
    k = torch.multinomial(w[0], n, replacement=True, generator=g)
    z = torch.randn(n, x.shape[1], generator=g, dtype=torch.float64)
    return (m[0, k] + s[0, k, None] * z).numpy()


def dsm_targets(x0, xt, alpha: float, sigma: float) -> np.ndarray:
    """The per-sample training targets -eps / sigma = (alpha x0 - x_t) / sigma^2 for clean points x0 [n, D]."""
    return (alpha * np.asarray(x0, dtype=np.float64) - np.asarray(xt, dtype=np.float64)) / sigma**2


def target_spread(dist, alpha: float, sigma: float, xt, label=None) -> float:
    """sqrt(trace Cov[target | x_t]) = (alpha / sigma^2) sqrt(E|x0 - E[x0 | x_t]|^2), exactly from the mixture
    posterior: one target's root-mean-square distance from the score. The average of n targets has
    standard error target_spread / sqrt(n)."""
    x = torch.tensor(np.asarray(xt, dtype=np.float64).reshape(1, -1))
    w, m, s = (a[0] for a in dist.posterior(x, alpha, sigma, label))
    mean = (w[:, None] * m).sum(0)
    second = (w * ((m - mean) ** 2).sum(-1)).sum() + x.shape[1] * (w * s**2).sum()
    return float(alpha * torch.sqrt(second) / sigma**2)


def fan(dist, alpha: float, sigma: float, xt, label=None, n: int = N_MAX, seed: int = 0) -> dict:
    """Everything the view reads at one x_t, computed once: a slider change only slices it.

    x0 [n, D] (posterior draws), targets [n, D], running [n, D] (the average of the first k targets in row
    k - 1), exact (the score [D]), rel_error [n] (|running - exact| / |exact|), rel_se1 (one target's
    relative rms spread: the average of n has relative standard error rel_se1 / sqrt(n)), and the curve's
    log-spaced counts curve_n with their errors curve_error."""
    xt = np.asarray(xt, dtype=np.float64).reshape(-1)
    x0 = posterior_draws(dist, alpha, sigma, xt, label, n, seed)
    targets = dsm_targets(x0, xt, alpha, sigma)
    running = np.cumsum(targets, 0) / np.arange(1, n + 1)[:, None]
    exact = dist.score(torch.tensor(xt[None]), alpha, sigma, label)[0].numpy()
    norm = max(float(np.linalg.norm(exact)), np.finfo(float).tiny)  # a zero score: see relative_defined
    rel_error = np.linalg.norm(running - exact, axis=1) / norm
    curve_n = np.unique(np.round(np.logspace(0, np.log10(n), CURVE_POINTS)).astype(int))
    return {"xt": xt, "x0": x0, "targets": targets, "running": running, "exact": exact, "norm": norm,
            "rel_error": rel_error, "rel_se1": target_spread(dist, alpha, sigma, xt, label) / norm,
            "curve_n": curve_n, "curve_error": rel_error[curve_n - 1]}


def placeholder() -> dict:
    """A fan of two targets, for building the figures' styles before any x_t is chosen (values patched in later)."""
    ones = np.ones((2, 2))
    return {"xt": np.zeros(2), "targets": ones, "running": ones, "exact": np.ones(2), "rel_error": np.ones(2),
            "rel_se1": 1.0, "curve_n": np.array([1, 2]), "curve_error": np.ones(2)}


def base_dicts() -> tuple[dict, dict]:
    """The fan and curve figures' styles as plotly dicts (built once); data and title are patched in."""
    data = placeholder()
    return (fan_figure(np.zeros(2), np.zeros((2, 2)), np.zeros((1, 2)), data, 1, 1.0).to_dict(),
            curve_figure(data, 1, 1.0).to_dict())


def relative_defined(data: dict) -> bool:
    """False where the score is zero beside one target's spread (below a millionth of it; round-off is about 1e-16 of
    it), so that errors relative to the score mean nothing."""
    return data["rel_se1"] < 1e6


def relative_error(vector, exact) -> float:
    """|vector - exact| / |exact|."""
    exact = np.asarray(exact, dtype=np.float64)
    norm = max(float(np.linalg.norm(exact)), np.finfo(float).tiny)
    return float(np.linalg.norm(np.asarray(vector, dtype=np.float64) - exact) / norm)


# --- the fan: targets, their average, the exact and the learned score at x_t ----------------------------------

def _arrow(start, vec, arrow: float = 0.18) -> tuple[list, list]:
    """One arrow from `start` along `vec` with a two-stroke head, as x and y lists with None gaps."""
    sx, sy = float(start[0]), float(start[1])
    ex, ey = sx + float(vec[0]), sy + float(vec[1])
    length = float(np.hypot(vec[0], vec[1]))
    if length == 0:
        return [], []
    ux, uy = vec[0] / length, vec[1] / length
    head = arrow * length
    c, s = np.cos(0.45), np.sin(0.45)
    h1 = (ex - head * (c * ux - s * uy), ey - head * (s * ux + c * uy))
    h2 = (ex - head * (c * ux + s * uy), ey - head * (-s * ux + c * uy))
    return [sx, ex, None, float(h1[0]), ex, float(h2[0])], [sy, ey, None, float(h1[1]), ey, float(h2[1])]


def fan_values(xs, p_t, grid, data: dict, n: int, sigma: float, learned=None) -> list[dict]:
    """The per-trace data of `fan_figure` (its eight traces, in order): what changes with x_t and n.

    `learned` is the network's score at x_t (None without a network). Arrows are sigma^2 times the vectors."""
    xt, k = data["xt"], sigma**2
    tips = data["xt"] + k * data["targets"][:n]
    gap = np.full(n, np.nan)
    lines = np.stack([np.broadcast_to(xt, tips.shape), tips, np.stack([gap, gap], 1)], 1).reshape(-1, 2)
    avg = _arrow(xt, k * data["running"][n - 1])
    exact = _arrow(xt, k * data["exact"])
    net = _arrow(xt, k * np.asarray(learned)) if learned is not None else ([], [])
    return [{"x": xs, "y": xs, "z": p_t},
            {"x": grid[:, 0], "y": grid[:, 1]},
            {"x": round_coords(lines[:, 0]), "y": round_coords(lines[:, 1]),
             "opacity": float(np.clip(6 / np.sqrt(n), 0.12, 0.8))},
            {"x": round_coords(tips[:, 0]), "y": round_coords(tips[:, 1])},
            {"x": exact[0], "y": exact[1]},
            {"x": avg[0], "y": avg[1], "name": f"average of {n:,} target{'s' if n > 1 else ''}"},
            {"x": net[0], "y": net[1], "showlegend": learned is not None},
            {"x": [float(xt[0])], "y": [float(xt[1])]}]


def fan_layout(xs, t: float) -> dict:
    """The layout keys of `fan_figure` that change with t: its title and the axes' range (the grid of `xs`)."""
    extent = float(xs[-1])
    return {"title": {"text": f"Training targets at x_t (t = {t:.2f}), drawn × σ²", "font": {"size": 18}},
            "xaxis": {"range": [-extent, extent]}, "yaxis": {"range": [-extent, extent]}}


def fan_figure(xs, p_t, grid, data: dict, n: int, sigma: float, learned=None, t: float = 0.0, height: int = 560):
    """The noisy data p_t (grey) with clickable points, and at x_t: the first n targets (thin, ending at alpha x0,
    dots), their average (bold), the exact score and the network's score, all at sigma^2 times their length."""
    fig = go.Figure()
    fig.add_trace(go.Heatmap(colorscale=DENSITY_SCALE, showscale=False, hoverinfo="skip", zsmooth="best"))
    fig.add_trace(go.Scatter(mode="markers", name="click to choose x_t",
                             marker=dict(size=7, color="rgba(0,114,178,0.13)"),
                             hovertemplate="x_t = (%{x:.2f}, %{y:.2f})<extra>click</extra>", showlegend=False))
    fig.add_trace(go.Scatter(mode="lines", showlegend=True, name="targets (α x₀ − x_t)/σ²",
                             line=dict(color=TARGET_COLOR, width=1),
                             hoverinfo="skip", connectgaps=False))
    fig.add_trace(go.Scatter(mode="markers", name="α x₀, x₀ ~ p(x₀ | x_t)", hoverinfo="skip",
                             marker=dict(size=4, color=TARGET_COLOR, opacity=0.6)))
    fig.add_trace(go.Scatter(mode="lines", showlegend=True, name="exact score ∇log p_t(x_t)", hoverinfo="skip",
                             line=dict(color=EXACT_COLOR, width=9), opacity=0.55))
    fig.add_trace(go.Scatter(mode="lines", showlegend=True, name="average", hoverinfo="skip",
                             line=dict(color=TARGET_COLOR, width=4)))
    fig.add_trace(go.Scatter(mode="lines", name="network's score s_θ(x_t)", hoverinfo="skip",
                             line=dict(color=LEARNED_COLOR, width=3, dash="dot")))
    fig.add_trace(go.Scatter(mode="markers", name="x_t", hoverinfo="skip",
                             marker=dict(size=15, color=XT_COLOR, symbol="cross", line=dict(width=1, color="white"))))
    for tr, values in zip(fig.data, fan_values(xs, p_t, grid, data, n, sigma, learned)):
        tr.update(values)
    square_axes(fig, float(xs[-1]), xlabel="x₁ (noisy)", ylabel="x₂ (noisy)")
    fig.update_layout(height=height, font=FONT, plot_bgcolor="white", margin=dict(l=60, r=10, t=50, b=120),
                      clickmode="event+select", dragmode=False, title=fan_layout(xs, t)["title"],
                      legend=dict(orientation="h", x=0.5, xanchor="center", y=0, yanchor="bottom", yref="container",
                                  font=dict(size=15)))
    return fig


# --- the average's error against the number drawn --------------------------------------------------------------

def curve_values(data: dict, n: int, learned_error: float | None = None) -> list[dict]:
    """The per-trace data of `curve_figure` (its four traces): what changes with x_t and n."""
    cn = data["curve_n"]
    ends = [1, int(cn[-1])]
    net = ([], []) if learned_error is None else (ends, [learned_error] * 2)
    return [{"x": cn, "y": data["curve_error"]},
            {"x": ends, "y": [data["rel_se1"] / np.sqrt(m) for m in ends]},
            {"x": [n], "y": [float(data["rel_error"][n - 1])]},
            {"x": net[0], "y": net[1],
             "showlegend": learned_error is not None}]


def curve_figure(data: dict, n: int, learned_error: float | None = None, height: int = 560):
    """log-log: the relative error of the average of the first n targets against n, the standard error
    rel_se1 / sqrt(n) (the average's rms error, from the exact posterior), and the network's error as a level."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(mode="lines", showlegend=True, name="|average − exact| / |exact|",
                             line=dict(color=TARGET_COLOR, width=3),
                             hovertemplate="n = %{x}: %{y:.3g}<extra></extra>"))
    fig.add_trace(go.Scatter(mode="lines", showlegend=True, name="standard error ∝ 1/√n",
                             line=dict(color="#7a7a7a", width=2, dash="dash"),
                             hoverinfo="skip"))
    fig.add_trace(go.Scatter(mode="markers", name="targets drawn", hovertemplate="n = %{x}: %{y:.3g}<extra></extra>",
                             marker=dict(size=14, color=TARGET_COLOR, line=dict(width=2, color="white"))))
    fig.add_trace(go.Scatter(mode="lines", name="network: |s_θ − s| / |s|", hoverinfo="skip",
                             line=dict(color=LEARNED_COLOR, width=3, dash="dot")))
    for tr, values in zip(fig.data, curve_values(data, n, learned_error)):
        tr.update(values)
    fig.update_xaxes(type="log", title_text="targets drawn n", dtick=1)  # ticks at powers of ten only
    fig.update_yaxes(type="log", title_text="relative error", exponentformat="power", dtick=1)
    fig.update_layout(height=height, font=FONT, plot_bgcolor="white", margin=dict(l=70, r=10, t=50, b=170),
                      title=dict(text="The average settles on the score", font=dict(size=18)),
                      legend=dict(orientation="h", x=0.5, xanchor="center", y=0, yanchor="bottom", yref="container",
                                  font=dict(size=15)))
    return fig
