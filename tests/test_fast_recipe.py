"""The pieces of the fast 2-D training recipe: lambda drawn from a truncated normal, and the batch-posterior target."""

import math

import pytest
import torch

from diffusion import schedules, training
from diffusion.models import build_model
from diffusion.schedules import make_schedule
from diffusion.parameterizations import batch_posterior_x0
from diffusion.training import TrainConfig, diffusion_loss


def _lambdas(schedule, n=20000):
    """The log-SNRs diffusion_loss draws with t_sampling="logsnr_normal", read off the noise levels it uses."""
    seen = []
    model = build_model("points", "eps", schedule, 0, width=8, depth=1)
    real = model.predict

    def spy(x, t, label=None, create_graph=False):
        seen.append(schedule.logsnr(torch.as_tensor(t)))
        return real(x, t, label, create_graph=create_graph)

    model.predict = spy
    diffusion_loss(model, torch.zeros(n, 2), None, "eps", torch.Generator().manual_seed(0), "logsnr_normal")
    return seen[0].double()


def test_logsnr_normal_draws_the_truncated_normal():
    schedule = make_schedule("cosine")
    lam = _lambdas(schedule)
    mean, std = schedules.LOGSNR_NORMAL
    lam_hi, lam_lo = (float(schedule.logsnr(t)) for t in schedule.t_range)
    assert lam_lo - 1e-6 <= lam.min() and lam.max() <= lam_hi + 1e-6
    # the truncated normal's own mean and spread (the truncation is many std away on the cosine schedule)
    a, b = (lam_lo - mean) / std, (lam_hi - mean) / std
    pdf = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    expected = mean + std * (pdf(a) - pdf(b)) / (cdf(b) - cdf(a))
    # stratified draws: far below the i.i.d. standard error std / sqrt(n), which bounds it
    assert abs(lam.mean().item() - expected) < 3 * std / math.sqrt(len(lam))
    assert abs(lam.std().item() - std) < 0.02 * std


def test_batch_posterior_of_one_example_is_itself():
    x0 = torch.randn(1, 2)
    x = 0.5 * x0 + 0.8 * torch.randn(1, 2)
    assert torch.allclose(batch_posterior_x0(x, x0, torch.tensor([0.5]), torch.tensor([0.8])), x0)


def test_batch_posterior_matches_the_weights_by_hand():
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(6, 2, generator=g, dtype=torch.float64), torch.randn(6, 2, generator=g, dtype=torch.float64)
    alpha, sigma = torch.rand(6, generator=g, dtype=torch.float64), torch.rand(6, generator=g, dtype=torch.float64) + 0.2
    x = alpha[:, None] * x0 + sigma[:, None] * eps
    got = batch_posterior_x0(x, x0, alpha[:, None], sigma[:, None])
    for i in range(6):
        logw = torch.stack([-((x[i] - alpha[i] * x0[j]) ** 2).sum() / (2 * sigma[i] ** 2) for j in range(6)])
        assert torch.allclose(got[i], (torch.softmax(logw, 0)[:, None] * x0).sum(0), atol=1e-12)


def test_batch_posterior_keeps_to_the_label_and_to_tiny_noise():
    x0 = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0]])
    labels = torch.tensor([0, 1, -1])
    # huge noise: every example's posterior is the mean of the examples it may draw on
    far = batch_posterior_x0(torch.zeros(3, 2), x0, torch.full((3, 1), 1e-3), torch.ones(3, 1), labels)
    assert torch.allclose(far[0], x0[0]) and torch.allclose(far[1], x0[1])  # only itself carries label 0 / 1
    assert torch.allclose(far[2], x0.mean(0), atol=1e-4)  # no label: all three
    # tiny noise: the example's own x0
    x = x0 + 1e-3 * torch.randn(3, 2)
    near = batch_posterior_x0(x, x0, torch.ones(3, 1), torch.full((3, 1), 1e-3), None)
    assert torch.allclose(near, x0)


def test_batch_target_works_on_images_and_points():
    for kind, shape in (("points", (16, 2)), ("images", (4, 1, 28, 28))):
        model = build_model(kind, "v", make_schedule("cosine"), 10, width=16, depth=1, base=8)
        x0 = torch.randn(shape)
        loss = diffusion_loss(model, x0, torch.arange(shape[0]) % 10, "v", torch.Generator().manual_seed(0),
                              "logsnr_normal", batch_target=True)
        assert torch.isfinite(loss)
        loss.backward()


def test_bad_t_sampling_is_named():
    with pytest.raises(ValueError, match="t_sampling"):
        TrainConfig(t_sampling="normal").validate()


def test_the_train_page_and_the_cli_share_the_recipe():
    from diffusion.train import DEFAULTS_2D, build_parser
    from ui.training import DEFAULTS, make_config

    assert DEFAULTS == DEFAULTS_2D
    assert DEFAULTS_2D["t_sampling"] == "logsnr_normal" and DEFAULTS_2D["batch_target"] is True
    config = make_config(DEFAULTS["steps"], DEFAULTS["batch"], DEFAULTS["lr"], DEFAULTS["weighting"], "cpu")
    assert (config.t_sampling, config.batch_target, config.ema_decay) == ("logsnr_normal", True, DEFAULTS_2D["ema"])
    args = build_parser().parse_args(["--out", "x.safetensors", "--no-batch-target", "--t-sampling", "uniform_t"])
    assert (args.batch_target, args.t_sampling) == (False, "uniform_t")


@pytest.mark.slow
def test_the_recipe_learns_the_spiral_to_the_kl_target():
    """The hardest toy set for the likelihood, with the CLI's 2-D defaults and seed 0: KL gap <= 0.05 nats, the
    target benchmarks/train_2d_speed.py times (measured 0.034-0.040, standard error 0.006, on the evaluator's
    2,000 held-out points). The run is deterministic on a given CPU, so the margin covers another CPU's float
    round-off, not luck."""
    from diffusion.evaluate import held_out, kl_gaps
    from diffusion.train import DEFAULTS_2D
    from toy_data import get_dataset

    torch.set_num_threads(1)
    dist = get_dataset("spiral")
    torch.manual_seed(0)
    model = build_model("points", DEFAULTS_2D["parameterization"], make_schedule(DEFAULTS_2D["schedule"]),
                        dist.num_classes, width=DEFAULTS_2D["width"], depth=DEFAULTS_2D["depth"])
    config = TrainConfig(steps=DEFAULTS_2D["steps"], batch_size=DEFAULTS_2D["batch"], lr=DEFAULTS_2D["lr"],
                         weighting=DEFAULTS_2D["weighting"], ema_decay=DEFAULTS_2D["ema"], device="cpu",
                         t_sampling=DEFAULTS_2D["t_sampling"], batch_target=DEFAULTS_2D["batch_target"])
    result = training.train(model, lambda n, g: dist.sample(n, generator=g), config)
    assert kl_gaps(result.model, dist, held_out(dist, 2000, 0), 128).mean().item() <= 0.05
