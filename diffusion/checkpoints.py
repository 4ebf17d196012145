"""Checkpoints: safetensors weights (loading cannot execute code) with the full configuration beside them.

A checkpoint is one `.safetensors` file whose metadata holds a JSON config: the network
architecture and sizes, parameterization, schedule spec, dataset and label names, training
settings and measured figures. Writes are atomic (a temporary file, fsync, then rename), so a crash
mid-save leaves the previous file intact. Any problem on load raises CheckpointError naming the file.
"""

from __future__ import annotations

import json
import os
import tempfile

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

from .models import DiffusionModel
from .nets import MLP2D, MLPConfig
from .schedules import make_schedule

FORMAT = "diffusion-lab/1"
MAX_HEADER = 10_000_000  # bytes; a safetensors header longer than this is corrupt (safetensors allows 100 MB)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used, with the file and the problem in the message."""

    def __init__(self, path, problem: str):
        super().__init__(f"checkpoint {os.fspath(path)!s}: {problem}")
        self.path, self.problem = os.fspath(path), problem


def model_from_config(config: dict) -> DiffusionModel:
    """An untrained DiffusionModel from a checkpoint config (the network's own config, as `model_config` writes it)."""
    net_cfg = dict(config["net"])
    arch = net_cfg.pop("arch")
    if arch == "mlp2d":
        net = MLP2D(MLPConfig(**net_cfg))
    elif arch == "unet":
        from .unet import UNet, UNetConfig

        net = UNet(UNetConfig(**net_cfg))
    else:
        raise ValueError(f"unknown network architecture {arch!r}")
    return DiffusionModel(net, config["parameterization"], make_schedule(config["schedule"]),
                          net_cfg.get("num_classes", 0))


def model_config(model: DiffusionModel, **extra) -> dict:
    """The config that `model_from_config` needs, plus anything extra (dataset, training settings, metrics)."""
    return {"format": FORMAT, "net": model.net.config(), "parameterization": model.parameterization,
            "schedule": model.schedule.spec(), **extra}


