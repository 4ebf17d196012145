"""Builders for page 7's guidance section (no streamlit here): where guided samples really end.

`guidance_report` runs the probability-flow ODE and the reverse SDE with the same guided denoiser for each
model, and sets the samples beside two exact references: the label's own density p(x | c) and the tilted
density p(x | c)^(1+w) p(x)^(-w) (toy_data.tilted), whose score guidance uses at t = 0. `guidance_figure`
draws them; `summary_rows` is the table of numbers.

`composed_report`, `composed_figure` and `composed_rows` do the same for a composed prompt ("a AND NOT b",
diffusion.samplers.composed) against exact samples of its t = 0 target (toy_data.tilted.ComposedMixture).
"""

from __future__ import annotations

from dataclasses import dataclass

import contourpy
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from diffusion.metrics import EnergyReference
from diffusion.samplers import composed, prior_sample, sample
from toy_data.tilted import ComposedMixture, TiltedMixture

from .figures import (DENSITY_SCALE, EXTENT, FONT, PALETTE, figure_dict, joined, mesh_points, round_coords,
                      round_density)
from .threads import one_thread
from .reverse import run
from .workers import offload

# Heun and Euler-Maruyama steps: 4x finer grids moved the clouds' means by at most 0.02 (exact scores,
# 8gaussians E at w = 3, moons' upper moon at w = 4).
ODE_STEPS, SDE_STEPS = 25, 100
MASS_LEVELS = (0.5, 0.9, 0.99)  # the tilted density's contour lines enclose these shares of its mass
HALF = EXTENT * 1.25
SHOWN = 600  # points drawn per cloud (the numbers use all of them)


@dataclass
class GuidanceReport:
    """Guided samples of each model beside exact samples of p(x | c) and of the tilted density."""

    label: int
    w: float
    samples: dict  # {model name: {"ODE": x [n, 2], "SDE": x [n, 2]}}
    exact: dict  # {"p(x | c)": x [n, 2], "tilted": x [n, 2]}, fresh exact samples
    rows: list  # one dict per cloud (cloud_stats), shown by summary_rows
    kept: float  # E_{p(x|c)}[P(c | x)^w]: the share of p(x | c)'s points the tilt keeps (1: tilted = p(x | c))
    grid: tuple  # (xs, ys, p(x | c) [ny, nx], tilted density [ny, nx] up to a constant, its MASS_LEVELS lines)


def cloud_stats(x: torch.Tensor, log_p_c, threshold: float, refs: dict) -> dict:
    """Mean and std per coordinate, the share outside p(x | c)'s 99% region, and ED ratios to each reference."""
    x64 = x.double()
    out = {"mean": x64.mean(0).tolist(), "std": x64.std(0).tolist(),
           "outside": (log_p_c(x64) < threshold).double().mean().item()}
    out.update({f"ed_{k}": ref.ratio(x) for k, ref in refs.items()})
    return out


def guidance_report(dist, schedule, models: dict, label: int, w: float, n: int = 2000, seed: int = 1,
                    grid_n: int = 120) -> GuidanceReport:
    """Guided ODE (Heun) and SDE samples of every model in `models` ({name: model}), from the same starting
    noise, scored against the exact p(x | c) and the exact tilted density."""
    with one_thread():
        samples = {name: {"ODE": run(m, schedule, "heun", ODE_STEPS, n, seed, label, w).xs[-1],
                          "SDE": run(m, schedule, "sde", SDE_STEPS, n, seed, label, w).xs[-1]}
                   for name, m in models.items()}
        tilted = TiltedMixture(dist, label, w)
        g = torch.Generator().manual_seed(seed + 2)
        exact = {"p(x | c)": dist.sample(n, label=label, generator=g)[0], "tilted": tilted.sample(n, generator=g)[0]}
        refs = {"cond": EnergyReference(dist, n, label), "tilted": EnergyReference(tilted, n)}

        def log_p_c(x):
            return dist.log_prob(x.double(), label=label)

        big = dist.sample(20_000, label=label, generator=g)[0]
        kept = torch.exp(w * tilted.log_class_posterior(big)).mean().item()
        threshold = torch.quantile(log_p_c(big), 0.01).item()  # {log p(x|c) >= threshold} holds 99% of p(x|c)
        rows = [dict(cloud="exact sample of p(x | c)", **cloud_stats(exact["p(x | c)"], log_p_c, threshold, refs)),
                dict(cloud="exact sample of the tilted density",
                     **cloud_stats(exact["tilted"], log_p_c, threshold, refs))]
        for name, runs in samples.items():
            for kind, x in runs.items():
                rows.append(dict(cloud=f"{name}, guided {kind}", **cloud_stats(x, log_p_c, threshold, refs)))
        clouds = [exact["p(x | c)"]] + [x for runs in samples.values() for x in runs.values()]
        xs, ys = view_box(torch.cat(clouds).double(), grid_n)
        pts = torch.from_numpy(mesh_points(xs, ys))
        p_c = torch.exp(log_p_c(pts)).numpy().reshape(len(ys), len(xs))
        top = tilted.log_prob_unnormalised(big).max().item()  # one constant for the grid and the levels
        p_w = torch.exp(tilted.log_prob_unnormalised(pts) - top).numpy().reshape(len(ys), len(xs))
        # A line that holds a share s of the tilted density is where it equals the (1 - s) quantile of its
        # values at exact tilted samples (the highest-density region).
        at_samples = torch.exp(tilted.log_prob_unnormalised(tilted.sample(20_000, generator=g)[0]) - top)
        levels = [torch.quantile(at_samples, 1 - s).item() for s in MASS_LEVELS]
    return GuidanceReport(label, float(w), samples, exact, rows, kept, (xs, ys, p_c, p_w, levels))


