"""Live digit training for page 12: a class-conditional MNIST UNet trained in a background thread (no Streamlit).

`DigitTrainingJob` runs `diffusion.training.train` on MNIST batches exactly as ui.training.TrainingJob does
for the 2-D sets: one torch thread, a lower thread priority, and one of the same `MAX_CONCURRENT` training
slots (a digit run and a 2-D run each take one). While it trains it redraws a grid of guided samples of
every digit from the current EMA model every `REDRAW_S` seconds, always from the same starting noise, so the
page shows the digits forming. At the end the lab's classifier judges samples of the finished model.

The recipe (`LIVE`) is sized for one CPU thread and about two minutes: a UNet with 8 channels at full
resolution and no attention (0.07 M parameters, a ninth of the shipped model), batch 64, a high learning
rate with warm-up and cosine decay, and a short EMA. Its accuracy against training time is measured by
benchmarks/train_digits_speed.py (docs/measurements.md, "Training digits live").
"""

from __future__ import annotations

import time

import numpy as np
import torch

from diffusion.models import DiffusionModel
from diffusion.samplers import guided, prior_sample, sample, steps_for_nfe
from diffusion.schedules import make_schedule
from diffusion.training import TrainConfig, train
from diffusion.unet import UNet, UNetConfig
from diffusion.captured import TensorData
from toy_data.mnist import LABEL_NAMES, load_mnist

from .training import training_slot
from .threads import BackgroundJob, lower_this_threads_priority

# The live recipe: a small UNet for one CPU thread (benchmarks/train_digits_speed.py measures it).
LIVE = dict(schedule="cosine", parameterization="v", weighting="v", base=8, mults=(1, 2, 2), attention=False,
            steps=1200, batch=64, lr=4e-3, ema=0.995, label_dropout=0.1, t_sampling="uniform_t", batch_target=False)
# On a CUDA device (the sidebar's device): the shipped model's network and recipe (diffusion/train.py
# DEFAULTS_MNIST: 24 channels, attention at 7 x 7), its steps recorded as a CUDA graph (diffusion/captured.py).
ON_GPU = dict(LIVE, base=24, attention=True, steps=9000, lr=2e-3, ema=0.999, label_dropout=0.15)
STEPS_RANGE = (20, 20_000)  # the page's input; longer runs belong to `python -m diffusion.train --dataset mnist`
NUM_DIGITS = 10

# The live grid: PER_DIGIT samples of every digit, guided (GRID_W) with a few-step sampler so a redraw is cheap.
PER_DIGIT = 4
GRID_W = 2.0
GRID_SAMPLER, GRID_STEPS = "dpmpp_2m", 8
GRID_SEED = 0
REDRAW_S = 3.0  # seconds of training between two grids

# How the finished model is judged: the digit pages' sampler at 20 network evaluations, guided and not.
JUDGE_SAMPLER, JUDGE_NFE, JUDGE_WS = "dpmpp_2m", 20, (2.0, 0.0)
JUDGE_N = 500  # samples per setting, 50 of each digit: a standard error of about 1 point at 95%
JUDGE_SEED = 4321


def recipe_for(device: str) -> dict:
    """The live recipe for a device: ON_GPU on CUDA, LIVE (sized for one CPU thread) anywhere else."""
    return ON_GPU if str(device).startswith("cuda") else LIVE


def build_live_model(seed: int = 0, base: int = LIVE["base"], mults=LIVE["mults"],
                     attention: bool = LIVE["attention"]) -> DiffusionModel:
    """An untrained 10-class MNIST DiffusionModel of the live recipe (initial weights from `seed`)."""
    torch.manual_seed(int(seed))
    net = UNet(UNetConfig(base=int(base), mults=tuple(mults), attention=bool(attention), num_classes=NUM_DIGITS))
    return DiffusionModel(net, LIVE["parameterization"], make_schedule(LIVE["schedule"]), NUM_DIGITS)


