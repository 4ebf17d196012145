"""Model wrappers: anything that predicts, turned into `model(x, t, label) -> x0_hat` for the samplers."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .parameterizations import NoiseLevel, append_dims, check_parameterization, noise_level, to_x0_eps
from .schedules import Schedule


class OracleModel:
    """The exact denoiser of a ground-truth distribution, with the same interface as DiffusionModel.

    `dist` is anything with `denoise(x, alpha, sigma, label)` (a toy_data GaussianMixture); it is an
    x0-parameterization whose prediction is exact, and differentiable in x (for the likelihood).
    """

    parameterization = "x0"

    def __init__(self, dist, schedule: Schedule):
        self.dist, self.schedule = dist, schedule
        self.num_classes = getattr(dist, "num_classes", 0)

    def predict(self, x: Tensor, t, label=None, create_graph: bool = False):
        t = torch.as_tensor(t).detach().to("cpu", torch.float64)
        lvl = noise_level(self.schedule, t)
        return self.dist.denoise(x, lvl.alpha, lvl.sigma, label), lvl

    def __call__(self, x: Tensor, t, label=None) -> Tensor:
        return self.predict(x, t, label)[0]


def oracle_model(dist, schedule: Schedule) -> OracleModel:
    """model(x, t, label) -> the exact E[x0 | x_t] of `dist`."""
    return OracleModel(dist, schedule)


def label_index(label, batch: int, num_classes: int, device) -> Tensor | None:
    """None / int / [B] tensor (-1 = none) -> [B] embedding indices, with num_classes meaning "no label"."""
    if num_classes == 0:
        return None
    if label is None:
        return torch.full((batch,), num_classes, dtype=torch.long, device=device)
    lab = torch.as_tensor(label, device=device).long()
    if lab.ndim == 0:
        lab = lab.expand(batch)
    if lab.numel() and (lab.min() < -1 or lab.max() >= num_classes):
        raise ValueError(f"label must be in 0..{num_classes - 1} (or -1 for none); got {lab.unique().tolist()}")
    return torch.where(lab < 0, num_classes, lab)


# --- preconditioning (Karras et al. 2022, Sec. 5 and Table 1) -------------------------------------------------
# The net F of a DiffusionModel sees c_in x and c_noise; its raw output r = F(c_in x; c_noise) is scaled into the
# model's parameterization (`output_scale`), whose conversion to x0 (parameterizations.to_x0_eps) supplies the
# skip, so that x0_hat = c_skip x + c_out r for every parameterization but the energy.

def c_in(lvl: NoiseLevel) -> Tensor:
    """Input scaling: the net sees c_in x = x / sqrt(alpha^2 + sigma^2), of unit variance for unit-variance data."""
    return 1 / torch.sqrt(lvl.alpha**2 + lvl.sigma**2)


def c_noise(lvl: NoiseLevel) -> Tensor:
    """Noise conditioning: the log-SNR lambda (diffusion.nets.FourierEmbedding scales it by 1 / LOGSNR_MAX)."""
    return lvl.logsnr


def output_scale(kind: str, lvl: NoiseLevel) -> Tensor:
    """Raw output r -> prediction of `kind`, keeping r of order one: 1 (eps, x0, v), 1 / sigma (score),
    sqrt(alpha'^2 + sigma'^2) (flow), sqrt(alpha^2 + sigma^2) / sigma (the energy E, with score = -grad_x E)."""
    if check_parameterization(kind) == "score":
        return 1 / lvl.sigma
    if kind == "flow":
        return torch.sqrt(lvl.d_alpha**2 + lvl.d_sigma**2)
    if kind == "energy":
        return torch.sqrt(lvl.alpha**2 + lvl.sigma**2) / lvl.sigma
    return torch.ones_like(torch.as_tensor(lvl.alpha))


def _affine_in_r(kind: str) -> None:
    if check_parameterization(kind) == "energy":
        raise ValueError("an energy head's x0_hat comes from -grad_x E, not from c_skip x + c_out r")


def c_out(kind: str, lvl: NoiseLevel) -> Tensor:
    """Output scaling: the weight of the net's raw output r in x0_hat = c_skip x + c_out r (not for an energy head)."""
    _affine_in_r(kind)
    zero, one = torch.zeros_like(torch.as_tensor(lvl.alpha)), torch.ones_like(torch.as_tensor(lvl.alpha))
    return output_scale(kind, lvl) * to_x0_eps(kind, one, zero, lvl)[0]


