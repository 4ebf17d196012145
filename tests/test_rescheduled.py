"""One network, any schedule: a model queried through `reschedule` matches the exact denoiser of the
new schedule, because both are functions of the log-SNR alone."""

import pathlib

import pytest
import torch

from diffusion.checkpoints import load_checkpoint
from diffusion.models import oracle_model, reschedule
from diffusion.schedules import SCHEDULES, make_schedule
from toy_data import get_dataset

MOONS = pathlib.Path(__file__).resolve().parents[1] / "checkpoints" / "moons.safetensors"


@pytest.mark.parametrize("name", [n for n in SCHEDULES if n != "cosine"])
def test_the_exact_denoiser_moved_to_another_schedule_is_that_schedules_exact_denoiser(name):
    dist = get_dataset("moons")
    target = make_schedule(name)
    moved = reschedule(oracle_model(dist, make_schedule("cosine")), target)
    x = 2 * torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for t in (0.05, 0.3, 0.6, 0.95):
        alpha, sigma = target.alpha_sigma(t)
        x_t = alpha * x + sigma * torch.randn_like(x)
        assert torch.allclose(moved(x_t, t), dist.denoise(x_t, alpha, sigma), atol=1e-6)  # t(lambda) is inverted numerically for some schedules
        assert torch.allclose(moved.score(x_t, t), dist.score(x_t, alpha, sigma), rtol=1e-5, atol=1e-5)


def test_reschedule_is_the_identity_on_the_same_schedule():
    model = oracle_model(get_dataset("moons"), make_schedule("cosine"))
    assert reschedule(model, make_schedule("cosine")) is model


def test_a_shipped_model_keeps_its_quality_under_a_variance_exploding_schedule():
    model, _ = load_checkpoint(MOONS)
    dist = get_dataset("moons")
    ve = make_schedule("ve")
    moved = reschedule(model, ve)
    g = torch.Generator().manual_seed(1)
    x0, _ = dist.sample(512, generator=g)
    for t in (0.3, 0.6):
        alpha, sigma = ve.alpha_sigma(t)
        x_t = (alpha * x0 + sigma * torch.randn(x0.shape, generator=g)).float()
        exact = dist.denoise(x_t.double(), alpha, sigma)
        err = (moved(x_t, t).double() - exact).norm(dim=-1).mean() / exact.norm(dim=-1).mean()
        assert err < 0.1, (t, err)
