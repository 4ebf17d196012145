"""Whole training steps captured once as a CUDA graph and replayed: the GPU path without launch overhead.

The small networks here leave a GPU idle between kernel launches (docs/measurements.md, "Training on a
GPU"), so the step is recorded once and replayed: draw a batch, draw t and the noise, forward, loss,
backward, clip, Adam, EMA, all as device work with no host synchronisation. What the eager loop in
`diffusion.training.train` does with Python numbers happens here on device tensors:

    data      the training set as one device tensor (TensorData) or a Gaussian mixture sampled on the
              device (MixtureData); rows drawn with the device's generator
    t         stratified, (i + u) / B in a random order, as diffusion_loss draws it
    lr        peak * lr_factor(step) from a step counter on the device; Adam(capturable=True) reads it
    EMA       decay min(ema_decay, (1 + step) / (10 + step)) from the same counter
    losses    written to a device buffer and read every `sync_every` steps (one host sync per read)

Modes (TrainConfig.capture): "graph" records the step as a torch.cuda.CUDAGraph after a few warm-up
steps on a side stream; "static" runs the very same step function without recording it (any device:
the tests run it on the CPU); "off" is the eager loop; "auto" is "graph" on one CUDA device for data
given as TensorData or MixtureData, "off" otherwise.

A non-finite loss or gradient is found at the next read: training stops there and the weights and EMA
go back to those of the last read, the last point known to be good.
"""

from __future__ import annotations

import contextlib
import copy
import math

import torch
from torch import Tensor

from .models import c_in, c_noise, output_scale
from .parameterizations import NoiseLevel, batch_posterior_x0, eps_scale, from_x0_eps, get_weighting
from .schedules import times_of_uniform

CAPTURE_MODES = ("auto", "graph", "static", "off")
SYNC_EVERY = 100  # steps between reads of the device-side losses
WARMUP_STEPS = 3  # eager steps on a side stream before capture (lazy optimizer state, cuBLAS handles)
CUDA_MIN_BATCH = 512  # the CLI's smallest batch for a captured CUDA run: a launch-bound step costs the same
#                       at 64 as at 512 (docs/measurements.md); benchmarks/gpu_train.py measures the trade


class TensorData:
    """A finite training set held as one tensor: `data(n, generator)` draws n rows with replacement.

    Called on the host it draws exactly as toy_data.mnist.mnist_sampler does (torch.randint over the rows
    with the given generator), so the eager loop's batches do not change; `on(device).draw(n, generator)`
    draws on the device without leaving it.
    """

    def __init__(self, x: Tensor, labels: Tensor | None = None):
        if labels is not None and len(labels) != len(x):
            raise ValueError(f"{len(x)} rows but {len(labels)} labels")
        self.x, self.labels = x, labels

    def __call__(self, n: int, generator: torch.Generator | None = None):
        idx = torch.randint(len(self.x), (n,), generator=generator)
        return self.x[idx], None if self.labels is None else self.labels[idx]

    def on(self, device) -> "TensorData":
        return TensorData(self.x.to(device), None if self.labels is None else self.labels.to(device))

    def draw(self, n: int, generator: torch.Generator | None = None):
        """(x0 [n, ...], labels [n] or None), drawn on this data's device."""
        idx = torch.randint(len(self.x), (n,), generator=generator, device=self.x.device)
        return self.x.index_select(0, idx), None if self.labels is None else self.labels.index_select(0, idx)


class MixtureData:
    """A toy_data GaussianMixture as training data: on the host `dist.sample`, on the device the same law.

    On the device a component k is drawn by inverse CDF (searchsorted of u ~ U[0, 1) in the cumulative
    weights), then x = mu_k + s_k z with z ~ N(0, I), in float64 as GaussianMixture.sample, returned float32.
    """

    def __init__(self, dist, device="cpu"):
        self.dist = dist
        self.means = dist.means.to(device, torch.float64)  # [K, D]
        self.stds = dist.stds.to(device, torch.float64)  # [K]
        self.cdf = torch.cumsum(dist.weights.to(torch.float64), 0).to(device)  # [K]
        self.component_labels = dist.labels.to(device)  # [K]

    def __call__(self, n: int, generator: torch.Generator | None = None):
        return self.dist.sample(n, generator=generator)

    def on(self, device) -> "MixtureData":
        return MixtureData(self.dist, device)

    def draw(self, n: int, generator: torch.Generator | None = None):
        """(x0 [n, D] float32, labels [n]), drawn on this data's device."""
        dev = self.means.device
        u = torch.rand(n, generator=generator, dtype=torch.float64, device=dev) * self.cdf[-1]
        k = torch.searchsorted(self.cdf, u, right=True).clamp_(max=len(self.cdf) - 1)
        z = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64, device=dev)
        return (self.means[k] + self.stds[k, None] * z).float(), self.component_labels[k]


