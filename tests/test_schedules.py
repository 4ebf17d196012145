"""Noise schedules: closed forms, identities, inverses, derivatives, clamping, validation, specs."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import SCHEDULE_SPECS, VP_NAMES, spec_id
from diffusion.schedules import (LOGSNR_MAX, LOGSNR_MIN, SCHEDULES, CosineSchedule, KarrasSchedule,
                                 LinearSchedule, SigmoidSchedule, VESchedule, make_schedule)

pytestmark = pytest.mark.usefixtures("one_thread")

F64 = torch.float64


def interior(schedule, n=2001):
    """n points strictly inside the schedule's t_range."""
    t_lo, t_hi = schedule.t_range
    return torch.linspace(t_lo, t_hi, n + 2, dtype=F64)[1:-1]


# --- closed forms, computed independently with the math module ---------------------------------

def reference_alpha_sigma(name, p, t):
    """alpha(t), sigma(t) straight from the formulas in the papers (scalar t, math module only)."""
    if name == "linear":
        b0, b1 = p.get("beta_min", 0.1), p.get("beta_max", 20.0)
        a = math.exp(-0.25 * t * t * (b1 - b0) - 0.5 * t * b0)
        return a, math.sqrt(1 - a * a)
    if name == "cosine":
        s = p.get("s", 0.008)
        f = lambda u: math.cos((u + s) / (1 + s) * math.pi / 2)  # noqa: E731
        a = f(t) / f(0)
        return a, math.sqrt(1 - a * a)
    if name == "sigmoid":
        st, en, tau = p.get("start", -3.0), p.get("end", 3.0), p.get("tau", 1.0)
        sg = lambda u: 1 / (1 + math.exp(-u))  # noqa: E731
        a2 = (sg(en / tau) - sg((st + t * (en - st)) / tau)) / (sg(en / tau) - sg(st / tau))
        return math.sqrt(a2), math.sqrt(1 - a2)
    if name == "edm":
        lo, hi, rho = p.get("sigma_min", 0.002), p.get("sigma_max", 80.0), p.get("rho", 7.0)
        return 1.0, (lo ** (1 / rho) + t * (hi ** (1 / rho) - lo ** (1 / rho))) ** rho
    if name == "ve":
        lo, hi = p.get("sigma_min", 0.01), p.get("sigma_max", 50.0)
        return 1.0, lo * (hi / lo) ** t
    if name == "flow":
        return 1 - t, t
    raise AssertionError(name)


@pytest.mark.parametrize("spec", SCHEDULE_SPECS, ids=spec_id)
def test_matches_closed_form(spec):
    name, params = spec
    sched = make_schedule(name, **params)
    for t in interior(sched, 37).tolist():
        a_ref, s_ref = reference_alpha_sigma(name, params, t)
        a, s = sched.alpha_sigma(t)
        assert a.item() == pytest.approx(a_ref, rel=1e-9, abs=1e-12), t
        assert s.item() == pytest.approx(s_ref, rel=1e-9, abs=1e-12), t
        lam = sched.logsnr(t).item()
        assert lam == pytest.approx(2 * math.log(a_ref / s_ref), rel=1e-9, abs=1e-9), t


def test_ddpm_linear_betas():
    """beta_min=0.1, beta_max=20 is DDPM's 1e-4..0.02 over 1000 steps: alpha_bar agrees at every step."""
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=F64)
    alpha_bar = torch.cumprod(1 - betas, 0)
    sched = LinearSchedule()
    steps = torch.tensor([10, 100, 300, 600, 999])
    a, _ = sched.alpha_sigma((steps + 1).double() / 1000)
    # continuous vs discrete differ by O(beta^2) per step: a few percent in log alpha_bar at most
    torch.testing.assert_close(torch.log(a**2), torch.log(alpha_bar[steps]), rtol=0.02, atol=1e-3)


