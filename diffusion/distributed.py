"""Several processes under torchrun: data-parallel training that gives the one-process result.

`torchrun --nproc_per_node N -m diffusion.train ...` starts N copies of the same command and tells each
its place through the environment (WORLD_SIZE, RANK, LOCAL_RANK). `train()` notices, joins the process
group (NCCL between GPUs, gloo between CPU processes) and wraps the network in DistributedDataParallel.

Every process draws the SAME global batch from the same seeded generator (data, labels, label dropout,
t and noise) and keeps its own contiguous block of batch / N rows. Each process's loss is the mean over
its rows and DDP averages the gradients, so every step takes exactly the gradient of the global batch's
mean loss: the trained model equals the one-process model up to float summation order. In a plain
process (WORLD_SIZE unset or 1) nothing here does anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Group:
    """This process's place among the training processes (rank 0 of 1 when alone)."""

    rank: int = 0
    world_size: int = 1
    owned: bool = False  # True when start() created the process group, so stop() ends it

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "")
    if text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name}={text!r} must be an integer (torchrun sets it)") from None


def env_world() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) as torchrun sets them; (0, 0, 1) in a plain process."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} and WORLD_SIZE={world} are inconsistent (need 0 <= RANK < WORLD_SIZE)")
    return rank, local, world


def is_main_process() -> bool:
    """True in a plain process and in rank 0 of several: the one that reports and saves."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return env_world()[0] == 0


def rows_of(batch_size: int, rank: int, world_size: int) -> slice:
    """The contiguous block of the global batch that process `rank` of `world_size` trains on."""
    if batch_size % world_size:
        lower = batch_size - batch_size % world_size
        raise ValueError(f"batch size {batch_size} must be divisible by the number of processes {world_size} "
                         f"(each one takes batch / {world_size} rows); use e.g. {lower or world_size} "
                         f"or {lower + world_size}")
    n = batch_size // world_size
    return slice(rank * n, (rank + 1) * n)


def start(device: torch.device) -> tuple[Group, torch.device]:
    """Join torchrun's process group when this is one of several processes; returns (group, device).

    On CUDA each process uses the GPU cuda:LOCAL_RANK and the NCCL backend; on the CPU, gloo. A process
    group the caller already set up is used as it is (and left running by stop()).
    """
    rank, local, world = env_world()
    if dist.is_available() and dist.is_initialized():
        rank, world, owned = dist.get_rank(), dist.get_world_size(), False
    elif world == 1:
        return Group(), device
    else:
        if not dist.is_available():
            raise ValueError("this PyTorch build has no torch.distributed; run one process instead of torchrun")
        owned = True
    if world > 1 and device.type == "mps":
        raise ValueError("training with several processes is not supported on Apple MPS; use --device cpu")
    if world > 1 and device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={local} but there are only {torch.cuda.device_count()} CUDA devices; "
                             f"start at most that many processes per machine (--nproc_per_node)")
        device = torch.device("cuda", local)  # one GPU per process, whatever cuda:N was asked for
        torch.cuda.set_device(device)
    if owned:
        if device.type == "cuda":
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
    return Group(rank, world, owned), device


def stop(group: Group) -> None:
    """End the process group if start() created it."""
    if group.owned and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """In place: the sum (or max) of `tensor` over all processes."""
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return tensor


def broadcast_(params) -> None:
    """In place: every process gets rank 0's values of these tensors."""
    for p in params:
        dist.broadcast(p.data, 0)


def average_gradients_(params, world_size: int) -> None:
    """In place: each .grad becomes its mean over the processes, in one all-reduce (what DDP does during
    backward). Parameters without a gradient (the same ones in every process) are left without one."""
    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in with_grad])
    dist.all_reduce(flat)
    flat /= world_size
    for p, g in zip(with_grad, flat.split([p.numel() for p in with_grad])):
        p.grad.copy_(g.view_as(p.grad))