def resolve(mode: str, device: torch.device, world_size: int, parameterization: str, data) -> str:
    """The mode a run uses: "graph", "static" or "off"; "auto" becomes "graph" where capture is possible.

    Raises ValueError for "graph" or "static" where they cannot run, naming what is missing.
    """
    if mode not in CAPTURE_MODES:
        raise ValueError(f"capture {mode!r} is invalid; allowed: {', '.join(CAPTURE_MODES)}")
    if mode == "off":
        return "off"
    problem = None
    if world_size > 1:
        problem = "it trains in one process (not under torchrun)"
    elif parameterization == "energy":
        problem = "an energy head's loss is a double backward, which it does not record"
    elif not hasattr(data, "draw") or not hasattr(data, "on"):
        problem = "it needs the data as diffusion.captured.TensorData or MixtureData (drawn on the device)"
    elif mode == "graph" and device.type != "cuda":
        problem = f"CUDA graphs need a CUDA device and this run is on {device.type}; use capture='static' " \
                  f"to run the same step without recording it, or 'off'"
    if mode == "auto":
        return "graph" if problem is None and device.type == "cuda" else "off"
    if problem is not None:
        raise ValueError(f"capture={mode!r} cannot be used: {problem}")
    return mode


def level_on_device(schedule, t: Tensor) -> NoiseLevel:
    """noise_level(schedule, t) computed where t lives, without Schedule.as_time's range check.

    That check reads t on the host (`if (t < 0).any()`), a synchronisation that graph capture forbids; t
    here is drawn inside the schedule's t_range, and is clamped to it as noise_level clamps it.
    """
    return NoiseLevel(*schedule.values_on_device(t))