def atomic_write(path, data: bytes) -> None:
    """Write bytes so that a crash leaves the old file or the new one, never half of one:
    a temporary file in the same folder, fsync, chmod to the umask's default, rename, fsync the folder."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; this is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def save_checkpoint(path, model: DiffusionModel, **extra) -> dict:
    """Write model weights + config atomically to `path`; returns the config written."""
    config = model_config(model, **extra)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.net.state_dict().items()}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, st_save(tensors, metadata={"config": json.dumps(config)}))
    return config


def rewrite_metrics(path, metrics: dict) -> dict:
    """Replace the measured figures stored in a checkpoint, keeping its weights and the rest of its
    config as they are (atomically, like every write); returns the new config."""
    model, config = load_checkpoint(path)
    extra = {k: v for k, v in config.items() if k not in model_config(model)}
    return save_checkpoint(path, model, **{**extra, "metrics": metrics})


def read_safetensors(path, what: str = "checkpoint", tensors: bool = True) -> tuple[object, dict | None]:
    """(config, tensors) of a diffusion-lab safetensors file: the JSON config in its metadata, as parsed,
    and its tensors by name (None when `tensors` is False: then only the header is read).

    The first 8 bytes refuse a header length over MAX_HEADER or past the file's end; then safetensors' own
    parser checks the header's JSON and every tensor's dtype, shape and offsets, which must cover the data
    exactly. The tensors are read with pread from that one open file, so config and weights always come
    from the same file, and they are copies: no memory map of the file is kept (a file cut short on disk
    under a map faults the process). Any problem raises CheckpointError.
    """
    try:
        with open(path, "rb") as f:
            head, size = f.read(8), os.fstat(f.fileno()).st_size
    except OSError as e:
        raise CheckpointError(path, f"cannot be read ({e.strerror or e})") from None
    if len(head) < 8:
        raise CheckpointError(path, "the file is empty or truncated (no safetensors header)")
    n = int.from_bytes(head, "little")
    if n > MAX_HEADER:
        raise CheckpointError(path, "not a safetensors file (header length is implausible)")
    if n > size - 8:
        raise CheckpointError(path, "the file is truncated (header cut short)")
    try:
        with safe_open(path, "pt", backend="pread") as f:
            meta, data = f.metadata() or {}, (f.get_tensors() if tensors else None)
    except OSError as e:
        raise CheckpointError(path, f"cannot be read ({e.strerror or e})") from None
    except Exception as e:  # safetensors' SafetensorError on a corrupt header or data that does not fit it
        raise CheckpointError(path, f"not a whole safetensors file: corrupt or truncated "
                                    f"({type(e).__name__}: {e})") from None
    try:
        return json.loads(meta["config"]), data
    except (KeyError, json.JSONDecodeError, RecursionError):
        raise CheckpointError(path, f"not a diffusion-lab {what} (no readable config in its metadata)") from None


def _checked_format(path, config) -> dict:
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else config
        raise CheckpointError(path, f"unsupported checkpoint format {found!r}; expected {FORMAT}")
    return config


def read_config(path) -> dict:
    """The config stored in a checkpoint, read from its header alone (no tensors are loaded)."""
    return _checked_format(path, read_safetensors(path, tensors=False)[0])


# What a checkpoint's network sizes may be: anything else is refused before a network is built.
NET_LIMITS = {"dim": (1, 4096), "width": (8, 2048), "depth": (1, 32), "num_classes": (0, 1000),
              "fourier": (0, 64), "base": (8, 512), "channels": (1, 16), "size": (4, 256)}
MULTS_LIMITS = (1, 6, 16)  # a UNet's channel multipliers: 1 to 6 levels, each 1..16


def _check_net(path, net: dict) -> None:
    if not isinstance(net, dict) or net.get("arch") not in ("mlp2d", "unet"):
        raise CheckpointError(path, f"unknown network architecture {net.get('arch') if isinstance(net, dict) else net!r}")
    for key, value in net.items():
        if key in NET_LIMITS:
            lo, hi = NET_LIMITS[key]
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise CheckpointError(path, f"network setting {key}={value!r} is out of range [{lo}, {hi}]")
    if "mults" in net:
        lo, hi, top = MULTS_LIMITS
        m = net["mults"]
        if (not isinstance(m, list) or not lo <= len(m) <= hi
                or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= top for v in m)):
            raise CheckpointError(path, f"network setting mults={m!r} must be a list of {lo}-{hi} integers in [1, {top}]")


def load_checkpoint(path, expect: dict | None = None) -> tuple[DiffusionModel, dict]:
    """(model in eval mode on the CPU, config). `expect` pins config fields, e.g. {'net.arch': 'mlp2d'}.

    The config and the weights come from one open file (`read_safetensors`), so they always belong together.
    """
    config, tensors = read_safetensors(path)
    config = _checked_format(path, config)
    for key, want in (expect or {}).items():
        have = config
        for part in key.split("."):
            have = have.get(part) if isinstance(have, dict) else None
        if have != want:
            raise CheckpointError(path, f"is a checkpoint with {key}={have!r}, but {want!r} is needed here")
    _check_net(path, config.get("net"))
    try:
        model = model_from_config(config)
    except Exception as e:  # a config this code cannot build (unknown schedule, missing module, ...)
        raise CheckpointError(path, f"its config does not describe a model this code can build "
                                    f"({type(e).__name__}: {e})") from None
    try:
        model.net.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(path, f"the weights do not match the network in its config "
                                    f"({first[1].strip() if len(first) > 1 else first[0]})") from None
    for name, value in tensors.items():
        if not torch.isfinite(value).all():
            raise CheckpointError(path, f"weight {name} holds NaN or inf")
    return model.eval(), config