def live_config(steps: int = LIVE["steps"], seed: int = 0, batch: int = LIVE["batch"], lr: float = LIVE["lr"],
                ema: float = LIVE["ema"], label_dropout: float = LIVE["label_dropout"],
                t_sampling: str = LIVE["t_sampling"], batch_target: bool = LIVE["batch_target"],
                device: str = "cpu") -> TrainConfig:
    """The live recipe's TrainConfig on `device` (ValueError naming a bad setting and its allowed range)."""
    lo, hi = STEPS_RANGE
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not lo <= int(steps) <= hi:
        raise ValueError(f"training steps must be a whole number in {lo}..{hi}; got {steps!r}")
    return TrainConfig(steps=int(steps), batch_size=int(batch), lr=float(lr), weighting=LIVE["weighting"],
                       ema_decay=float(ema), label_dropout=float(label_dropout), seed=int(seed),
                       device=device, t_sampling=t_sampling, batch_target=bool(batch_target)).validate()


def grid_noise(schedule, per_digit: int = PER_DIGIT, seed: int = GRID_SEED) -> torch.Tensor:
    """The grid's starting noise [10 * per_digit, 1, 28, 28]: column j is the same noise in every digit's row."""
    x = prior_sample(schedule, (per_digit, 1, 28, 28), seed=seed)
    return x.repeat(NUM_DIGITS, 1, 1, 1)


@torch.no_grad()
def grid_samples(model, x_T: torch.Tensor, w: float = GRID_W, sampler: str = GRID_SAMPLER,
                 steps: int = GRID_STEPS) -> np.ndarray:
    """Samples [10, per_digit, 28, 28] in [-1, 1] from x_T (grid_noise), row d asked for digit d, guided with w."""
    per = x_T.shape[0] // NUM_DIGITS
    labels = torch.arange(NUM_DIGITS).repeat_interleave(per)
    x = sample(guided(model, labels, w), x_T.clone(), model.schedule, sampler, steps)
    return x.clamp(-1, 1).reshape(NUM_DIGITS, per, 28, 28).numpy()


