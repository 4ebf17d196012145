"""Live training for the Train page (and "Train on it now" on the Your-data page): no Streamlit here.

A `TrainingJob` runs `diffusion.training.train` in a background thread and writes what the page needs
(step, losses, a sample from the current EMA model every few steps, the final result) into itself
under a lock; the page polls it from an `st.fragment(run_every=...)` and never waits on it.

Threads and cores. The toy networks are tiny (a 128-wide MLP on batches of about a thousand 2-D
points), so torch's intra-op parallelism buys little and, on a small machine shared by several
sessions, several threads per job fight each other (measured on 2 busy cores: 200 training steps took
5 s with one thread, 14 s with two). The training thread therefore sets `torch.set_num_threads(1)`.
That call is effectively process-wide in torch (threads started afterwards, such as Streamlit's
script threads, inherit one thread too), which is the setting this app wants anyway: every page's
work is small-tensor work. On top of that at most `MAX_CONCURRENT` jobs train at once (one slot per
core, leaving one core for the pages); further jobs wait in a queue and say so. And the training
thread runs at a lower priority than the threads that answer the pages (niceness +10, Linux only), so
a class's slider moves are served first.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
import time

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from diffusion.metrics import EnergyReference
from diffusion.models import build_model
from diffusion.parameterizations import PARAMETERIZATIONS, WEIGHTINGS, check_parameterization
from diffusion.samplers import guided, prior_sample, sample
from diffusion.train import DEFAULTS_2D, log_z_recorder
from diffusion.training import TrainConfig, pick_device, train

from .figures import DENSITY_SCALE, EXTENT, FONT, PALETTE, density_grid
from .live_metrics import LiveKL, add_kl_traces, kl_range
from .threads import BackgroundJob, lower_this_threads_priority

# The page's choices, with the CLI's 2-D recipe (diffusion/train.py DEFAULTS_2D) as the defaults.
DEFAULTS = DEFAULTS_2D
STEPS_RANGE = (10, 20_000)  # the page's slider; longer runs belong to `python -m diffusion.train`
BATCH_CHOICES = (64, 128, 256, 512, 1024, 2048)
LR_CHOICES = (3e-4, 1e-3, 3e-3, 1e-2)
SNAPSHOT_POINTS = 300  # particles in each live sample
SNAPSHOT_STEPS = 15  # Heun steps for a live sample (29 network calls)
MAX_CONCURRENT = max(1, (os.cpu_count() or 2) - 1)
# The server process's training slots, one per core but one, shared by every kind of live training (this
# page's, the digits' in ui/digit_training.py and page 6's memorisation networks in ui/memorisation_live.py).
SLOTS = threading.BoundedSemaphore(MAX_CONCURRENT)


@contextmanager
def training_slot(stop):
    """Hold one of SLOTS while the block runs; yields False instead when `stop` (a threading.Event) is set while
    waiting for one, so that a Stop pressed while queued ends the job."""
    while not SLOTS.acquire(timeout=0.2):
        if stop.is_set():
            yield False
            return
    try:
        yield True
    finally:
        SLOTS.release()

# Plain-words descriptions for the page.
PARAM_NAMES = {"eps": "ε (the noise)", "x0": "x₀ (the clean point)", "v": "v = α ε − σ x₀ (velocity)",
               "score": "score ∇ log p_t", "flow": "flow velocity dx/dt", "energy": "energy E (score = −∇E)"}
# w(λ) multiplies the ε error (the page's loss is written in noise units): an x₀ error is the ε error
# times σ²/α² = 1/SNR, a v error (variance-preserving) times (1 + SNR)/SNR.
WEIGHTING_NAMES = {"eps": "ε-MSE (w = 1)", "x0": "x₀-MSE (w = 1/SNR)", "v": "v-MSE (w = (1 + SNR)/SNR)",
                   "flow": "flow-matching (w = (1 + 1/√SNR)²)", "min_snr": "min-SNR-5 (w = min(1, 5/SNR))",
                   "sigmoid": "sigmoid (w = sigmoid(−λ))"}
assert set(PARAM_NAMES) == set(PARAMETERIZATIONS) and set(WEIGHTING_NAMES) == set(WEIGHTINGS)


T_SAMPLING_NAMES = {"logsnr_normal": "around the data's fine scale (λ normal)", "uniform_t": "uniform in t",
                    "uniform_logsnr": "uniform in λ"}
TARGET_NAMES = {True: "the batch's average x̂₀ (less noisy)", False: "each example's own ε"}


def make_config(steps: int, batch_size: int, lr: float, weighting: str, device: str, seed: int = 0,
                t_sampling: str = DEFAULTS["t_sampling"], batch_target: bool = DEFAULTS["batch_target"]) -> TrainConfig:
    """A checked TrainConfig (ValueError naming the bad setting and its allowed range)."""
    lo, hi = STEPS_RANGE
    if not lo <= int(steps) <= hi:
        raise ValueError(f"training steps must be in {lo}..{hi}; got {steps}")
    config = TrainConfig(steps=int(steps), batch_size=int(batch_size), lr=float(lr), weighting=weighting,
                         seed=int(seed), device=device, t_sampling=t_sampling,
                         batch_target=bool(batch_target)).validate()
    pick_device(device)  # a GPU that is asked for but absent is reported now, not in the thread
    return config


def exact_points(dist, n: int = SNAPSHOT_POINTS, seed: int = 2):
    """(x0 [n, 2] numpy, labels [n] numpy): true samples to draw beside the learned ones."""
    x, y = dist.sample(n, generator=torch.Generator().manual_seed(seed))
    return x.numpy(), y.numpy()


def snapshot_samples(model, schedule, x_T, labels, steps: int = SNAPSHOT_STEPS):
    """Samples of `model` from the noise x_T, each particle asked for the class in `labels` (numpy [n, 2])."""
    lab = torch.as_tensor(labels, dtype=torch.long) if getattr(model, "num_classes", 0) else None
    x = sample(guided(model, lab, 0.0), x_T.clone(), schedule, "heun", steps)
    return x.detach().float().numpy()


def quick_ed_ratio(model, dist, n: int = 2000, steps: int = 25, seed: int = 0) -> float:
    """The energy-distance ratio (diffusion.metrics.EnergyReference) of n unconditional Heun samples against
    2 exact reference samples, with the floor from 2 x n pooled exact points: 1 means as close as a fresh
    true sample. The reference is EnergyReference's fixed draw; `seed` fixes the model's starting noise. Fresh
    exact samples scored this way read 0.3-1.6 (10 draws on each toy set at n = 2,000). At n = 2,000 this
    reference takes about a third of the time of page 7's (4 references, 4 x n pooled points), whose floor is
    within 0.1% of this one."""
    g = torch.Generator().manual_seed(seed)
    x = sample(guided(model, None), prior_sample(model.schedule, (n, dist.dim), generator=g), model.schedule,
               "heun", steps).detach()
    return EnergyReference(dist, n, refs=2, pairs=2).ratio(x)


class TrainingJob(BackgroundJob):
    """One training run in a background thread; every public read is a consistent copy taken under a lock."""

    def __init__(self, dist, dataset: str, data_key: str, parameterization: str, schedule, config: TrainConfig,
                 snapshot_every: int | None = None):
        super().__init__(f"train-{dataset}")
        self.dist, self.dataset, self.data_key = dist, dataset, data_key
        self.parameterization, self.schedule, self.config = check_parameterization(parameterization), schedule, config
        self.snapshot_every = snapshot_every or max(25, config.steps // 25)
        # every live sample starts from this noise, so what changes between pictures is the model
        self.x_T = prior_sample(schedule, (SNAPSHOT_POINTS, 2), seed=1)
        self.exact_x, self.exact_y = exact_points(dist)
        self.kl = LiveKL(dist)  # KL(p_data || p_theta) on held-out points, within a share of the training time
        self.log_z = self._record_log_z = None  # an energy head's log Z_theta(t) history, as diffusion.train keeps it
        if self.parameterization == "energy":
            self.log_z, self._record_log_z = log_z_recorder(config.steps)
        # written by the thread, read under the lock; _state: new, queued, running, evaluating, done, failed
        self._steps: list[int] = []
        self._losses: list[float] = []
        self._snap: tuple[int, np.ndarray] | None = None
        self._kl: list[tuple[int, float, float]] = []
        self.kl_final: tuple[float, float] | None = None  # (nats, standard error) of the finished model
        self._started = self._finished = None
        self.result = None  # TrainResult once done
        self.ed_ratio: float | None = None
        self.error = ""
        self.collected = False  # set by the page once the model is in the session's model store

    # --- reading ---------------------------------------------------------------------------------------

    def progress(self) -> dict:
        """A consistent copy: state, step, total, steps [k], losses [k], snapshot (step, samples) or None,
        seconds so far, kl [(step, nats, standard error)], kl_final (nats, standard error) or None."""
        with self._lock:
            now = self._finished or time.perf_counter()
            return {"state": self._state, "step": self._steps[-1] if self._steps else 0, "total": self.config.steps,
                    "steps": list(self._steps), "losses": list(self._losses), "snapshot": self._snap,
                    "seconds": 0.0 if self._started is None else now - self._started,
                    "kl": list(self._kl), "kl_final": self.kl_final}

    # --- the thread ----------------------------------------------------------------------------------

    def _callback(self, info: dict) -> None:
        step = info["step"]
        snap, model = None, []

        def ema():  # the EMA snapshot, taken at most once per step
            if not model:
                model.append(info["snapshot"]())
            return model[0]

        if step % self.snapshot_every == 0 or step == self.config.steps:
            snap = (step, snapshot_samples(ema(), self.schedule, self.x_T, self.exact_y))
        if self.log_z is not None:
            self._record_log_z({"step": step, "snapshot": ema})
        with self._lock:
            started = self._started
        measured = self.kl.update(step, ema, time.perf_counter() - started - self.kl.seconds)
        with self._lock:
            self._steps.append(step)
            self._losses.append(info["loss"])
            if snap is not None:
                self._snap = snap
            if measured:
                self._kl = list(self.kl.curve)

    def _run(self) -> None:
        torch.set_num_threads(1)  # see the module docstring
        lower_this_threads_priority()  # the pages' reruns get the CPU first (Linux; ui/threads.py)
        with training_slot(self._stop) as got:
            if not got:
                with self._lock:
                    self._state, self.error = "failed", "stopped while waiting for a free training slot"
                return
            self._train()

    def _train(self) -> None:
        try:
            with self._lock:
                self._state, self._started = "running", time.perf_counter()
            model = build_model("points", self.parameterization, self.schedule, self.dist.num_classes,
                                width=DEFAULTS["width"], depth=DEFAULTS["depth"], dim=self.dist.dim,
                                seed=self.config.seed)
            result = train(model, lambda n, g: self.dist.sample(n, generator=g), self.config,
                           callback=self._callback, should_stop=self._stop.is_set)
            with self._lock:
                self.result, self._finished = result, time.perf_counter()
                self._state = "evaluating"
            if result.steps_done:
                snap = (result.steps_done, snapshot_samples(result.model, self.schedule, self.x_T, self.exact_y))
                with self._lock:
                    self._snap = snap
                if self.log_z is not None:  # a run stopped early: its last step too
                    self._record_log_z({"step": result.steps_done, "snapshot": lambda: result.model}, last=True)
                kl_final = self.kl.finish(result.model)
                with self._lock:
                    self.kl_final = kl_final
                ed = quick_ed_ratio(result.model, self.dist)
                with self._lock:
                    self.ed_ratio = ed
            with self._lock:
                self._state = "done"
        except Exception as e:  # noqa: BLE001 -- shown on the page, never a silent dead thread
            with self._lock:
                self._state, self.error = "failed", f"{type(e).__name__}: {e}"
                self._finished = self._finished or time.perf_counter()

    # --- the result for the model store --------------------------------------------------------------

    def info(self) -> dict:
        """The `info` dict for ui.models.put_session (what the sidebar and other pages show)."""
        r = self.result
        train = {**self.config.to_dict(), "steps_done": r.steps_done, "seconds": round(r.seconds, 1),
                 "stopped": r.stopped, "data_key": self.data_key,
                 "final_loss": round(float(np.mean(r.losses[-100:])), 5) if r.losses else None,
                 "kl_seconds": round(self.kl.seconds, 2)}
        if self.log_z is not None:
            train["log_z_history"] = {k: list(v) for k, v in self.log_z.items()}
        metrics = {"ed_ratio": round(self.ed_ratio, 3) if self.ed_ratio is not None else None}
        if self.kl_final is not None:
            metrics.update(kl_gap_nats=round(self.kl_final[0], 4), kl_gap_se=round(self.kl_final[1], 4),
                           kl_ode_steps=self.kl.steps)
        return {"parameterization": self.parameterization, "schedule": self.schedule.spec(),
                "dataset": self.dataset, "label_names": list(self.dist.label_names), "train": train,
                "metrics": metrics}


# --- figures -------------------------------------------------------------------------------------------

def smooth(values, window: int = 50) -> np.ndarray:
    """Running mean over the last `window` values (shorter at the start): a readable loss trend."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, v.size + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def loss_figure(steps, losses, total: int | None = None, max_points: int = 1500, kl=None,
                kl_final=None) -> go.Figure:
    """The training loss per step on a log axis, raw (faint) and its running mean; below it, when `kl` is
    given (LiveKL's curve, [(step, nats, se)], and `kl_final` (nats, se) or None), KL(p_data || p_theta)."""
    steps, losses = np.asarray(steps), np.asarray(losses, dtype=float)
    trend = smooth(losses)
    stride = max(1, int(np.ceil(steps.size / max_points)))  # keep the figure small for long runs
    rows = 1 if kl is None else 2
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.1, row_heights=[0.55, 0.45][:rows])
    fig.add_trace(go.Scatter(x=steps[::stride], y=losses[::stride], mode="lines", name="loss per batch",
                             line=dict(color=PALETTE[4], width=1), opacity=0.6))
    fig.add_trace(go.Scatter(x=steps[::stride], y=trend[::stride], mode="lines", name="running mean (50 steps)",
                             line=dict(color=PALETTE[0], width=3)))
    x_range = [0, total or max(1, int(steps.max(initial=1)))]
    fig.update_layout(title="Training loss", font=FONT, height=500 if rows == 1 else 640,
                      margin=dict(l=70, r=10, t=60, b=40), plot_bgcolor="white",
                      # inside the top right, where a falling loss leaves room; below, it hit the axis title
                      legend=dict(x=0.99, xanchor="right", y=0.99, yanchor="top", bgcolor="rgba(255,255,255,0.85)"),
                      xaxis=dict(title="training step" if rows == 1 else None, range=x_range, gridcolor="#e5e5e5"),
                      # whole numbers on every tick: plotly's default log labels write 0.3 as a bare "3"
                      yaxis=dict(title="weighted denoising loss", type="log", tickformat=".3~g", gridcolor="#e5e5e5"))
    if rows == 2:
        last = int(steps.max()) if steps.size else None
        add_kl_traces(fig, kl, kl_final, last, row=2)
        fig.update_xaxes(title_text="training step", range=x_range, gridcolor="#e5e5e5", row=2, col=1)
        fig.update_yaxes(title_text="KL(p<sub>data</sub> ‖ p<sub>θ</sub>), nats", type="log", tickformat=".2~g",
                         range=kl_range(kl, kl_final), gridcolor="#e5e5e5", row=2, col=1)
        fig.update_layout(legend=dict(y=0.99, yanchor="top", x=0.99, xanchor="right", font=dict(size=14)))
    return fig