# --- identities --------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", [s for s in SCHEDULE_SPECS if s[0] in VP_NAMES], ids=spec_id)
def test_variance_preserving(spec):
    sched = make_schedule(spec[0], **spec[1])
    t_lo, t_hi = sched.t_range
    t = torch.linspace(t_lo, t_hi, 5001, dtype=F64)
    a, s = sched.alpha_sigma(t)
    assert a.dtype == F64 and s.dtype == F64
    torch.testing.assert_close(a**2 + s**2, torch.ones_like(t), rtol=0, atol=1e-12)


def test_logsnr_strictly_decreasing(any_schedule):
    lam = any_schedule.logsnr(interior(any_schedule, 20001))
    assert (lam.diff() < 0).all()


def test_logsnr_is_log_alpha2_over_sigma2(any_schedule):
    t = interior(any_schedule, 501)
    a, s = any_schedule.alpha_sigma(t)
    torch.testing.assert_close(any_schedule.logsnr(t), torch.log(a**2 / s**2), rtol=1e-10, atol=1e-10)


def test_t_of_logsnr_inverts_logsnr(any_schedule):
    t = interior(any_schedule, 2001)
    torch.testing.assert_close(any_schedule.t_of_logsnr(any_schedule.logsnr(t)), t, rtol=1e-6, atol=0)


def test_logsnr_inverts_t_of_logsnr(any_schedule):
    lam_hi, lam_lo = any_schedule.logsnr(any_schedule.t_range[0]).item(), any_schedule.logsnr(
        any_schedule.t_range[1]).item()
    lam = torch.linspace(lam_lo, lam_hi, 1003, dtype=F64)[1:-1]
    torch.testing.assert_close(any_schedule.logsnr(any_schedule.t_of_logsnr(lam)), lam, rtol=1e-6, atol=1e-8)


def test_derivatives_match_finite_differences(any_schedule):
    h = 1e-6
    t = interior(any_schedule, 199)
    a_p, s_p = any_schedule.alpha_sigma(t + h)
    a_m, s_m = any_schedule.alpha_sigma(t - h)
    da, ds = any_schedule.derivatives(t)
    fd_a, fd_s = (a_p - a_m) / (2 * h), (s_p - s_m) / (2 * h)
    scale_a, scale_s = fd_a.abs().max().item() + 1, fd_s.abs().max().item() + 1
    torch.testing.assert_close(da, fd_a, rtol=1e-5, atol=1e-7 * scale_a)
    torch.testing.assert_close(ds, fd_s, rtol=1e-5, atol=1e-7 * scale_s)


