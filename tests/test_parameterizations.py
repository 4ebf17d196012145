"""Parameterizations: exact conversions, their inverses, eps_scale and the loss weightings."""

from __future__ import annotations

import itertools

import pytest
import torch

from conftest import gen
from diffusion.parameterizations import (PARAMETERIZATIONS, WEIGHTINGS, NoiseLevel, append_dims,
                                         check_parameterization, convert, eps_scale, flow_velocity, from_x0_eps,
                                         get_weighting, noise_level, to_x0_eps, weight_eps, weight_flow,
                                         weight_min_snr, weight_sigmoid, weight_v, weight_x0)
from diffusion.schedules import make_schedule

pytestmark = pytest.mark.usefixtures("one_thread")

F64 = torch.float64
SCHEDULES = ["cosine", "linear", "sigmoid:start=0,end=3,tau=0.5", "edm", "ve", "flow"]
TIMES = [0.02, 0.3, 0.7, 0.98]  # fractions of each schedule's t_range
SHAPES = [(16, 2), (3, 1, 28, 28)]


def problem(spec, shape, frac, seed, return_t=False):
    """(schedule, lvl, x0, eps, x) at t = t_lo + frac (t_hi - t_lo), frac a float or "per_sample" (a [B]
    tensor of random fractions in [0.02, 0.98])."""
    sched = make_schedule(spec)
    g = gen("param", spec, shape, seed)
    x0 = torch.randn(shape, generator=g, dtype=F64)
    eps = torch.randn(shape, generator=g, dtype=F64)
    if frac == "per_sample":
        frac = torch.rand(shape[0], generator=g, dtype=F64) * 0.96 + 0.02
    t_lo, t_hi = sched.t_range
    t = t_lo + frac * (t_hi - t_lo)
    lvl = noise_level(sched, t)
    lv = lvl.to(x0)
    x = lv.alpha * x0 + lv.sigma * eps
    return (sched, lvl, x0, eps, x, t) if return_t else (sched, lvl, x0, eps, x)


CASES = [(spec, shape, t) for spec in SCHEDULES for shape in SHAPES for t in TIMES + ["per_sample"]]
CASE_IDS = [f"{spec.split(':')[0]}-{'img' if len(shape) == 4 else '2d'}-t{t}" for spec, shape, t in CASES]


def close(a, b, scale=1.0):
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9 * scale)


@pytest.mark.parametrize("spec, shape, t", CASES, ids=CASE_IDS)
def test_targets_are_the_documented_formulas(spec, shape, t):
    sched, lvl, x0, eps, x, t = problem(spec, shape, t, 0, return_t=True)
    lv = lvl.to(x0)
    a, s = lv.alpha, lv.sigma
    close(from_x0_eps("eps", x0, eps, lvl), eps)
    close(from_x0_eps("x0", x0, eps, lvl), x0)
    close(from_x0_eps("v", x0, eps, lvl), a * eps - s * x0)
    close(from_x0_eps("score", x0, eps, lvl), -(x - a * x0) / s**2, scale=float(1 / s.min()))
    close(from_x0_eps("energy", x0, eps, lvl), from_x0_eps("score", x0, eps, lvl))
    # flow: d/dt (alpha(t) x0 + sigma(t) eps) at fixed (x0, eps), by central differences of the schedule
    tt = torch.as_tensor(t, dtype=F64)
    h = 1e-6
    ap, sp = sched.alpha_sigma(tt + h)
    am, sm = sched.alpha_sigma(tt - h)
    u = ((append_dims(ap, x0.ndim) - append_dims(am, x0.ndim)) * x0
         + (append_dims(sp, x0.ndim) - append_dims(sm, x0.ndim)) * eps) / (2 * h)
    out = from_x0_eps("flow", x0, eps, lvl)
    torch.testing.assert_close(out, u, rtol=1e-5, atol=1e-6 * (1 + u.abs().max().item()))
    assert torch.equal(flow_velocity(x0, eps, lvl), out)  # the one formula of the probability-flow velocity


def test_flow_velocity_in_sigma_time_is_k_diffusions_to_d():
    """With alpha = 1, dx/dsigma = (dx/dt) / sigma' = (x - x0_hat) / sigma: k-diffusion's to_d."""
    sched, lvl, x0, eps, x = problem("edm", (16, 2), 0.3, 1)
    lv = lvl.to(x)
    close(flow_velocity(x0, eps, lvl) / lv.d_sigma, (x - x0) / lv.sigma)


@pytest.mark.parametrize("spec, shape, t", CASES, ids=CASE_IDS)
def test_to_x0_eps_inverts_from_x0_eps(spec, shape, t):
    _, lvl, x0, eps, x = problem(spec, shape, t, 1)
    for kind in PARAMETERIZATIONS:
        out = from_x0_eps(kind, x0, eps, lvl)
        x0_hat, eps_hat = to_x0_eps(kind, out, x, lvl)
        close(x0_hat, x0, scale=10.0)
        close(eps_hat, eps, scale=10.0)