def view_box(x: torch.Tensor, n: int, pad: float = 1.3, smallest: float = 0.5, limit: float = HALF):
    """(xs [n], ys [n]): a square grid around the middle 99% of the points x [B, 2], padded, inside the
    [-limit, limit] frame (the other figures' [-HALF, HALF] by default; a single narrow mode gets a close-up)."""
    lo, hi = torch.quantile(x, 0.005, dim=0), torch.quantile(x, 0.995, dim=0)
    half = min(max(pad * (hi - lo).max().item() / 2, smallest), limit)
    centre = ((lo + hi) / 2).clamp(-limit + half, limit - half)
    return tuple(np.linspace(c - half, c + half, n) for c in centre.tolist())


def summary_rows(report: GuidanceReport) -> list[dict]:
    """The table the page shows: one row per cloud, in words and two decimals."""
    return [{"cloud": r["cloud"],
             "mean (x₁, x₂)": f"({r['mean'][0]:.2f}, {r['mean'][1]:.2f})",
             "std (x₁, x₂)": f"({r['std'][0]:.2f}, {r['std'][1]:.2f})",
             "outside p(x | c)'s 99% region": f"{100 * r['outside']:.1f}%",
             "ED ratio to p(x | c)": f"{r['ed_cond']:.1f}",
             "ED ratio to the tilted density": f"{r['ed_tilted']:.1f}"} for r in report.rows]


def _contour_paths(xs, ys, p, level) -> list[np.ndarray]:
    return [line for line in contourpy.contour_generator(xs, ys, p).lines(level) if len(line) > 1]


def guidance_figure(report: GuidanceReport, shown: int = SHOWN) -> go.Figure:
    """One panel per model: p(x | c) in grey, the tilted density's 50/90/99% lines in black, and the guided
    ODE (blue) and SDE (vermilion) samples over them."""
    xs, ys, p_c, p_w, levels = report.grid
    panels = {f"{name}: guided samples": [(f"guided {kind} samples", runs[kind]) for kind in ("SDE", "ODE")]
              for name, runs in report.samples.items()}
    return _panels(panels, xs, ys, p_c, p_w, levels, "tilted density: lines holding 50, 90, 99% of it", shown)


CLOUD_COLORS = {"SDE": PALETTE[5], "ODE": PALETTE[0], "exact": PALETTE[2]}