def test_derivatives_match_autograd(any_schedule):
    t = interior(any_schedule, 97).requires_grad_(True)
    a, s = any_schedule._alpha_sigma(t)  # unclamped raw formulas: the interior needs no clamp
    ga = torch.autograd.grad(a.sum(), t, retain_graph=True)[0] if a.requires_grad else torch.zeros_like(t)
    gs, = torch.autograd.grad(s.sum(), t)
    da, ds = any_schedule.derivatives(t.detach())
    torch.testing.assert_close(da, ga, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(ds, gs, rtol=1e-9, atol=1e-12)


# --- the ends: clamping keeps everything finite ----------------------------------------------------

def test_t_range_is_tight(any_schedule):
    """t_range is exactly where lambda leaves [LOGSNR_MIN, LOGSNR_MAX] (or the ends of [0, 1])."""
    t_lo, t_hi = any_schedule.t_range
    assert 0 <= t_lo < t_hi <= 1
    lam_lo_end, lam_hi_end = any_schedule.logsnr(t_lo).item(), any_schedule.logsnr(t_hi).item()
    if t_lo > 0:
        assert lam_lo_end == pytest.approx(LOGSNR_MAX, abs=1e-6)
    if t_hi < 1:
        assert lam_hi_end == pytest.approx(LOGSNR_MIN, abs=1e-6)


@pytest.mark.parametrize("t", [0, 0.0, 1, 1.0, torch.tensor(0.0, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64)])
def test_finite_at_the_ends(any_schedule, t):
    outs = [*any_schedule.alpha_sigma(t), *any_schedule.derivatives(t), any_schedule.logsnr(t)]
    for v in outs:
        assert torch.isfinite(v).all()
    a, s = outs[0], outs[1]
    assert (a > 0).all() and (s > 0).all()
    lam = outs[-1]
    assert (lam >= LOGSNR_MIN - 1e-9).all() and (lam <= LOGSNR_MAX + 1e-9).all()


def test_ends_are_clamped_to_t_range(any_schedule):
    t_lo, t_hi = any_schedule.t_range
    for t_end, t_clamp in ((0.0, t_lo), (1.0, t_hi)):
        for f in (any_schedule.alpha_sigma, any_schedule.derivatives):
            for v, w in zip(f(t_end), f(t_clamp)):
                assert v.item() == w.item()
        assert any_schedule.logsnr(t_end).item() == any_schedule.logsnr(t_clamp).item()


def test_t_of_logsnr_clamps_to_t_range(any_schedule):
    t = any_schedule.t_of_logsnr(torch.tensor([-1e3, -50.0, 50.0, 1e3], dtype=F64))
    t_lo, t_hi = any_schedule.t_range
    assert torch.isfinite(t).all()
    assert t.tolist() == [t_hi, t_hi, t_lo, t_lo]


def test_accepts_floats_ints_and_tensors(any_schedule):
    a1, s1 = any_schedule.alpha_sigma(0.5)
    assert a1.dtype == F64 and a1.ndim == 0
    t = torch.tensor([[0.25, 0.5], [0.75, 1.0]], dtype=F64)
    a2, s2 = any_schedule.alpha_sigma(t)
    assert a2.shape == t.shape and s2.shape == t.shape
    assert a2[0, 1].item() == a1.item() and s2[0, 1].item() == s1.item()
    a3, _ = any_schedule.alpha_sigma(torch.tensor([0.5], dtype=torch.float32))
    assert a3.dtype == torch.float32
    assert any_schedule.alpha_sigma(1)[0].item() == any_schedule.alpha_sigma(1.0)[0].item()


# --- validation ------------------------------------------------------------------------------------

def test_unknown_schedule_lists_allowed_names():
    with pytest.raises(ValueError) as e:
        make_schedule("quadratic")
    msg = str(e.value)
    assert "quadratic" in msg
    for name in SCHEDULES:
        assert name in msg
    with pytest.raises(ValueError, match="unknown schedule"):
        make_schedule("quadratic:a=1")


@pytest.mark.parametrize("name, params, words", [
    ("cosine", {"s": -1}, ["s=", "0 <= s <= 1"]),
    ("cosine", {"s": 1.5}, ["s=", "0 <= s <= 1"]),
    ("cosine", {"s": float("nan")}, ["s=nan"]),
    ("cosine", {"s": float("inf")}, ["s=inf"]),
    ("linear", {"beta_min": 1.0, "beta_max": 0.5}, ["beta_max", "beta_min"]),
    ("linear", {"beta_min": 0.0}, ["beta_min"]),
    ("linear", {"beta_max": float("nan")}, ["beta_max=nan"]),
    ("edm", {"sigma_min": 5.0, "sigma_max": 5.0}, ["sigma_max", "sigma_min"]),
    ("edm", {"sigma_min": 10.0, "sigma_max": 1.0}, ["sigma_max", "sigma_min"]),
    ("edm", {"rho": 0.0}, ["rho"]),
    ("ve", {"sigma_min": 3.0, "sigma_max": 2.0}, ["sigma_max", "sigma_min"]),
    ("sigmoid", {"tau": 0.0}, ["tau"]),
    ("sigmoid", {"start": 2.0, "end": 1.0}, ["end", "start"]),
    ("sigmoid", {"start": float("nan")}, ["start=nan"]),
])
def test_invalid_params_raise(name, params, words):
    with pytest.raises(ValueError) as e:
        make_schedule(name, **params)
    for w in words:
        assert w in str(e.value)
    with pytest.raises(ValueError):  # the dataclasses validate themselves too
        SCHEDULES[name](**{k: float(v) for k, v in params.items()})


@pytest.mark.parametrize("spec, words", [
    ("cosine:s=abc", ["s=", "abc", "not a number"]),
    ("cosine:s", ["'s'", "name=value"]),
    ("cosine:beta=1", ["'beta'", "allowed: s"]),
    ("linear:s=1", ["'s'", "beta_min", "beta_max"]),
    ("flow:s=0.1", ["'s'", "allowed: none"]),
    ("edm:rho=1e9", ["rho"]),
])
def test_bad_spec_strings_raise(spec, words):
    with pytest.raises(ValueError) as e:
        make_schedule(spec)
    for w in words:
        assert w in str(e.value)


def test_unknown_and_non_numeric_keyword_params_raise():
    with pytest.raises(ValueError, match="has no parameter 'beta'.*allowed: s"):
        make_schedule("cosine", beta=1.0)
    with pytest.raises(ValueError, match="not a number"):
        make_schedule("cosine", s="abc")
    with pytest.raises(ValueError, match="not a number"):
        make_schedule("cosine", s=None)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), -1e-12, 1 + 1e-12, float("inf")])