@pytest.mark.parametrize("spec, shape, t", CASES, ids=CASE_IDS)
def test_every_conversion_round_trips(spec, shape, t):
    """convert(convert(out, a, b), b, a) == out, and a -> b gives b's own target, for every pair."""
    _, lvl, x0, eps, x = problem(spec, shape, t, 2)
    # an imperfect prediction: a different (x0_hat, eps_hat) pair consistent with the same x
    g = gen("pred", spec, shape)
    eps_hat = eps + 0.3 * torch.randn(shape, generator=g, dtype=F64)
    lv = lvl.to(x)
    x0_hat = (x - lv.sigma * eps_hat) / lv.alpha
    for a, b in itertools.product(PARAMETERIZATIONS, repeat=2):
        out_a = from_x0_eps(a, x0_hat, eps_hat, lvl)
        out_b = convert(out_a, a, b, x, lvl)
        scale = 1 + out_a.abs().max().item()
        torch.testing.assert_close(out_b, from_x0_eps(b, x0_hat, eps_hat, lvl), rtol=1e-8,
                                   atol=1e-9 * (1 + out_b.abs().max().item()), msg=f"{a} -> {b}")
        torch.testing.assert_close(convert(out_b, b, a, x, lvl), out_a, rtol=1e-8, atol=1e-9 * scale,
                                   msg=f"{a} -> {b} -> {a}")


def test_per_sample_levels_match_scalar_levels():
    """A [B] tensor of t gives row by row what the scalar t gives."""
    sched = make_schedule("cosine")
    g = gen("rows")
    t = torch.tensor([0.1, 0.5, 0.9], dtype=F64)
    for shape in [(3, 2), (3, 1, 28, 28)]:
        x = torch.randn(shape, generator=g, dtype=F64)
        out = torch.randn(shape, generator=g, dtype=F64)
        for kind in PARAMETERIZATIONS:
            x0_all, eps_all = to_x0_eps(kind, out, x, noise_level(sched, t))
            for i in range(3):
                x0_i, eps_i = to_x0_eps(kind, out[i:i + 1], x[i:i + 1], noise_level(sched, t[i].item()))
                close(x0_all[i:i + 1], x0_i)
                close(eps_all[i:i + 1], eps_i)


def test_float32_inputs_stay_float32():
    sched = make_schedule("cosine")
    x = torch.randn(4, 1, 28, 28)
    lvl = noise_level(sched, 0.4)
    for kind in PARAMETERIZATIONS:
        x0, eps = to_x0_eps(kind, x, x, lvl)
        assert x0.dtype == torch.float32 and eps.dtype == torch.float32 and x0.shape == x.shape
        assert from_x0_eps(kind, x0, eps, lvl).dtype == torch.float32


# --- eps_scale and the loss weightings -------------------------------------------------------------

@pytest.mark.parametrize("spec", SCHEDULES)
@pytest.mark.parametrize("t", TIMES + ["per_sample"])
def test_eps_scale_is_d_out_d_eps_hat(spec, t):
    sched, lvl, x0, eps, x = problem(spec, (8, 2), t, 3)
    lv = lvl.to(x)
    direction = torch.randn(x.shape, generator=gen("dir", spec, t), dtype=F64)
    h = 1e-6

    def out_at(kind, e):
        return from_x0_eps(kind, (x - lv.sigma * e) / lv.alpha, e, lvl)

    for kind in PARAMETERIZATIONS:
        fd = (out_at(kind, eps + h * direction) - out_at(kind, eps - h * direction)) / (2 * h)
        c = append_dims(eps_scale(kind, lvl).to(F64).expand(x.shape[0]), x.ndim)
        torch.testing.assert_close(fd, c * direction, rtol=1e-5, atol=1e-6 * (1 + c.abs().max().item()),
                                   msg=kind)


@pytest.mark.parametrize("spec", ["cosine", "linear", "sigmoid", "sigmoid:start=0,end=3,tau=0.5"])
def test_weight_x0_and_weight_v_on_a_vp_schedule(spec):
    sched, lvl, x0, eps, x = problem(spec, (64, 2), "per_sample", 4)
    lv = lvl.to(x)
    eps_hat = eps + torch.randn(x.shape, generator=gen("err", spec), dtype=F64)
    x0_hat = (x - lv.sigma * eps_hat) / lv.alpha
    lam = lvl.logsnr
    err_eps = ((eps_hat - eps) ** 2).sum(-1)
    close(weight_eps(lam) * err_eps, err_eps)
    close(weight_x0(lam) * err_eps, ((x0_hat - x0) ** 2).sum(-1))
    v = from_x0_eps("v", x0, eps, lvl)
    v_hat = from_x0_eps("v", x0_hat, eps_hat, lvl)
    close(weight_v(lam) * err_eps, ((v_hat - v) ** 2).sum(-1), scale=100.0)
    # min-SNR: the x0 error weighted by min(SNR, gamma)
    for gamma in (1.0, 5.0):
        close(weight_min_snr(lam, gamma) * err_eps, torch.clamp(torch.exp(lam), max=gamma) *
              ((x0_hat - x0) ** 2).sum(-1), scale=100.0)


