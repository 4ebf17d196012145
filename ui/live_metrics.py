"""What the Train page measures while a model trains, beside its loss (no Streamlit here).

`LiveKL` draws KL(p_data || p_theta) = E_{x ~ p_data}[log p_data(x) - log p_theta(x)] on a fixed held-out set:
log p_data is exact (the data is a known Gaussian mixture) and log p_theta comes from the probability-flow ODE
(diffusion.evaluate.kl_gaps, the estimator of `python -m diffusion.evaluate`). A live estimate uses the first
LIVE_POINTS of the held-out points and LIVE_STEPS Heun steps; the final one all FINAL_POINTS. Live estimates run
in the training thread, each only once the training since the previous one has taken 1/SHARE times its expected
cost, so that on a steady machine they slow training by about SHARE.
"""

from __future__ import annotations

import time

import numpy as np
import plotly.graph_objects as go

from diffusion.evaluate import held_out, kl_gaps

from .figures import PALETTE

LIVE_POINTS = 500  # held-out points of a live estimate: standard error about 0.007 nats on moons
LIVE_STEPS = 48  # Heun steps of a live estimate: 0.002 nats below the 128-step figure on the shipped moons and spiral
FINAL_POINTS = 2000  # the final estimate, on the held-out set of `python -m diffusion.evaluate` (seed 0)
SHARE = 0.06  # live estimates take at most this share of the training time (the target: a 10% slow-down at most)
CALIBRATION_POINTS = 100  # a first, small estimate on this many points forecasts a live one's cost (a little high)
TARGET_NATS = 0.05  # the lab's target for a trained 2-D model (docs/measurements.md)
KL_FLOOR = 0.002  # the bottom of the KL axis (log scale): well below one live estimate's standard error


class LiveKL:
    """KL(p_data || p_theta) of a training model on a fixed held-out set, within a time budget."""

    def __init__(self, dist, live_points: int = LIVE_POINTS, steps: int = LIVE_STEPS, share: float = SHARE,
                 final_points: int = FINAL_POINTS):
        self.dist, self.steps, self.share = dist, int(steps), float(share)
        self.x = held_out(dist, max(final_points, live_points))
        self.log_p = dist.log_prob(self.x.double()).cpu()
        self.live_points = int(live_points)
        self.curve: list[tuple[int, float, float]] = []  # (step, estimate, standard error)
        self.final: tuple[float, float] | None = None
        self.seconds = 0.0  # spent on live estimates
        self._at = 0.0  # the training time of the last estimate
        self._costs: list[float] = []  # each live estimate's duration
        self._guess: float | None = None  # the first estimate's cost, forecast from a small one

    def measure(self, model, n: int | None = None) -> tuple[float, float]:
        """(KL estimate in nats, its standard error) on the first n held-out points (all of them by default)."""
        n = len(self.x) if n is None else int(n)
        gaps = kl_gaps(model, self.dist, self.x[:n], self.steps, self.log_p[:n])
        return gaps.mean().item(), gaps.std().item() / n ** 0.5

    def due(self, train_seconds: float) -> bool:
        """True once the training since the last estimate has paid for the next (its cost forecast as the larger of
        the last and the mean cost, divided by `share`) and the total stays within `share` of `train_seconds`:
        estimates spread evenly over the run, never bunched. The first one's cost is forecast from a small estimate
        on CALIBRATION_POINTS points, so a run too short to pay for one has none (only the final one)."""
        if self.share <= 0 or (self._guess is None and not self._costs):
            return False
        forecast = max(self._costs[-1], sum(self._costs) / len(self._costs)) if self._costs else self._guess
        return (train_seconds - self._at >= forecast / self.share
                and self.seconds + forecast <= self.share * train_seconds)

    def update(self, step: int, model, train_seconds: float) -> bool:
        """A live estimate at `step` if the budget allows one (`model`: a callable returning the model, asked only
        then). True when one was made."""
        if self._guess is None and self.share > 0:  # forecast the first estimate's cost (counted in `seconds`)
            n = min(CALIBRATION_POINTS, self.live_points)
            start = time.perf_counter()
            self.measure(model(), n)
            cost = time.perf_counter() - start
            self.seconds += cost
            self._guess = cost * self.live_points / n
        if not self.due(train_seconds):
            return False
        start = time.perf_counter()
        self.curve.append((int(step), *self.measure(model(), self.live_points)))
        self._costs.append(time.perf_counter() - start)
        self.seconds += self._costs[-1]
        self._at = train_seconds
        return True

    def finish(self, model) -> tuple[float, float]:
        """The final estimate, on every held-out point."""
        self.final = self.measure(model)
        return self.final