def test_t_outside_unit_interval_raises(any_schedule, bad):
    for f in (any_schedule.alpha_sigma, any_schedule.derivatives, any_schedule.logsnr, any_schedule.clamp):
        with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
            f(bad)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        any_schedule.alpha_sigma(torch.tensor([0.2, bad, 0.5], dtype=F64))


# --- construction and specs ------------------------------------------------------------------------

@pytest.mark.parametrize("spec", SCHEDULE_SPECS, ids=spec_id)
def test_spec_round_trips(spec):
    s = make_schedule(spec[0], **spec[1])
    assert make_schedule(s.spec()) == s
    assert s.spec().startswith(spec[0] + ":")
    assert make_schedule(spec[0], **spec[1]) == SCHEDULES[spec[0]](**spec[1])
    assert s.params == {**SCHEDULES[spec[0]]().params, **spec[1]}


def test_spec_format():
    assert CosineSchedule().spec() == "cosine:s=0.008"
    assert make_schedule("flow").spec() == "flow:"
    assert make_schedule("flow:") == make_schedule("flow")
    assert make_schedule("sigmoid: start = 0 , end=3,tau=0.5,") == SigmoidSchedule(0.0, 3.0, 0.5)
    assert make_schedule("edm:rho=5", sigma_max=20) == KarrasSchedule(rho=5.0, sigma_max=20.0)
    assert make_schedule("ve", sigma_max="20") == VESchedule(sigma_max=20.0)


def test_spec_round_trips_full_precision():
    s = CosineSchedule(s=0.0123456789)
    assert make_schedule(s.spec()) == s


# --- where EDM's grid ends ------------------------------------------------------------------------------

def test_edm_sigma_min_below_the_logsnr_clamp_changes_no_grid():
    """The log-SNR clamp ends every grid at sigma = e^-5 (KarrasSchedule's docstring and the sidebar say
    so): any sigma_min at or below it gives the same noise levels on every grid, to float64 round-off of
    the t <-> sigma maps; above it, sigma_min is the end."""
    from diffusion.grids import GRIDS, time_grid

    def sigmas(sched, grid):
        return sched.alpha_sigma(time_grid(sched, 10, grid))[1]

    end = math.exp(-LOGSNR_MAX / 2)
    assert f"{end:.4f}" == "0.0067" and f"{-2 * math.log(0.002):.1f}" == "12.4"  # the docstring's numbers
    assert KarrasSchedule().t_range[0] == pytest.approx(0.053, abs=5e-4)
    clamped = KarrasSchedule(sigma_min=end)
    for grid in GRIDS:
        for sigma_min in (1e-4, 0.002, 0.005):
            ours = sigmas(KarrasSchedule(sigma_min=sigma_min), grid)
            torch.testing.assert_close(ours, sigmas(clamped, grid), rtol=1e-12, atol=0)
            assert ours[-1].item() == pytest.approx(end, rel=1e-12)
        assert sigmas(KarrasSchedule(sigma_min=0.01), grid)[-1].item() == pytest.approx(0.01, rel=1e-12)
