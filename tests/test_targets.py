"""Three targets, one prediction (ui/targets.py): the conversions, the loss weightings and the lambda density,
and the models' errors per noise level."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffusion.checkpoints import load_checkpoint
from diffusion.models import oracle_model, reschedule
from diffusion.parameterizations import WEIGHTINGS
from diffusion.schedules import make_schedule
from diffusion.train import SHIPPED_2D
from toy_data import get_dataset
from ui import targets as three

pytestmark = pytest.mark.usefixtures("one_thread")

SCHEDULES = ["cosine", "linear", "sigmoid", "edm", "ve", "flow"]
ULP = torch.finfo(torch.float64).eps


@pytest.mark.parametrize("spec", SCHEDULES)
@pytest.mark.parametrize("t", [0.05, 0.3, 0.7, 0.95])
def test_any_target_with_x_t_gives_back_the_draw(spec, t):
    """From x_t and each one target, to_x0_eps recovers the drawn (x0, eps), and alpha x0 + sigma eps rebuilds x_t.

    Tolerance: each conversion is two or three float64 multiply-adds of numbers up to M, divided by alpha or
    sigma (or alpha^2 + sigma^2), so it is off by a few ulps of M / min(alpha, sigma, 1); 16 ulps is ample."""
    schedule, dist = make_schedule(spec), get_dataset("moons")
    for seed in range(3):
        x0, eps = three.draw_pair(dist, seed)
        lvl = three.noise_at(schedule, t)
        tg = three.targets(x0, eps, lvl)
        a, s = float(lvl.alpha), float(lvl.sigma)
        big = max(1.0, *(float(tg[k].abs().max()) for k in ("x_t", "v", "x0")), s * float(eps.abs().max()))
        tol = 16 * ULP * big / min(a, s, 1.0)
        for kind, (x0_back, eps_back) in three.recovered(tg, lvl).items():
            assert torch.allclose(x0_back, x0, rtol=0, atol=tol), (spec, t, kind)
            assert torch.allclose(eps_back, eps, rtol=0, atol=tol), (spec, t, kind)
            assert torch.allclose(a * x0_back + s * eps_back, tg["x_t"], rtol=0, atol=tol * max(1.0, a + s))
        assert torch.equal(tg["v"], a * eps - s * x0) and torch.equal(tg["eps"], eps) and torch.equal(tg["x0"], x0)
        if three.is_vp(lvl):  # the short forms the page writes for alpha^2 + sigma^2 = 1
            assert torch.allclose(a * tg["x_t"] - s * tg["v"], x0, rtol=0, atol=tol)
            assert torch.allclose(s * tg["x_t"] + a * tg["v"], eps, rtol=0, atol=tol)
        else:
            assert abs(a * a + s * s - 1) > three.VP_TOL


def test_variance_preserving_is_told_apart():
    assert three.is_vp(three.noise_at(make_schedule("cosine"), 0.4))
    assert three.is_vp(three.noise_at(make_schedule("linear"), 0.4))
    assert not three.is_vp(three.noise_at(make_schedule("flow"), 0.4))  # alpha^2 + sigma^2 = 0.52
    assert not three.is_vp(three.noise_at(make_schedule("edm"), 0.4))


def test_the_weight_curves_are_the_cores_weightings():
    lam = np.linspace(-10, 10, 41)
    curves = three.weight_curves(lam)
    assert set(curves) == set(WEIGHTINGS)
    for k, f in WEIGHTINGS.items():
        assert np.array_equal(curves[k], f(torch.as_tensor(lam)).numpy()), k
    fig = three.weights_figure(make_schedule("cosine"), 1.0, "v")
    drawn = {tr.name: tr for tr in fig.data}
    for k, f in WEIGHTINGS.items():
        tr = drawn[three.WEIGHT_LABELS[k]]
        assert np.array_equal(np.asarray(tr.y), f(torch.as_tensor(np.asarray(tr.x))).numpy()), k
    assert drawn[three.WEIGHT_LABELS["v"]].line.width > drawn["ε-MSE"].line.width  # the page's chosen weighting stands out
    assert fig.layout.yaxis.type == "log"


@pytest.mark.parametrize("spec", SCHEDULES)
def test_the_lambda_density_is_that_of_uniform_t(spec):
    """The density is dt/dlambda: it matches a central difference of t_of_logsnr (step 1e-4: relative error
    ~1e-8 from the h^2 term, plus float64 cancellation ~1e-16 / 1e-4), and it holds the t inside t_range,
    t_hi - t_lo, of the uniform t (trapezoid rule on 20,001 points: error far below 1e-5)."""
    schedule = make_schedule(spec)
    lo, hi = three.lambda_range(schedule)
    lam = np.linspace(lo, hi, 20_001)
    p = three.lambda_density(schedule, lam)
    inner = torch.as_tensor(lam[100:-100:500])
    h = 1e-4
    diff = (schedule.t_of_logsnr(inner - h) - schedule.t_of_logsnr(inner + h)).numpy() / (2 * h)
    assert np.allclose(p[100:-100:500], diff, rtol=1e-6), spec
    t_lo, t_hi = schedule.t_range
    assert np.trapezoid(p, lam) == pytest.approx(t_hi - t_lo, abs=1e-5), spec


@pytest.fixture(scope="module")
def moons_errors():
    dist, schedule = get_dataset("moons"), make_schedule("cosine")
    model, _ = load_checkpoint("checkpoints/moons.safetensors")
    lams = three.error_lambdas(schedule)
    return dist, schedule, lams, three.model_errors(model, dist, schedule, lams), three.loss_floor(dist, schedule, lams)


def test_the_ideal_denoiser_scores_zero():
    dist, schedule = get_dataset("spiral"), make_schedule("edm")
    lams = three.error_lambdas(schedule, n=6)
    errors = three.model_errors(oracle_model(dist, schedule), dist, schedule, lams, n=64, dtype=torch.float64)
    assert all(np.array_equal(errors[k], np.zeros(6)) for k in three.TARGETS)  # the same computation, bit for bit


def test_the_three_errors_are_one_error(moons_errors):
    """x0's error is eps's times sigma^2/alpha^2 = e^-lambda; v's (variance-preserving) is eps's times 1 + e^-lambda,
    the sum of the two. Computed from float64 differences of order 1e-4 and up: relative round-off ~1e-11."""
    _, _, lams, errors, _ = moons_errors
    assert np.allclose(errors["x0"], np.exp(-lams) * errors["eps"], rtol=1e-9, atol=0)
    assert np.allclose(errors["v"], errors["eps"] + errors["x0"], rtol=1e-9, atol=0)


def test_the_error_grid_spans_the_schedule():
    lams = three.error_lambdas(make_schedule("cosine"))
    assert len(lams) == three.ERROR_LAMBDAS and lams[0] == 8.0 and lams[-1] == -8.0 and np.all(np.diff(lams) < 0)
    lams = three.error_lambdas(make_schedule("ve"))  # sigma from 0.01 to 50: lambda from 9.2 down to -7.8
    assert lams[0] == 8.0 and lams[-1] == pytest.approx(-2 * math.log(50.0))


@pytest.mark.parametrize("name", ["moons", "spiral"])
def test_the_shipped_model_is_near_exact_where_each_form_is_easy(name):
    """x0's error at the cleanest level and eps's at the noisiest are below 3% of that form's loss floor (the ideal
    denoiser's own loss against the drawn targets). 3% is 1/sqrt(1024): the relative standard error of one training
    batch's mean loss (the shipped batch of 1,024, squared errors whose spread is about their mean), so an excess
    below it is one the training loss cannot even see. Under a schedule other than the model's own as well."""
    assert SHIPPED_2D["batch"] == 1024
    dist = get_dataset(name)
    model, _ = load_checkpoint(f"checkpoints/{name}.safetensors")
    for spec in ("cosine", "flow"):
        schedule = make_schedule(spec)
        lams = three.error_lambdas(schedule)
        errors = three.model_errors(reschedule(model, schedule), dist, schedule, lams)
        floor = three.loss_floor(dist, schedule, lams)
        assert errors["x0"][0] < floor["x0"][0] / math.sqrt(1024), (name, spec, errors["x0"][0], floor["x0"][0])
        assert errors["eps"][-1] < floor["eps"][-1] / math.sqrt(1024), (name, spec, errors["eps"][-1], floor["eps"][-1])


