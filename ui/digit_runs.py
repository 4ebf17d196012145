"""Page 10's sampling runs (no Streamlit here), as module-level functions of (model, schedule, ...) so that
ui.workers.offload can send them to a worker process: one sample's whole run (`film_trajectory`), a digit
noised and denoised back (`noise_and_back`, `survival_at`, `survival`), and many runs for the PCA view
(`digit_trajectories`, `many_trajectories`)."""

from __future__ import annotations

import torch

from diffusion.models import reschedule
from diffusion.samplers import guided, prior_sample, sample

from .survival import journey_from, survival_row, survival_sweep, survival_ts


def _denoiser(model, schedule, label, w):
    return guided(reschedule(model, schedule), label, w)


@torch.no_grad()
def film_trajectory(model, schedule, sampler: str, steps: int, digit, w: float, seed: int):
    """One sample's whole run from x_T (seeded by `seed`) under `schedule`: a Trajectory with x_t and x0_hat at
    every step. digit None: the unconditional model."""
    g = torch.Generator().manual_seed(int(seed))
    x = prior_sample(schedule, (1, 1, 28, 28), generator=g)
    return sample(_denoiser(model, schedule, digit, w), x, schedule, sampler, steps, generator=g,
                  return_trajectory=True)


def noise_and_back(model, schedule, x0, t: float, sampler: str, steps: int, label, w: float) -> dict:
    """journey_from for the model prompted with `label` (None: unconditional) and guidance w."""
    with torch.no_grad():
        return journey_from(_denoiser(model, schedule, label, w), x0, schedule, t, sampler, steps)


def survival_at(model, schedule, x0, t: float, sampler: str, steps: int, label, w: float) -> tuple:
    """survival_row of x0 at time t for the model prompted with `label` and guidance w."""
    with torch.no_grad():
        return survival_row(_denoiser(model, schedule, label, w), x0, schedule, t, sampler, steps)


def survival(model, schedule, x0, sampler: str, steps: int, label, w: float) -> dict:
    """survival_sweep of x0 at the log-SNR values SURVIVAL_LAMBDAS."""
    with torch.no_grad():
        return survival_sweep(_denoiser(model, schedule, label, w), x0, schedule, sampler, steps,
                              survival_ts(schedule))


@torch.no_grad()
def digit_trajectories(model, schedule, w: float, digit: int, per_digit: int, steps: int, seed: int = 0):
    """The part of many_trajectories that samples `digit`: the same starting noises, so the same samples."""
    g = torch.Generator().manual_seed(int(seed))
    x = prior_sample(schedule, (10 * per_digit, 1, 28, 28), generator=g)[digit * per_digit:(digit + 1) * per_digit]
    return sample(_denoiser(model, schedule, int(digit), w), x, schedule, "ddim", steps, generator=g,
                  return_trajectory=True)


@torch.no_grad()
def many_trajectories(model, schedule, w: float, per_digit: int, steps: int, seed: int = 0):
    """(Trajectory of per_digit samples of each digit 0..9 with DDIM, labels [10 per_digit])."""
    labels = torch.arange(10).repeat_interleave(per_digit)
    g = torch.Generator().manual_seed(int(seed))
    x = prior_sample(schedule, (len(labels), 1, 28, 28), generator=g)
    traj = sample(_denoiser(model, schedule, labels, w), x, schedule, "ddim", steps, generator=g,
                  return_trajectory=True)
    return traj, labels.numpy()
