"""Training: the denoising loss and one train() loop shared by 2-D points and MNIST images."""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import Tensor

from . import captured, distributed
from .models import DiffusionModel
from .parameterizations import batch_posterior_x0, eps_scale, from_x0_eps, get_weighting, noise_level
from .schedules import T_SAMPLING, times_of_uniform


def pick_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then the CPU; any other name is checked and used as given."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in ("cpu", "cuda", "mps") and not (name.startswith("cuda:") and name[5:].isdigit()):
        raise ValueError(f"device must be one of auto, cpu, cuda, cuda:N, mps; got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; use --device cpu or auto")
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: there are only {torch.cuda.device_count()} CUDA devices")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' was asked for but Apple MPS is not available; use --device cpu or auto")
    return torch.device(name)


def diffusion_loss(model: DiffusionModel, x0: Tensor, label, weighting: str, generator=None,
                   t_sampling: str = "uniform_t", rows: slice | None = None,
                   autocast_dtype: torch.dtype | None = None, batch_target: bool = False) -> Tensor:
    """E_t,eps [ w(lambda) / c^2 |out - out*|^2 ] = E [ w(lambda) |eps_hat - eps|^2 ], per dimension.

    t is drawn stratified (one per example: lower variance than i.i.d.), uniform in t or, with
    t_sampling="uniform_logsnr", uniform in lambda over the schedule's range, or with "logsnr_normal", lambda
    from a normal truncated to that range (schedules.times_of_uniform).

    `rows` (one process's share when several train together): t and the noise are drawn for the whole
    batch, as without it, and the loss is the mean over these rows only; so the mean of the losses over
    equal blocks of rows is the whole batch's loss. `autocast_dtype` (e.g. torch.bfloat16 on CUDA) runs
    the network under autocast; the loss itself is computed in x0's dtype.

    `batch_target` replaces each example's own (x0, eps) target by the posterior mean of x0 given its x_t over
    the whole batch (batch_posterior_x0): the "stable target field" of Xu et al. 2023. The regression then
    has the same minimiser as the batch grows, and far less noise where the noise is small against the spread
    of the data, so a 2-D model learns its fine scale in fewer steps.
    """
    b = x0.shape[0]
    u = torch.rand((), generator=generator, dtype=torch.float64).item()
    t = ((torch.arange(b, dtype=torch.float64) + u) / b)[torch.randperm(b, generator=generator)]
    t = times_of_uniform(model.schedule, t, t_sampling)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    lvl = noise_level(model.schedule, t)
    lv = lvl.to(x0)
    x = lv.alpha * x0 + lv.sigma * eps
    if batch_target:  # over the whole batch, also when this process trains on a share of its rows
        x0 = batch_posterior_x0(x, x0, lv.alpha, lv.sigma, label)
        eps = (x - lv.alpha * x0) / lv.sigma
    if rows is not None:  # the same draws as for the whole batch, then this share of its rows
        x0, eps, t, x = x0[rows], eps[rows], t[rows], x[rows]
        if isinstance(label, Tensor) and label.ndim:
            label = label[rows]
        lvl = noise_level(model.schedule, t)
        lv = lvl.to(x0)
    amp = contextlib.nullcontext() if autocast_dtype is None else torch.autocast(x0.device.type, autocast_dtype)
    with amp:
        out, _ = model.predict(x, t, label, create_graph=True)
    out = out.to(x0.dtype)
    target = from_x0_eps(model.parameterization, x0, eps, lvl)
    w = get_weighting(weighting)(lv.logsnr) / eps_scale(model.parameterization, lv) ** 2
    return (w * (out - target) ** 2).mean()