def samples_figure(dist, exact_x, exact_y, learned_x=None, learned_title: str = "Learned", density=None,
                   extent: float = EXTENT) -> go.Figure:
    """Exact samples (left) beside samples of the learned model (right), coloured by class, over the exact
    density; `density` is (xs, ys, p) from ui.figures.density_grid (or None to compute it)."""
    xs, ys, p = density if density is not None else density_grid(dist, 1.0, 0.0, n=90, extent=extent)
    fig = make_subplots(rows=1, cols=2, subplot_titles=["Exact", learned_title], horizontal_spacing=0.06)
    for col, (pts, lab) in enumerate([(exact_x, exact_y), (learned_x, exact_y)], start=1):
        fig.add_trace(go.Heatmap(x=xs, y=ys, z=p, colorscale=DENSITY_SCALE, showscale=False,
                                 hovertemplate="p(x) = %{z:.3g}<extra></extra>"), row=1, col=col)
        if pts is None:
            continue
        pts = np.asarray(pts)
        for c, name in enumerate(dist.label_names):
            m = np.asarray(lab) == c
            fig.add_trace(go.Scattergl(x=pts[m, 0], y=pts[m, 1], mode="markers", name=name, legendgroup=str(c),
                                       showlegend=col == 1,
                                       marker=dict(size=6, color=PALETTE[c % len(PALETTE)],
                                                   line=dict(width=0.5, color="white"))), row=1, col=col)
    lim = extent * 1.1
    for col in (1, 2):
        fig.update_xaxes(range=[-lim, lim], title_text="x₁", zeroline=False, constrain="domain", row=1, col=col)
        fig.update_yaxes(range=[-lim, lim], title_text="x₂" if col == 1 else None, zeroline=False, constrain="domain",
                         row=1, col=col, scaleanchor="x" if col == 1 else "x2")
    fig.update_layout(font=FONT, height=520, margin=dict(l=60, r=10, t=95, b=40), plot_bgcolor="white",
                      legend=dict(orientation="h", x=0, y=1.0, yanchor="top", yref="container",  # clear of x titles
                                  title_text="asked for: "))
    fig.update_annotations(font=dict(size=18))
    return fig


def eta_text(step: int, total: int, seconds: float) -> str:
    """'step 400 / 2000 · 55 steps/s · about 29 s left'."""
    if step <= 0 or seconds <= 0:
        return f"step {step} / {total}"
    rate = step / seconds
    speed = f"{rate:.0f} steps/s" if rate >= 1 else f"{1 / rate:.1f} s per step"
    return f"step {step} / {total} · {speed} · about {max(0.0, (total - step) / rate):.0f} s left"
