"""Networks, training, likelihood: behaviour checked against exact answers."""

import math

import pytest
import torch

from diffusion.likelihood import energy_via_ode, nll, ode_log_likelihood
from diffusion.metrics import EnergyReference
from diffusion.checkpoints import model_config, model_from_config
from diffusion.models import (DiffusionModel, build_model, c_in, c_noise, c_out, c_skip, oracle_model,
                              output_scale)
from diffusion.nets import MLP2D, MLPConfig
from diffusion.parameterizations import PARAMETERIZATIONS, noise_level
from diffusion.samplers import guided, prior_sample, sample
from diffusion.schedules import make_schedule
from diffusion.training import TrainConfig, pick_device, train
from toy_data import GaussianMixture, get_dataset


def make(kind="v", schedule="cosine", num_classes=2, width=64, depth=2, seed=0):
    torch.manual_seed(seed)
    net = MLP2D(MLPConfig(width=width, depth=depth, num_classes=num_classes, scalar_out=kind == "energy"))
    return DiffusionModel(net, kind, make_schedule(schedule), num_classes)


def moons_data(n, g):
    return get_dataset("moons").sample(n, generator=g)


def ratio_of(model, n=2000, seed=0):
    d = get_dataset("moons")
    g = torch.Generator().manual_seed(seed)
    x = sample(guided(model, None), prior_sample(model.schedule, (n, 2), generator=g), model.schedule, "heun", 20)
    return EnergyReference(d, n, seed=seed, refs=1).ratio(x)


def test_short_training_lowers_loss_and_improves_samples():
    model = make()
    before = ratio_of(model.eval())
    res = train(model, moons_data, TrainConfig(steps=400, batch_size=256, lr=3e-3, device="cpu"))
    first, last = sum(res.losses[:20]) / 20, sum(res.losses[-20:]) / 20
    assert last < 0.9 * first
    after = ratio_of(res.model)
    assert after < 0.3 * before, (before, after)
    assert res.steps_done == 400 and not res.stopped


def test_same_seed_same_result():
    a = train(make(seed=1), moons_data, TrainConfig(steps=30, batch_size=64, seed=7, device="cpu"))
    b = train(make(seed=1), moons_data, TrainConfig(steps=30, batch_size=64, seed=7, device="cpu"))
    assert a.losses == b.losses
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)


def test_callback_reports_every_step_with_a_snapshot():
    seen = []

    def cb(info):
        seen.append(info["step"])
        if info["step"] == 5:
            snap = info["snapshot"]()
            x = torch.randn(8, 2)
            assert snap(x, 0.5).shape == (8, 2)

    train(make(), moons_data, TrainConfig(steps=10, batch_size=32, device="cpu"), callback=cb)
    assert seen == list(range(1, 11))


def test_should_stop_keeps_the_model():
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 3

    res = train(make(), moons_data, TrainConfig(steps=100, batch_size=32, device="cpu"), should_stop=stop)
    assert res.steps_done == 3 and "stopped by request" in res.stopped
    assert all(torch.isfinite(p).all() for p in res.model.parameters())


def test_nan_loss_stops_and_keeps_last_good_weights():
    model = make()
    calls = {"n": 0}

    def data(n, g):
        calls["n"] += 1
        x, y = moons_data(n, g)
        if calls["n"] == 6:
            x = x * float("nan")
        return x, y

    res = train(model, data, TrainConfig(steps=20, batch_size=32, device="cpu"))
    assert res.steps_done == 5 and "step 6" in res.stopped and "nan" in res.stopped
    assert all(torch.isfinite(p).all() for p in res.model.parameters())
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("kind", PARAMETERIZATIONS)
def test_every_head_trains_and_samples_finitely(kind):
    model = make(kind, schedule="flow" if kind == "flow" else "cosine")
    res = train(model, moons_data, TrainConfig(steps=20, batch_size=64, device="cpu"))
    assert not res.stopped
    x = sample(guided(res.model, 1, 1.0), prior_sample(model.schedule, (64, 2)), model.schedule, "dpmpp_2m", 5)
    assert x.shape == (64, 2) and torch.isfinite(x).all()