@dataclass
class TrainConfig:
    steps: int = 4000
    batch_size: int = 1024
    lr: float = 3e-3  # peak Adam learning rate; cosine decay to 0 after a 2% warm-up
    weighting: str = "eps"  # loss weighting w(lambda), see parameterizations.WEIGHTINGS
    ema_decay: float = 0.995  # EMA of the weights; the EMA model is the one that is saved
    grad_clip: float = 1.0  # max global grad norm
    label_dropout: float = 0.15  # share of labels replaced by "no label", for classifier-free guidance
    t_sampling: str = "uniform_t"  # or "uniform_logsnr" (more at both ends), "logsnr_normal" (schedules.LOGSNR_NORMAL)
    batch_target: bool = False  # regress on the batch's posterior mean of x0 (diffusion_loss)
    seed: int = 0
    device: str = "auto"
    # bf16 autocast of the network on CUDA when supported; ignored on CPU/MPS and energy heads. Off by default:
    # on an H100 the small MNIST UNet did not get faster with it (1,000 steps at batch 64 were killed at 45 s
    # wall clock under autocast, against 32.8 s of training in float32; docs/measurements.md, "Training on a GPU").
    amp: bool = False
    # "auto": on one CUDA device, each step recorded once as a CUDA graph and replayed (diffusion.captured),
    # for data given as captured.TensorData or MixtureData; the eager loop everywhere else. "graph" asks for
    # it (an error where it cannot run), "static" runs the same step unrecorded, "off" the eager loop.
    capture: str = "auto"

    def validate(self) -> "TrainConfig":
        checks = [("steps", 1 <= self.steps <= 1_000_000, "1..1000000"),
                  ("batch_size", 1 <= self.batch_size <= 65536, "1..65536"),
                  ("lr", 0 < self.lr <= 1, "(0, 1]"), ("ema_decay", 0 <= self.ema_decay < 1, "[0, 1)"),
                  ("grad_clip", self.grad_clip > 0, "> 0"), ("label_dropout", 0 <= self.label_dropout <= 1, "[0, 1]"),
                  ("amp", isinstance(self.amp, bool), "True or False")]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"training setting {name}={getattr(self, name)!r} is invalid; allowed: {allowed}")
        get_weighting(self.weighting)
        if self.capture not in captured.CAPTURE_MODES:
            raise ValueError(f"training setting capture={self.capture!r} is invalid; allowed: "
                             f"{', '.join(captured.CAPTURE_MODES)}")
        if self.t_sampling not in T_SAMPLING:
            raise ValueError(f"t_sampling {self.t_sampling!r} is invalid; allowed: {', '.join(T_SAMPLING)}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    model: DiffusionModel  # the EMA weights: the model to use
    losses: list[float] = field(default_factory=list)
    steps_done: int = 0
    seconds: float = 0.0
    stopped: str = ""  # why training ended early ("" when it ran all its steps)
    world_size: int = 1  # processes that trained it together (torchrun), 1 for a plain process
    capture: str = "off"  # how the steps ran: "graph" (a replayed CUDA graph), "static" or "off" (the eager loop)


def train(model: DiffusionModel, data: Callable, config: TrainConfig, callback: Callable | None = None,
          should_stop: Callable[[], bool] | None = None) -> TrainResult:
    """Train `model` in place on batches from `data(batch_size, generator) -> (x0, labels)`.

    `callback({'step', 'loss', 'snapshot'})` is called after every step; `snapshot()` returns a frozen
    copy of the current EMA model. A NaN or inf loss stops training, restores the last good weights
    and says so in `result.stopped`; `should_stop()` returning True stops it cleanly.

    Under torchrun (WORLD_SIZE > 1) every process makes this same call (see diffusion.distributed): each
    draws the same global batch of `config.batch_size` rows, trains on its block of them through
    DistributedDataParallel, and ends with the same weights as one process would. Only rank 0 calls
    `callback`; `should_stop()` True in any process, or a bad loss in any, stops them all at that step.

    With `config.capture` resolving to "graph" or "static" (diffusion.captured.resolve) the steps run as one
    recorded step replayed, with the data, draws and losses kept on the device; the callback then comes in
    bursts, once per step, every captured.SYNC_EVERY steps, and `result.capture` names the mode.
    """
    config.validate()
    group, device = distributed.start(pick_device(config.device))  # a no-op in a plain process
    net = model.net
    try:
        rows = distributed.rows_of(config.batch_size, group.rank, group.world_size) if group.active else None
        amp = (torch.bfloat16 if config.amp and device.type == "cuda" and model.parameterization != "energy"
               and torch.cuda.is_bf16_supported() else None)
        torch.manual_seed(config.seed)
        g = torch.Generator().manual_seed(config.seed)  # the same in every process: the same global batches
        model.to(device).train()
        ema = copy.deepcopy(model).eval().requires_grad_(False)
        result, start = TrainResult(ema, world_size=group.world_size), time.perf_counter()
        result.capture = captured.resolve(config.capture, device, group.world_size, model.parameterization, data)
        if result.capture != "off":
            captured.run(model, ema, data, config, device, amp, result, result.capture, callback, should_stop)
        else:
            params = list(model.parameters())
            opt = torch.optim.Adam(params, lr=config.lr)
            warm = max(1, config.steps // 50)
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / config.steps))))
            # Several processes: DDP averages the gradients during backward(). An energy head's loss is itself a
            # gradient (score = -grad_x E, a double backward), which DDP does not support: there the gradients
            # are averaged after backward() in one all-reduce instead.
            by_hand = group.active and model.parameterization == "energy"
            if by_hand:
                distributed.broadcast_(params)  # start from rank 0's weights, as DDP does
            elif group.active:
                from torch.nn.parallel import DistributedDataParallel

                model.net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
            for step in range(config.steps):
                stop = should_stop is not None and should_stop()
                if group.active:  # any process asking stops all of them at the same step
                    stop = distributed.all_reduce_(torch.tensor([float(stop)], device=device), "max").item() > 0
                if stop:
                    result.stopped = f"stopped by request after {step} steps"
                    break
                x0, labels = data(config.batch_size, g)
                x0 = x0.to(device)
                if labels is not None and model.num_classes:
                    drop = torch.rand(labels.shape, generator=g) < config.label_dropout
                    labels = torch.where(drop, -1, labels).to(device)
                else:
                    labels = None
                loss = diffusion_loss(model, x0, labels, config.weighting, generator=g, t_sampling=config.t_sampling,
                                      rows=rows, autocast_dtype=amp, batch_target=config.batch_target)
                opt.zero_grad(set_to_none=True)
                seen = loss.detach()
                if group.active:  # the whole batch's loss: the same number, finite or not, in every process
                    seen = distributed.all_reduce_(seen.clone()) / group.world_size
                bad = None if torch.isfinite(seen) else f"the loss became {seen.item()}"
                if bad is None:
                    loss.backward()
                    if by_hand:
                        distributed.average_gradients_(params, group.world_size)
                    norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip)  # of the averaged gradients
                    bad = None if torch.isfinite(norm) else f"the gradient became {norm.item()}"
                if bad is not None:  # no update was taken: the weights are those of the last good step
                    result.stopped = f"{bad} at step {step + 1}; training stopped and kept the weights of step {step}"
                    break
                opt.step()
                sched.step()
                with torch.no_grad():
                    d = min(config.ema_decay, (1 + step) / (10 + step))  # short warm-up of the EMA
                    for pe, pm in zip(ema.parameters(), params):
                        pe.lerp_(pm, 1 - d)
                result.losses.append(seen.item())
                result.steps_done = step + 1
                if callback is not None and group.is_main:
                    callback({"step": step + 1, "loss": result.losses[-1],
                              "snapshot": lambda: copy.deepcopy(ema).cpu().eval()})
    finally:
        model.net = net
        distributed.stop(group)
    result.seconds = time.perf_counter() - start
    ema.cpu().eval()
    model.cpu()
    return result
