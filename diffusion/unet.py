"""A small UNet for [B, C, H, W] images (MNIST: 1 x 28 x 28), with the same contract as MLP2D.

It sees the scaled input x / sqrt(alpha^2 + sigma^2), the log-SNR lambda and a label (index
num_classes = "no label", for classifier-free-guidance dropout), and returns a raw output that
`diffusion.models.DiffusionModel` turns into any parameterization: the same schedules, losses,
samplers and checkpoints as the 2-D models, no second copy of the math.

Shape: 28 -> 14 -> 7 with channels base * mults, one residual block per level on the way down and two
on the way up (Ho et al. 2020's layout, shrunk), self-attention at the lowest resolution only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .nets import FourierEmbedding


@dataclass
class UNetConfig:
    channels: int = 1  # image channels
    size: int = 28  # image height = width; must be divisible by 2 ** (len(mults) - 1)
    base: int = 32  # channels at full resolution (the shipped digit model uses 24: docs/training.md)
    mults: tuple = (1, 2, 2)  # channel multiplier per resolution (28, 14, 7 for MNIST)
    num_classes: int = 0  # 0: unconditional; otherwise labels 0..C-1 plus a "no label" row
    attention: bool = True  # one self-attention block at the lowest resolution (7 x 7 = 49 tokens)
    dropout: float = 0.0
    scalar_out: bool = False  # True for an energy head: E = 0.5 |x - f(x)|^2 summed, one number per image

    def __post_init__(self):
        self.mults = tuple(int(m) for m in self.mults)
        if self.size % 2 ** (len(self.mults) - 1):
            raise ValueError(f"image size {self.size} must be divisible by {2 ** (len(self.mults) - 1)} "
                             f"for {len(self.mults)} resolutions")


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch), ch)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, plus a per-channel scale and shift from the conditioning, twice."""

    def __init__(self, cin: int, cout: int, cdim: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.cond = nn.Linear(cdim, 2 * cout)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:  # x [B, cin, H, W], c [B, cdim]
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.cond(c)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Single-head self-attention over the H * W positions."""

    def __init__(self, ch: int):
        super().__init__()
        self.norm, self.qkv, self.out = _norm(ch), nn.Conv2d(ch, 3 * ch, 1), nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        b, ch, hgt, wid = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, ch, hgt * wid).transpose(-1, -2).unbind(1)  # [B, HW, ch]
        h = F.scaled_dot_product_attention(q, k, v)
        return x + self.out(h.transpose(-1, -2).reshape(b, ch, hgt, wid))


class UNet(nn.Module):
    """UNet on images conditioned on log-SNR and an optional label."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        chs = [cfg.base * m for m in cfg.mults]
        cdim = 4 * cfg.base
        self.lam_emb = FourierEmbedding(cdim)
        self.label_emb = nn.Embedding(cfg.num_classes + 1, cdim) if cfg.num_classes else None
        self.inp = nn.Conv2d(cfg.channels, chs[0], 3, padding=1)
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        skips, cin = [chs[0]], chs[0]
        for i, ch in enumerate(chs):
            self.down.append(ResBlock(cin, ch, cdim, cfg.dropout))
            skips.append(ch)
            cin = ch
            if i < len(chs) - 1:
                self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
        self.mid1 = ResBlock(cin, cin, cdim, cfg.dropout)
        self.attn = Attention(cin) if cfg.attention else nn.Identity()
        self.mid2 = ResBlock(cin, cin, cdim, cfg.dropout)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, ch in reversed(list(enumerate(chs))):
            self.up.append(nn.ModuleList([ResBlock(cin + skips.pop(), ch, cdim, cfg.dropout),
                                          ResBlock(ch + skips.pop(), ch, cdim, cfg.dropout)]))
            cin = ch
            if i > 0:
                self.upsample.append(nn.Conv2d(ch, ch, 3, padding=1))
        self.out_norm = _norm(cin)
        self.out = nn.Conv2d(cin, cfg.channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def config(self) -> dict:
        return {"arch": "unet", **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.cfg).items()}}

    def forward(self, x: Tensor, lam: Tensor, label: Tensor | None) -> Tensor:
        c = self.lam_emb(lam)  # [B, cdim]
        if self.label_emb is not None:
            c = c + self.label_emb(label)
        h = self.inp(x)
        hs = [h]
        for i, block in enumerate(self.down):
            h = block(h, c)
            hs.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
                hs.append(h)
        h = self.mid2(self.attn(self.mid1(h, c)), c)
        for i, (b1, b2) in enumerate(self.up):
            h = b1(torch.cat([h, hs.pop()], 1), c)
            h = b2(torch.cat([h, hs.pop()], 1), c)
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2, mode="nearest"))
        out = self.out(F.silu(self.out_norm(h)))
        if self.cfg.scalar_out:  # energy: half the squared distance between x and the net's output image
            return 0.5 * ((x - out) ** 2).flatten(1).sum(1)
        return out