@torch.no_grad()
def judge(model, classifier, n: int = JUDGE_N, ws=JUDGE_WS, sampler: str = JUDGE_SAMPLER, nfe: int = JUDGE_NFE,
          seed: int = JUDGE_SEED, batch: int = 250) -> dict:
    """{w: (share the classifier reads as the asked digit, its standard error)} for n samples (n / 10 of each
    digit) per guidance weight w, all from the same starting noise."""
    if n % NUM_DIGITS or n < NUM_DIGITS:
        raise ValueError(f"judged samples must be a positive multiple of 10; got {n}")
    labels = torch.arange(NUM_DIGITS).repeat_interleave(n // NUM_DIGITS)
    x_T = prior_sample(model.schedule, (n, 1, 28, 28), seed=seed)
    steps = steps_for_nfe(sampler, nfe)
    out = {}
    for w in ws:
        right = []
        for i in range(0, n, batch):
            x = sample(guided(model, labels[i:i + batch], w), x_T[i:i + batch].clone(), model.schedule, sampler, steps)
            right.append(classifier.predict(x.clamp(-1, 1)) == labels[i:i + batch])
        p = torch.cat(right).float().mean().item()
        out[float(w)] = (p, (p * (1 - p) / n) ** 0.5)
    return out


class DigitTrainingJob(BackgroundJob):
    """One live MNIST training in a background thread; every public read is a consistent copy taken under a lock."""

    def __init__(self, config: TrainConfig, classifier=None, data=None, model=None, redraw_s: float = REDRAW_S,
                 judge_n: int | None = None):
        super().__init__("train-digits")
        self.config, self.classifier, self.redraw_s = config, classifier, float(redraw_s)
        self.judge_n = JUDGE_N if judge_n is None else int(judge_n)  # samples per judged setting
        self.data = data  # (n, generator) -> (x0, labels); default: the MNIST training digits, loaded in the thread
        net = recipe_for(config.device)
        self.model = model if model is not None else build_live_model(config.seed, net["base"], net["mults"],
                                                                      net["attention"])
        self.x_T = grid_noise(self.model.schedule)  # every grid starts from this noise
        # written by the thread, read under the lock; _state: new, queued, running, evaluating, done, failed
        self._steps: list[int] = []
        self._losses: list[float] = []
        self._grid: tuple[int, np.ndarray] | None = None  # (step, images [10, PER_DIGIT, 28, 28])
        self._grids = 0
        self._started = self._finished = None
        self._last_draw = None
        self._first_grid_s: float | None = None  # seconds from the start of training to the first grid
        self.result = None  # TrainResult once done
        self.accuracy: dict | None = None  # judge()'s answer for the finished model
        self.error = ""
        self.collected = False  # set by the page once the model is in the session's model store

    def progress(self) -> dict:
        """A consistent copy: state, step, total, steps [k], losses [k], grid (step, images) or None, grids drawn,
        seconds of the run so far, seconds to the first grid, accuracy or None."""
        with self._lock:
            now = self._finished or time.perf_counter()
            return {"state": self._state, "step": self._steps[-1] if self._steps else 0, "total": self.config.steps,
                    "steps": list(self._steps), "losses": list(self._losses), "grid": self._grid,
                    "grids": self._grids, "seconds": 0.0 if self._started is None else now - self._started,
                    "first_grid_s": self._first_grid_s, "accuracy": self.accuracy}

    def _draw(self, step: int, model) -> None:
        images = grid_samples(model, self.x_T)
        with self._lock:
            self._grid, self._grids = (step, images), self._grids + 1
            if self._first_grid_s is None:
                self._first_grid_s = time.perf_counter() - self._started
        self._last_draw = time.perf_counter()

    def _callback(self, info: dict) -> None:
        step = info["step"]
        with self._lock:
            self._steps.append(step)
            self._losses.append(info["loss"])
        if self._last_draw is None or time.perf_counter() - self._last_draw >= self.redraw_s:
            self._draw(step, info["snapshot"]())

    def _run(self) -> None:
        torch.set_num_threads(1)  # as for the 2-D training (ui/training.py)
        lower_this_threads_priority()
        with training_slot(self._stop) as got:
            if not got:
                with self._lock:
                    self._state, self.error = "failed", "stopped while waiting for a free training slot"
                return
            try:
                with self._lock:
                    self._state, self._started = "running", time.perf_counter()
                data = self.data or TensorData(*load_mnist("train"))  # drawn as mnist_sampler; on a GPU, there
                result = train(self.model, data, self.config, callback=self._callback, should_stop=self._stop.is_set)
                with self._lock:
                    self.result, self._finished, self._state = result, time.perf_counter(), "evaluating"
                if result.steps_done:
                    self._draw(result.steps_done, result.model)
                    if self.classifier is not None:  # a stopped run's model too: it is the one kept
                        accuracy = judge(result.model, self.classifier, self.judge_n)
                        with self._lock:
                            self.accuracy = accuracy
                with self._lock:
                    self._state = "done"
            except Exception as e:  # noqa: BLE001 -- shown on the page, never a silent dead thread
                with self._lock:
                    self._state, self.error = "failed", f"{type(e).__name__}: {e}"
                    self._finished = self._finished or time.perf_counter()

    def info(self) -> dict:
        """The `info` dict for ui.models.put_session (what the digit pages show about this model)."""
        r = self.result
        train_info = {**self.config.to_dict(), "steps_done": r.steps_done, "seconds": round(r.seconds, 1),
                      "stopped": r.stopped,
                      "final_loss": round(float(np.mean(r.losses[-100:])), 5) if r.losses else None}
        metrics = {}
        for w, (p, se) in (self.accuracy or {}).items():
            metrics[f"accuracy_w{w:g}"] = round(p, 4)
            metrics[f"accuracy_w{w:g}_se"] = round(se, 4)
        return {"parameterization": r.model.parameterization, "schedule": r.model.schedule.spec(),
                "dataset": "mnist", "label_names": list(LABEL_NAMES), "net": r.model.net.config(),
                "train": train_info, "metrics": metrics}