def add_kl_traces(fig: go.Figure, curve, final, last_step: int | None, row: int) -> None:
    """The live KL estimates (with +-1 standard error) and the final one into row `row` of `fig`, on a log axis,
    with the target line. `curve` is [(step, estimate, se)], `final` (estimate, se) or None. An estimate below
    KL_FLOOR (a good model's can even be negative: it is an average of noisy differences) is drawn at the floor as
    an open triangle; hovering shows its value."""
    # an empty trace keeps the row's axes drawn before the first estimate (plotly skips a subplot without data)
    fig.add_trace(go.Scatter(x=[], y=[], showlegend=False, hoverinfo="skip"), row=row, col=1)
    points = [(s, k, e, f"KL, {LIVE_POINTS} held-out points", dict(size=7, color=PALETTE[1])) for s, k, e in curve]
    if final is not None:
        points.append((last_step, *final, f"final KL, {FINAL_POINTS:,} points",
                       dict(size=13, symbol="diamond", color=PALETTE[5])))
    for name in dict.fromkeys(p[3] for p in points):
        s, k, e = (np.asarray([p[i] for p in points if p[3] == name], dtype=float) for i in range(3))
        marker = next(p[4] for p in points if p[3] == name)
        y = np.maximum(k, KL_FLOOR)
        symbols = [marker.get("symbol", "circle") if v > KL_FLOOR else "triangle-down-open" for v in k]
        fig.add_trace(go.Scatter(
            x=s, y=y, mode="lines+markers" if name.startswith("KL") else "markers", name=name,
            customdata=np.stack([k, e], -1), hovertemplate="step %{x}: KL %{customdata[0]:.4f} ± "
                                                           "%{customdata[1]:.4f} nats<extra></extra>",
            error_y=dict(type="data", array=e, arrayminus=np.minimum(e, y - KL_FLOOR * 0.999), thickness=1.5,
                         width=4),
            line=dict(color=marker["color"], width=2), marker={**marker, "symbol": symbols}), row=row, col=1)
    fig.add_hline(y=TARGET_NATS, line=dict(color="#555", dash="dot", width=1.5), row=row, col=1,
                  annotation_text=f"{TARGET_NATS} nats", annotation_position="top left",
                  annotation_font=dict(size=15, color="#555"), exclude_empty_subplots=False)


def kl_range(curve, final) -> list[float]:
    """The KL axis's range in powers of ten (plotly's log axes): from KL_FLOOR to above the largest value, and at
    least to 1 nat."""
    values = [k + e for _, k, e in curve] + ([final[0] + final[1]] if final else [])
    return [float(np.log10(KL_FLOOR)), float(np.log10(max([1.0] + values) * 1.6))]


def kl_text(curve, final) -> str:
    """One sentence for the caption: the latest estimate."""
    if final is not None:
        return f"Final KL {final[0]:.3f} ± {final[1]:.3f} nats on {FINAL_POINTS:,} held-out points."
    if curve:
        step, k, e = curve[-1]
        return f"At step {step:,}: KL {k:.3f} ± {e:.3f} nats."
    return "The first KL estimate appears within a few seconds."