def lr_factor(step: Tensor, steps: int) -> Tensor:
    """The eager loop's LambdaLR factor at `step` (0-based): a 2% linear warm-up times a cosine decay to 0."""
    warm = max(1, steps // 50)
    return (torch.clamp((step + 1) / warm, max=1.0)
            * (0.5 * (1 + torch.cos(math.pi * torch.clamp(step / steps, max=1.0)))))


def make_draw(data, config, schedule, batch: int, conditional: bool = True):
    """draw(generator) -> (x0, labels, t, eps) on data's device, as train() draws them: a batch, label
    dropout (labels None when not `conditional`), stratified t (uniform in t or in lambda) and the noise;
    no host synchronisation."""
    def draw(g):
        x0, labels = data.draw(batch, g)
        labels = labels if conditional else None
        dev = x0.device
        if labels is not None:
            drop = torch.rand(labels.shape, generator=g, device=dev) < config.label_dropout
            labels = torch.where(drop, -1, labels)
        u = torch.rand((), generator=g, dtype=torch.float64, device=dev)
        t = (torch.arange(batch, dtype=torch.float64, device=dev) + u) / batch
        t = t[torch.argsort(torch.rand(batch, generator=g, device=dev))]  # stratified, in a random order
        t = times_of_uniform(schedule, t, config.t_sampling)
        eps = torch.randn(x0.shape, generator=g, dtype=x0.dtype, device=dev)
        return x0, labels, t, eps

    return draw


def denoising_loss(model, x0: Tensor, labels, t: Tensor, eps: Tensor, weighting: str,
                   autocast_dtype: torch.dtype | None = None, batch_target: bool = False) -> Tensor:
    """diffusion_loss with the draws given and everything on x0's device: E [w(lambda) |eps_hat - eps|^2].

    The network is called as DiffusionModel.predict calls it (c_in x, c_noise, label index, output scale),
    without predict's trip of t to the host. Autocast runs with its weight cache off, as capture requires.
    """
    b = x0.shape[0]
    lvl = level_on_device(model.schedule, t)
    lv = lvl.to(x0)
    x = lv.alpha * x0 + lv.sigma * eps  # x_t = alpha x0 + sigma eps
    lab = None
    if model.num_classes:  # -1 ("no label") -> the extra embedding row num_classes
        lab = (torch.full((b,), model.num_classes, dtype=torch.long, device=x0.device) if labels is None
               else torch.where(labels < 0, model.num_classes, labels))
    amp = (contextlib.nullcontext() if autocast_dtype is None
           else torch.autocast(x0.device.type, autocast_dtype, cache_enabled=False))
    with amp:
        out = model.net(c_in(lv) * x, c_noise(lv).reshape(b), lab) * output_scale(model.parameterization, lv)
    out = out.to(x0.dtype)
    if batch_target:  # as diffusion_loss
        x0 = batch_posterior_x0(x, x0, lv.alpha, lv.sigma, labels)
        eps = (x - lv.alpha * x0) / lv.sigma
    target = from_x0_eps(model.parameterization, x0, eps, lvl)
    w = get_weighting(weighting)(lv.logsnr) / eps_scale(model.parameterization, lv) ** 2
    return (w * (out - target) ** 2).mean()


class StaticStep:
    """One training step whose tensors never change address, so that it can be recorded and replayed.

    `step()` trains one step and writes (loss, grad norm) into row `count % sync_every` of `stats`;
    `count` is the number of steps taken, on the device.
    """

    def __init__(self, model, ema, draw, config, device: torch.device, generator, amp, sync_every: int):
        self.model, self.ema, self.draw, self.config, self.g, self.amp = model, ema, draw, config, generator, amp
        self.params = list(model.parameters())
        self.ema_params = list(ema.parameters())
        cuda = device.type == "cuda"
        # float64 on the CPU: the same lr, bit for bit, as the eager loop's Python float
        self.lr = torch.tensor(config.lr, dtype=torch.float32 if cuda else torch.float64, device=device)
        self.opt = torch.optim.Adam(self.params, lr=self.lr, capturable=cuda, foreach=cuda)
        self.count = torch.zeros((), dtype=torch.long, device=device)
        self.stats = torch.zeros(sync_every, 2, dtype=torch.float32, device=device)  # (loss, grad norm) per step
        self.sync_every = sync_every

    def step(self) -> None:
        cfg = self.config
        x0, labels, t, eps = self.draw(self.g)
        self.opt.zero_grad(set_to_none=True)
        loss = denoising_loss(self.model, x0, labels, t, eps, cfg.weighting, self.amp, cfg.batch_target)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        s = self.count.to(self.lr.dtype)
        self.lr.copy_(cfg.lr * lr_factor(s, cfg.steps))
        self.opt.step()
        with torch.no_grad():
            w = (1 - torch.clamp((1 + s) / (10 + s), max=cfg.ema_decay)).to(self.params[0].dtype)  # EMA warm-up
            for pe, pm in zip(self.ema_params, self.params):
                pe.lerp_(pm, w)
            row = torch.stack((loss.detach().float(), norm.detach().float())).view(1, 2)
            self.stats.index_copy_(0, (self.count % self.sync_every).view(1), row)
            self.count += 1


def run(model, ema, data, config, device: torch.device, amp, result, mode: str, callback=None,
        should_stop=None, draw=None, generator=None, sync_every: int = SYNC_EVERY) -> None:
    """Train `model` (its EMA in `ema`) for config.steps with the static step, recorded when mode == "graph".

    Fills `result` (a diffusion.training.TrainResult) as the eager loop does. `callback` and `should_stop`
    run after each read, every `sync_every` steps: the callback once for each step read, with its loss;
    `snapshot()` is the EMA as of the read. `draw` and `generator` replace the default draws (make_draw over
    `data` on `device`, with the device's default generator on CUDA and a CPU generator seeded with
    config.seed elsewhere): the tests use them to feed the eager loop's own draws.
    """
    if draw is None:
        draw = make_draw(data.on(device), config, model.schedule, config.batch_size, bool(model.num_classes))
    if generator is None and device.type != "cuda":
        generator = torch.Generator(device).manual_seed(config.seed)
    step = StaticStep(model, ema, draw, config, device, generator, amp, sync_every)
    weights = step.params + step.ema_params
    keep = [p.detach().clone() for p in weights]  # the weights at the last read
    side = None
    if mode == "graph":  # warm-up steps run on a side stream, as capture requires
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
    graph, done = None, 0
    while done < config.steps:
        if should_stop is not None and should_stop():
            result.stopped = f"stopped by request after {done} steps"
            break
        n = min(sync_every, config.steps - done)  # done is a multiple of sync_every: rows 0..n-1 of stats
        for i in range(done, done + n):
            if side is None:
                step.step()
            elif i < WARMUP_STEPS:
                with torch.cuda.stream(side):
                    step.step()
            else:
                if graph is None:
                    torch.cuda.current_stream(device).wait_stream(side)
                    graph = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(graph):
                        step.step()
                graph.replay()
        if side is not None:
            torch.cuda.current_stream(device).wait_stream(side)
        stats = step.stats[:n].cpu()  # the chunk's one host synchronisation
        bad = next((j for j in range(n) if not torch.isfinite(stats[j]).all()), None)
        with torch.no_grad():  # back to the last read's weights after a bad step, else remember these
            for p, k in zip(weights, keep):
                (p.copy_(k) if bad is not None else k.copy_(p))
        if bad is not None:
            loss, norm = stats[bad].tolist()
            what = f"the loss became {loss}" if not math.isfinite(loss) else f"the gradient became {norm}"
            result.stopped = (f"{what} at step {done + bad + 1}; training stopped and kept the weights of step "
                              f"{done} (the last read of the loss)")
            break
        for j, loss in enumerate(stats[:, 0].tolist()):
            result.losses.append(loss)
            result.steps_done = done + j + 1
            if callback is not None:
                callback({"step": done + j + 1, "loss": loss, "snapshot": lambda: copy.deepcopy(ema).cpu().eval()})
        done += n
    del graph