def _panels(panels: dict, xs, ys, background, target, levels, line_name: str, shown: int) -> go.Figure:
    """One panel per entry of `panels` ({title: [(cloud name, x [n, 2])]}): `background` in grey, `target`'s
    `levels` lines in black, the clouds over them (coloured by the kind named last in the cloud's name)."""
    fig = make_subplots(rows=1, cols=len(panels), horizontal_spacing=0.06, subplot_titles=list(panels))
    paths = [path for lev in levels for path in _contour_paths(xs, ys, target, lev)]
    cx, cy = joined(paths)
    seen = set()
    for j, clouds in enumerate(panels.values(), start=1):
        first = j == 1
        fig.add_trace(go.Heatmap(x=round_coords(xs), y=round_coords(ys), z=round_density(background),
                                 colorscale=DENSITY_SCALE, showscale=False, hoverinfo="skip"), row=1, col=j)
        fig.add_trace(go.Scatter(x=cx, y=cy, mode="lines", line=dict(color="black", width=1.5), name=line_name,
                                 showlegend=first, legendgroup="target", hoverinfo="skip"), row=1, col=j)
        for name, x in clouds:  # the ODE's tighter cloud last, on top
            kind = next(k for k in CLOUD_COLORS if k in name)
            x = x[:shown].numpy()
            fig.add_trace(go.Scattergl(x=round_coords(x[:, 0]), y=round_coords(x[:, 1]), mode="markers", name=name,
                                       legendgroup=name, showlegend=name not in seen, hoverinfo="skip",
                                       marker=dict(size=4, color=CLOUD_COLORS[kind], opacity=0.7)), row=1, col=j)
            seen.add(name)
        fig.update_xaxes(range=[xs[0], xs[-1]], title_text="x₁ (data units)", constrain="domain", row=1, col=j)
        fig.update_yaxes(range=[ys[0], ys[-1]], title_text="x₂" if first else None, constrain="domain",
                         scaleanchor="x" if first else f"x{j}", scaleratio=1, row=1, col=j)
    fig.update_layout(height=560, font=FONT, plot_bgcolor="white", margin=dict(l=60, r=20, t=60, b=90),
                      legend=dict(orientation="h", y=-0.18, x=0))
    return fig


# --- composed prompts ------------------------------------------------------------------------------------

@dataclass
class ComposedReport:
    """Samples of a composed prompt, with each model's scores, beside exact samples of its t = 0 target."""

    prompts: list  # [(label, weight)]: weight < 0 is a NOT
    samples: dict  # {model name: {"ODE": x [n, 2], "SDE": x [n, 2]}}
    exact: torch.Tensor  # [n, 2]: a fresh exact sample of the composed target
    rows: list  # one dict per cloud (cloud_stats; "outside" is off p(x)'s 99% region), shown by composed_rows
    cell: float  # the width of the exact sampler's square cells (data units)
    grid: tuple  # (xs, ys, p(x) [ny, nx], the target [ny, nx] up to a constant, its MASS_LEVELS lines)


