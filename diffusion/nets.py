"""Networks: a residual MLP for 2-D points.

A net sees the scaled input x / sqrt(alpha^2 + sigma^2), the log-SNR lambda and a label, and returns
a raw output; `diffusion.models.DiffusionModel` turns that raw output into the chosen
parameterization. Labels index an embedding with one extra "no label" row (index num_classes) used
for classifier-free-guidance dropout.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from .schedules import LOGSNR_MAX


class FourierEmbedding(nn.Module):
    """lambda -> [sin, cos] features at fixed log-spaced frequencies, then a 2-layer MLP."""

    def __init__(self, dim: int, n_freq: int = 16):
        super().__init__()
        self.register_buffer("freqs", torch.exp(torch.linspace(0, math.log(64), n_freq)) * math.pi / 2)
        self.mlp = nn.Sequential(nn.Linear(2 * n_freq, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, lam: Tensor) -> Tensor:  # [B] -> [B, dim]
        u = (lam / LOGSNR_MAX)[:, None] * self.freqs  # lambda scaled to [-1, 1]
        return self.mlp(torch.cat([torch.sin(u), torch.cos(u)], -1))


class ResBlock(nn.Module):
    """LayerNorm -> Linear -> SiLU -> Linear, with the conditioning added in the middle."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)
        self.cond = nn.Linear(width, width)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        return h + self.fc2(torch.nn.functional.silu(self.fc1(self.norm(h)) + self.cond(c)))


@dataclass
class MLPConfig:
    dim: int = 2  # data dimension
    width: int = 128  # hidden width: 128 fits every toy set; 64 underfits the spiral
    depth: int = 4  # residual blocks
    num_classes: int = 0  # 0: unconditional; otherwise labels 0..C-1 plus a "no label" row
    scalar_out: bool = False  # True for an energy head: one number per point
    fourier: int = 8  # sin/cos input features at frequencies 1..32 per coordinate: beats an MLP's bias to smooth fits


class MLP2D(nn.Module):
    """Residual MLP on [B, dim] points conditioned on log-SNR and an optional label."""

    def __init__(self, cfg: MLPConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        if cfg.fourier:
            self.register_buffer("in_freqs", torch.exp(torch.linspace(0, math.log(32), cfg.fourier)))
        self.inp = nn.Linear(cfg.dim * (1 + 2 * cfg.fourier), w)
        self.lam_emb = FourierEmbedding(w)
        self.label_emb = nn.Embedding(cfg.num_classes + 1, w) if cfg.num_classes else None
        self.blocks = nn.ModuleList(ResBlock(w) for _ in range(cfg.depth))
        self.out_norm = nn.LayerNorm(w)
        self.out = nn.Linear(w, 1 if cfg.scalar_out else cfg.dim)

    def config(self) -> dict:
        return {"arch": "mlp2d", **asdict(self.cfg)}

    def forward(self, x: Tensor, lam: Tensor, label: Tensor | None) -> Tensor:
        c = self.lam_emb(lam)
        if self.label_emb is not None:
            c = c + self.label_emb(label)
        if self.cfg.fourier:
            u = (x[:, :, None] * self.in_freqs).flatten(1)  # [B, dim * fourier]
            x = torch.cat([x, torch.sin(u), torch.cos(u)], -1)
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, c)
        out = self.out(torch.nn.functional.silu(self.out_norm(h)))
        return out[:, 0] if self.cfg.scalar_out else out