def test_energy_head_negative_gradient_is_its_score():
    model = make("energy").eval()
    x = torch.randn(16, 2, dtype=torch.float32, requires_grad=True)
    e = model.energy(x, 0.3, 1)
    (grad,) = torch.autograd.grad(e.sum(), x)
    score = model.score(x.detach(), 0.3, 1)
    torch.testing.assert_close(score, -grad, rtol=1e-5, atol=1e-6)
    # and the finite difference of E agrees with the score along a random direction
    d = torch.randn(16, 2)
    h = 1e-3
    with torch.no_grad():
        fd = (model.energy(x + h * d, 0.3, 1) - model.energy(x - h * d, 0.3, 1)) / (2 * h)
    torch.testing.assert_close(fd, -(score * d).sum(-1), rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize("schedule", ["cosine", "linear", "sigmoid"])
def test_likelihood_of_standard_gaussian_under_oracle_is_analytic(schedule):
    gauss = GaussianMixture(torch.zeros(1, 2), 1.0, 1.0, [0], ["all"])
    sched = make_schedule(schedule)
    model = oracle_model(gauss, sched)
    x = torch.randn(200, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    # what sample() returns is x_{t_min} / alpha(t_min) ~ N(0, v I) with v = (alpha^2 + sigma^2) / alpha^2
    alpha, sigma = sched.alpha_sigma(0.0)
    v = ((alpha**2 + sigma**2) / alpha**2).item()
    exact = -math.log(2 * math.pi * v) - (x**2).sum(-1) / (2 * v)
    torch.testing.assert_close(ode_log_likelihood(model, x, steps=16), exact, atol=1e-6, rtol=0)


def test_likelihood_of_a_non_gaussian_under_oracle_matches_exact_density():
    d = get_dataset("8gaussians")
    model = oracle_model(d, make_schedule("cosine"))
    x = d.sample(300, generator=torch.Generator().manual_seed(1))[0].double()
    lp = ode_log_likelihood(model, x, steps=96)
    assert (lp - d.log_prob(x)).abs().mean() < 0.02
    out = nll(model, x, steps=96)
    assert out["bits_per_dim"] == pytest.approx(out["nll_nats"] / (2 * math.log(2)))


def test_hutchinson_divergence_is_unbiased():
    d = get_dataset("moons")
    model = oracle_model(d, make_schedule("cosine"))
    x = d.sample(400, generator=torch.Generator().manual_seed(2))[0].double()
    exact = ode_log_likelihood(model, x, steps=24, exact=True)
    est = ode_log_likelihood(model, x, steps=24, exact=False, generator=torch.Generator().manual_seed(3))
    assert (est - exact).mean().abs() < 0.1 and not torch.equal(est, exact)


def test_energy_via_ode_at_t_matches_exact_noisy_density():
    d = get_dataset("moons")
    schedule = make_schedule("cosine")
    model = oracle_model(d, schedule)
    x = torch.randn(100, 2, dtype=torch.float64)
    alpha, sigma = schedule.alpha_sigma(0.4)
    e = energy_via_ode(model, x, 0.4, steps=48)
    torch.testing.assert_close(e, -d.log_prob(x, alpha, sigma), atol=0.02, rtol=0)


def test_build_model_points_and_images():
    dist = get_dataset("spiral")
    m = build_model("points", "energy", make_schedule("cosine"), dist.num_classes, seed=3)
    assert isinstance(m.net, MLP2D) and m.num_classes == dist.num_classes and m.net.cfg.scalar_out
    assert m.energy(torch.randn(5, 2), torch.full((5,), 0.5)).shape == (5,)
    again = build_model("points", "energy", make_schedule("cosine"), dist.num_classes, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), again.state_dict().values()))
    v = build_model("points", "v", make_schedule("cosine"), width=16, depth=1, dim=3)
    assert not v.net.cfg.scalar_out and v.num_classes == 0 and v(torch.randn(4, 3), 0.5).shape == (4, 3)
    assert model_from_config(model_config(v)).net.config() == v.net.config()
    img = build_model("images", "eps", make_schedule("cosine"), 10, base=8)
    assert img.net.config()["arch"] == "unet" and img.net.config()["base"] == 8
    assert img(torch.randn(2, 1, 28, 28), 0.5, torch.tensor([3, 4])).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="model kind"):
        build_model("mnist", "v", make_schedule("cosine"))
    with pytest.raises(ValueError, match="parameterization"):
        build_model("points", "noise", make_schedule("cosine"))


@pytest.mark.parametrize("kind", [k for k in PARAMETERIZATIONS if k != "energy"])
@pytest.mark.parametrize("schedule", ["cosine", "ve", "flow"])
def test_x0_hat_is_c_skip_x_plus_c_out_times_the_preconditioned_net(kind, schedule):
    """Karras et al. 2022's form: x0_hat = c_skip x + c_out F(c_in x; c_noise), F the raw network."""
    torch.manual_seed(0)
    net = MLP2D(MLPConfig(width=16, depth=1)).double()
    model = DiffusionModel(net, kind, make_schedule(schedule))
    x = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    t = torch.linspace(0.1, 0.9, 6, dtype=torch.float64)
    lvl = noise_level(model.schedule, t).to(x)
    r = net(c_in(lvl) * x, c_noise(lvl).reshape(6), None)
    torch.testing.assert_close(model(x, t), c_skip(kind, lvl) * x + c_out(kind, lvl) * r)


def test_preconditioning_values():
    lvl = noise_level(make_schedule("ve"), torch.tensor([0.3, 0.7], dtype=torch.float64))
    s = lvl.sigma  # alpha = 1 on ve
    torch.testing.assert_close(c_in(lvl), 1 / torch.sqrt(1 + s**2))
    assert torch.equal(c_noise(lvl), lvl.logsnr)
    torch.testing.assert_close(c_skip("eps", lvl), torch.ones_like(s))  # Karras et al. Table 1, eps-prediction
    torch.testing.assert_close(c_out("eps", lvl), -s)
    assert torch.equal(c_skip("x0", lvl), torch.zeros_like(s)) and torch.equal(c_out("x0", lvl), torch.ones_like(s))
    vp = noise_level(make_schedule("cosine"), torch.tensor([0.3, 0.7], dtype=torch.float64))
    torch.testing.assert_close(c_skip("v", vp), vp.alpha)  # alpha^2 + sigma^2 = 1
    torch.testing.assert_close(c_out("v", vp), -vp.sigma)
    torch.testing.assert_close(output_scale("energy", vp), 1 / vp.sigma)
    with pytest.raises(ValueError, match="energy"):
        c_out("energy", vp)
    with pytest.raises(ValueError, match="energy"):
        c_skip("energy", vp)


def test_device_choice():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="device"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            pick_device("cuda")


def test_bad_train_settings_are_named():
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0).validate()
    with pytest.raises(ValueError, match="weighting"):
        TrainConfig(weighting="magic").validate()