def c_skip(kind: str, lvl: NoiseLevel) -> Tensor:
    """Skip scaling: the weight of the input x in x0_hat = c_skip x + c_out r (not for an energy head)."""
    _affine_in_r(kind)
    zero, one = torch.zeros_like(torch.as_tensor(lvl.alpha)), torch.ones_like(torch.as_tensor(lvl.alpha))
    return to_x0_eps(kind, zero, one, lvl)[0]


class DiffusionModel(nn.Module):
    """A net + its parameterization + its schedule: the one object the samplers, losses and pages use.

    The net F is preconditioned as in Karras et al. 2022 (`c_in`, `c_noise`, `output_scale`): it sees
    x / sqrt(alpha^2 + sigma^2) and lambda; its raw output r becomes the prediction
        eps, x0, v: r        score: r / sigma        flow: r sqrt(alpha'^2 + sigma'^2)
        energy: E = r sqrt(alpha^2 + sigma^2) / sigma, a scalar, with score = -grad_x E
    so that r is of order one for every kind and every schedule; x0_hat = c_skip x + c_out r (`c_skip`, `c_out`).
    """

    def __init__(self, net: nn.Module, parameterization: str, schedule: Schedule, num_classes: int = 0):
        super().__init__()
        self.net = net
        self.parameterization = check_parameterization(parameterization)
        self.schedule = schedule
        self.num_classes = num_classes

    def _inputs(self, x: Tensor, t, label):
        t = torch.as_tensor(t).detach().to("cpu", torch.float64)  # schedules run in float64 on the CPU
        lvl = noise_level(self.schedule, t.expand(x.shape[0]) if t.ndim == 0 else t).to(x)
        return lvl, c_in(lvl), c_noise(lvl).reshape(x.shape[0]), label_index(label, x.shape[0], self.num_classes,
                                                                             x.device)

    def energy(self, x: Tensor, t, label=None) -> Tensor:
        """E(x, t) [B] of an energy head (defined up to a constant in x for each t)."""
        if self.parameterization != "energy":
            raise ValueError("only an energy head has a direct energy; use likelihood.energy_via_ode")
        lvl, cin, cnoise, lab = self._inputs(x, t, label)
        return self.net(cin * x, cnoise, lab) * output_scale("energy", lvl).reshape(x.shape[0])

    def predict(self, x: Tensor, t, label=None, create_graph: bool = False) -> tuple[Tensor, NoiseLevel]:
        """The prediction in this model's parameterization (the score for an energy head), and the level."""
        lvl, cin, cnoise, lab = self._inputs(x, t, label)
        kind = self.parameterization
        if kind == "energy":
            with torch.enable_grad():
                xg = x if x.requires_grad else x.detach().requires_grad_(True)
                e = self.net(cin * xg, cnoise, lab) * output_scale(kind, lvl).reshape(x.shape[0])
                (grad,) = torch.autograd.grad(e.sum(), xg, create_graph=create_graph)
            return -grad, lvl
        return self.net(cin * x, cnoise, lab) * output_scale(kind, lvl), lvl

    def forward(self, x: Tensor, t, label=None) -> Tensor:
        """x0_hat: the contract the samplers use."""
        out, lvl = self.predict(x, t, label)
        return to_x0_eps(self.parameterization, out, x, lvl)[0].detach()

    def score(self, x: Tensor, t, label=None) -> Tensor:
        """grad_x log p_t(x) as this model sees it."""
        out, lvl = self.predict(x, t, label)
        eps = to_x0_eps(self.parameterization, out, x, lvl)[1]
        return (-eps / lvl.sigma).detach()


MODEL_KINDS = ("points", "images")