def test_weight_flow_on_the_flow_schedule():
    sched, lvl, x0, eps, x = problem("flow", (64, 2), "per_sample", 5)
    lv = lvl.to(x)
    eps_hat = eps + torch.randn(x.shape, generator=gen("err", "flow"), dtype=F64)
    x0_hat = (x - lv.sigma * eps_hat) / lv.alpha
    err_eps = ((eps_hat - eps) ** 2).sum(-1)
    u, u_hat = eps - x0, eps_hat - x0_hat  # rectified flow's velocity
    close(from_x0_eps("flow", x0, eps, lvl), u)
    close(weight_flow(lvl.logsnr) * err_eps, ((u_hat - u) ** 2).sum(-1), scale=100.0)


@pytest.mark.parametrize("spec", ["cosine", "linear", "sigmoid"])
def test_weightings_are_squared_eps_scales(spec):
    sched = make_schedule(spec)
    lvl = noise_level(sched, torch.linspace(*sched.t_range, 101, dtype=F64))
    lam = lvl.logsnr
    close(weight_eps(lam), eps_scale("eps", lvl) ** 2)
    close(weight_x0(lam), eps_scale("x0", lvl) ** 2, scale=1e5)
    close(weight_v(lam), eps_scale("v", lvl) ** 2, scale=1e5)
    flow = noise_level(make_schedule("flow"), torch.linspace(*make_schedule("flow").t_range, 101, dtype=F64))
    close(weight_flow(flow.logsnr), eps_scale("flow", flow) ** 2, scale=1e5)


def test_weighting_formulas():
    lam = torch.linspace(-10, 10, 41, dtype=F64)
    close(weight_sigmoid(lam), 1 / (1 + torch.exp(lam)))
    close(weight_sigmoid(lam, bias=2.0), 1 / (1 + torch.exp(lam - 2)))
    close(weight_min_snr(lam, 5.0), torch.minimum(torch.exp(lam), torch.tensor(5.0, dtype=F64)) * torch.exp(-lam))
    for name, fn in WEIGHTINGS.items():
        assert get_weighting(name) is fn
        w = fn(lam)
        assert w.shape == lam.shape and torch.isfinite(w).all() and (w > 0).all()


# --- validation and helpers ------------------------------------------------------------------------

def test_unknown_names_raise():
    lvl = noise_level(make_schedule("cosine"), 0.5)
    x = torch.zeros(2, 2)
    for f in (lambda: check_parameterization("noise"), lambda: to_x0_eps("noise", x, x, lvl),
              lambda: from_x0_eps("noise", x, x, lvl), lambda: convert(x, "eps", "noise", x, lvl),
              lambda: convert(x, "noise", "eps", x, lvl), lambda: eps_scale("noise", lvl)):
        with pytest.raises(ValueError) as e:
            f()
        assert "'noise'" in str(e.value)
        for kind in PARAMETERIZATIONS:
            assert kind in str(e.value)
    with pytest.raises(ValueError) as e:
        get_weighting("snr")
    assert "'snr'" in str(e.value)
    for name in WEIGHTINGS:
        assert name in str(e.value)
    assert check_parameterization("v") == "v"


def test_append_dims():
    v = torch.arange(3.0)
    out = append_dims(v, 4)
    assert out.shape == (3, 1, 1, 1)
    assert torch.equal(out.flatten(), v)
    assert (out * torch.ones(3, 1, 28, 28))[2].eq(2).all()
    assert append_dims(torch.tensor(2.0), 2).shape == (1, 1)
    assert append_dims(v, 1).shape == (3,)
    assert append_dims(0.5, 3).shape == (1, 1, 1)
    with pytest.raises(ValueError, match="rank 2 to rank 1"):
        append_dims(torch.zeros(2, 2), 1)


def test_noise_level_and_to():
    sched = make_schedule("linear")
    t = torch.tensor([0.2, 0.6], dtype=F64)
    lvl = noise_level(sched, t)
    a, s = sched.alpha_sigma(t)
    da, ds = sched.derivatives(t)
    for u, w in zip((lvl.alpha, lvl.sigma, lvl.d_alpha, lvl.d_sigma), (a, s, da, ds)):
        assert torch.equal(u, w)
    assert torch.equal(lvl.logsnr, sched.logsnr(t))  # the schedule's own log-SNR, not one from alpha and sigma
    lv = lvl.to(torch.zeros(2, 1, 28, 28))
    for u in (lv.alpha, lv.sigma, lv.d_alpha, lv.d_sigma, lv.logsnr):
        assert u.shape == (2, 1, 1, 1) and u.dtype == torch.float32
    assert isinstance(lv, NoiseLevel)