def composed_run(model, schedule, prompts, sampler: str, steps: int, n: int = 2000, seed: int = 0,
                 device: str = "cpu") -> torch.Tensor:
    """The final points [n, 2] of a run with the composed denoiser: noise from `seed`, sampler noise from
    seed + 1 (as reverse.run draws them, so a composition of one prompt (c, 1 + w) repeats a guided run)."""
    x = prior_sample(schedule, (n, 2), seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with one_thread(), torch.no_grad():
        return sample(composed(model, prompts), x.to(device), schedule, sampler, steps, generator=g).cpu().float()


def composed_report(dist, schedule, models: dict, prompts, n: int = 2000, seed: int = 1,
                    grid_n: int = 120) -> ComposedReport:
    """The composed ODE (Heun) and SDE samples of every model in `models` ({name: model}) from the same noise,
    scored against exact samples of the composed target and of p(x | a), a being the first prompt's label."""
    with one_thread():
        target = ComposedMixture(dist, prompts)  # raises ValueError for weights that cannot be normalised
        samples = {name: {"ODE": composed_run(m, schedule, prompts, "heun", ODE_STEPS, n, seed),
                          "SDE": composed_run(m, schedule, prompts, "sde", SDE_STEPS, n, seed)}
                   for name, m in models.items()}
        a = target.prompts[0][0]
        g = torch.Generator().manual_seed(seed + 2)
        exact = target.sample(n, generator=g)[0]
        refs = {"composed": EnergyReference(target, n), "cond": EnergyReference(dist, n, a)}

        def log_p(x):
            return dist.log_prob(x.double())

        threshold = torch.quantile(log_p(dist.sample(20_000, generator=g)[0]), 0.01).item()  # p(x)'s 99% region
        rows = [dict(cloud="exact sample of the composed target", **cloud_stats(exact, log_p, threshold, refs)),
                dict(cloud=f"exact sample of p(x | {dist.label_names[a]})",
                     **cloud_stats(dist.sample(n, label=a, generator=g)[0], log_p, threshold, refs))]
        for name, runs in samples.items():
            for kind, x in runs.items():
                rows.append(dict(cloud=f"{name}, composed {kind}", **cloud_stats(x, log_p, threshold, refs)))
        clouds = [exact] + [x for runs in samples.values() for x in runs.values()]
        xs, ys = view_box(torch.cat(clouds).double(), grid_n, limit=20.0)  # ComposedMixture's search square
        pts = torch.from_numpy(mesh_points(xs, ys))
        p = torch.exp(log_p(pts)).numpy().reshape(len(ys), len(xs))
        p_t = torch.exp(target.log_prob_unnormalised(pts) - target.log_top).numpy().reshape(len(ys), len(xs))
        at_samples = torch.exp(target.log_prob_unnormalised(target.sample(20_000, generator=g)[0]) - target.log_top)
        levels = [torch.quantile(at_samples, 1 - s).item() for s in MASS_LEVELS]
    return ComposedReport(target.prompts, samples, exact, rows, target.cell, (xs, ys, p, p_t, levels))


def composed_rows(report: ComposedReport, a_name: str) -> list[dict]:
    """The composed section's table: one row per cloud, in words and two decimals."""
    return [{"cloud": r["cloud"],
             "mean (x₁, x₂)": f"({r['mean'][0]:.2f}, {r['mean'][1]:.2f})",
             "std (x₁, x₂)": f"({r['std'][0]:.2f}, {r['std'][1]:.2f})",
             "off the data (outside p(x)'s 99% region)": f"{100 * r['outside']:.1f}%",
             "ED ratio to the composed target": _ratio_text(r["ed_composed"]),
             f"ED ratio to p(x | {a_name})": _ratio_text(r["ed_cond"])} for r in report.rows]


def _ratio_text(r: float) -> str:
    return f"{r:.1f}" if r < 100 else f"{r:,.0f}"


def composed_figure(report: ComposedReport, shown: int = SHOWN) -> go.Figure:
    """The exact target's samples, then one panel per model's composed ODE and SDE samples: p(x) in grey, the
    target's 50/90/99% lines in black."""
    xs, ys, p, p_t, levels = report.grid
    panels = {"Exact samples of the target": [("exact samples of the target", report.exact)]}
    panels.update({f"{name}: composed samples": [(f"composed {kind} samples", runs[kind]) for kind in ("SDE", "ODE")]
                   for name, runs in report.samples.items()})
    return _panels(panels, xs, ys, p, p_t, levels, "composed target: lines holding 50, 90, 99% of it", shown)


# --- the page's results, computed now or ahead (ui/prefetch.py) ----------------------------------------------

W_STEP = 0.5  # the step of page 7's guidance and composition sliders


def guidance_view(dist, schedule, models: dict, label: int, w: float, n: int, seed: int, device: str = "cpu",
                  here: bool = False):
    """(GuidanceReport, its figure as a plain dict). The sampling runs in a worker process (ui.workers.offload),
    or in this thread with `here` (the prefetch thread, which must not hold up the pages' own offloaded work)."""
    args = (dist, schedule, models, label, w, n, seed)
    report = guidance_report(*args) if here else offload(guidance_report, *args, on=device)
    return report, figure_dict(guidance_figure(report))


def composed_view(dist, schedule, models: dict, prompts, n: int, seed: int, device: str = "cpu", here: bool = False):
    """(ComposedReport, its figure as a plain dict); `here` as in guidance_view."""
    args = (dist, schedule, models, list(prompts), n, seed)
    report = composed_report(*args) if here else offload(composed_report, *args, on=device)
    return report, figure_dict(composed_figure(report))


def nearby(value: float, lo: float, hi: float, reach: int = 1, step: float = W_STEP) -> list[float]:
    """The slider values within `reach` steps of `value` in [lo, hi], nearest first (not `value` itself)."""
    out = []
    for k in range(1, reach + 1):
        out += [round(value + s * k * step, 6) for s in (1, -1) if lo - 1e-9 <= value + s * k * step <= hi + 1e-9]
    return out


def nearby_pairs(a: float, b: float, lo: float, hi: float, reach: int = 1, step: float = W_STEP) -> list[tuple]:
    """The (a', b') slider pairs within `reach` steps of (a, b) on each slider, nearest first, (a, b) excluded."""
    pairs = [(x, y) for x in [a] + nearby(a, lo, hi, reach, step) for y in [b] + nearby(b, lo, hi, reach, step)]
    return sorted(pairs[1:], key=lambda p: (max(abs(p[0] - a), abs(p[1] - b)), abs(p[0] - a) + abs(p[1] - b)))