def build_model(kind: str, parameterization: str, schedule: Schedule, num_classes: int = 0, *, width: int = 128,
                depth: int = 4, dim: int = 2, base: int | None = None, seed: int | None = None) -> DiffusionModel:
    """An untrained DiffusionModel.

    kind "points": the residual MLP (diffusion.nets.MLP2D, `width` x `depth`) on [B, dim] points; kind
    "images": the UNet (diffusion.unet.UNet, `base` channels at full resolution, its own default when None)
    on [B, 1, 28, 28] digits. An energy parameterization gets a scalar output. `num_classes` > 0 makes it
    class-conditional (plus the "no label" row guidance uses). With `seed`, torch's global generator is
    seeded with it first, so the initial weights follow the seed.
    """
    check_parameterization(parameterization)
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; allowed: {', '.join(MODEL_KINDS)}")
    if seed is not None:
        torch.manual_seed(seed)
    energy = parameterization == "energy"
    if kind == "images":
        from .unet import UNet, UNetConfig

        net = UNet(UNetConfig(num_classes=num_classes, scalar_out=energy,
                              **({} if base is None else {"base": base})))
    else:
        from .nets import MLP2D, MLPConfig

        net = MLP2D(MLPConfig(dim=dim, width=width, depth=depth, num_classes=num_classes, scalar_out=energy))
    return DiffusionModel(net, parameterization, schedule, num_classes)


class Rescheduled:
    """A model trained under one schedule, used under another: matched through the log-SNR lambda.

    At equal lambda both schedules see the same signal-to-noise ratio, so under the new schedule
    x = alpha x0 + sigma eps is the model's x' = alpha' x0 + sigma' eps scaled by c = alpha / alpha'
    (= sigma / sigma'). The wrapper queries the model at t' = t_model(lambda) on x / c and returns its
    x0_hat, which is the same under every schedule: an x0-parameterization under `schedule`.
    """

    parameterization = "x0"

    def __init__(self, model, schedule: Schedule):
        self.model, self.schedule = model, schedule
        self.num_classes = model.num_classes

    def _matched(self, x: Tensor, t):
        t = torch.as_tensor(t).detach().to("cpu", torch.float64)
        lvl = noise_level(self.schedule, t)
        t_model = self.model.schedule.t_of_logsnr(self.schedule.logsnr(t))
        ref = noise_level(self.model.schedule, t_model)
        c = append_dims(lvl.alpha / ref.alpha if lvl.alpha.min() > 0 else lvl.sigma / ref.sigma, x.ndim)
        return t_model, c.to(x), lvl

    def predict(self, x: Tensor, t, label=None, create_graph: bool = False):
        t_model, c, lvl = self._matched(x, t)
        out, ref = self.model.predict(x / c, t_model, label, create_graph=create_graph)
        return to_x0_eps(self.model.parameterization, out, x / c, ref)[0], lvl

    def __call__(self, x: Tensor, t, label=None) -> Tensor:
        return self.predict(x, t, label)[0].detach()

    def energy(self, x: Tensor, t, label=None) -> Tensor:
        """E(x, t) [B] of a rescheduled energy head, up to a constant in x: the model's energy at the matched
        time on x / c (the density changes by the constant factor c^-d)."""
        t_model, c, _ = self._matched(x, t)
        return self.model.energy(x / c, t_model, label)

    def score(self, x: Tensor, t, label=None) -> Tensor:
        x0, lvl = self.predict(x, t, label)
        alpha, sigma = append_dims(lvl.alpha, x.ndim).to(x), append_dims(lvl.sigma, x.ndim).to(x)
        return ((alpha * x0 - x) / sigma**2).detach()


def network_parameterization(model) -> str | None:
    """What the network itself outputs (eps, x0, v, score, flow, energy), under its own schedule or another."""
    return getattr(getattr(model, "model", model), "parameterization", None)


def is_energy_head(model) -> bool:
    """True for a network that outputs an energy E (score = -grad E), under its own schedule or another."""
    return network_parameterization(model) == "energy"


def reschedule(model, schedule: Schedule):
    """`model` under `schedule` (itself when the schedules are equal)."""
    return model if model.schedule == schedule else Rescheduled(model, schedule)