def test_the_floors_reach_the_data_variance_where_the_target_is_unknowable(moons_errors):
    """With almost no signal (lambda = -8) x_t says almost nothing about x0, so the x0 floor is the data's variance per
    coordinate (1: the sets are standardised, minus the tiny share the signal still explains); with almost no noise
    (lambda = 8) the same holds for eps, whose variance is 1. Checked to 4 standard errors of the 1,024 squares."""
    dist, schedule, lams, _, floor = moons_errors
    x0, eps, x, t = three.noisy_batch(dist, schedule, lams)
    exact = three.predictions(oracle_model(dist, schedule), x, t, None, torch.float64)
    for k, i, truth in (("x0", -1, x0), ("eps", 0, eps)):
        sq = ((exact[k] - truth) ** 2).reshape(len(lams), -1)[i]
        assert float(sq.mean()) == pytest.approx(floor[k][i], rel=1e-12)
        se = float(sq.std()) / math.sqrt(sq.numel())
        assert abs(floor[k][i] - 1.0) < 4 * se + 0.01, (k, floor[k][i], se)


def test_the_figures_draw_what_was_computed(moons_errors):
    dist, schedule, lams, errors, floor = moons_errors
    fig = three.errors_figure(lams, floor, {"shipped model": (errors, "#D55E00", "solid")}, 1.0)
    shipped = [tr for tr in fig.data if tr.name == "shipped model"]
    assert [np.asarray(tr.y).tolist() for tr in shipped] == [errors[k].tolist() for k in three.TARGETS]
    assert all(ax.type == "log" for ax in (fig.layout.yaxis, fig.layout.yaxis2, fig.layout.yaxis3))
    x0, eps = three.draw_pair(dist, 7)
    lvl = three.noise_at(schedule, 0.4)
    tg = three.targets(x0, eps, lvl)
    plane = three.targets_figure(tg, three.sample_path(schedule, x0, eps), True)
    xt = next(tr for tr in plane.data if tr.name == "x_t")
    assert (xt.x[0], xt.y[0]) == tuple(tg["x_t"][0].tolist())
    path = three.sample_path(schedule, x0, eps)  # t = 0 and 1 are clamped to where sigma, then alpha, is e^-5
    end = 3 * math.exp(-5)  # times |eps| or |x0|, below 3 here
    assert np.allclose(path[0], x0[0].numpy(), atol=end) and np.allclose(path[-1], eps[0].numpy(), atol=end)
