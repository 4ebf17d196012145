"""ui.dsm: the denoising-score-matching targets at one x_t, drawn from the exact posterior, average to the score.

Tolerances: an average of n draws is compared with its own standard error, computed from the draws' spread.
For a 2-D mean the error's squared length has expectation trace(Cov) / n = SE^2; the chance that the error
exceeds 4 SE is below 6e-5 even when all the variance lies along one direction (a normal beyond 4 standard
deviations), so 4 SE is the bound unless stated otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusion.schedules import make_schedule
from toy_data import get_dataset
from ui import dsm
from ui.figures import patch
from apptest import decode

Z = 4.0  # standard errors; see the module docstring


def _level(t: float, schedule: str = "cosine") -> tuple[float, float]:
    a, s = make_schedule(schedule).alpha_sigma(t)
    return float(a), float(s)


def test_average_of_4096_targets_is_within_2_percent_of_the_exact_score():
    """The issue's target. At t = 0.5 (cosine) and x_t = (0, 2.5), above the moons, the targets' spread gives the
    average of 4,096 a relative standard error of about 0.38%, so 2% is more than 5 standard errors: the
    average must land inside it for any seed, and seed 0 is the one the page draws."""
    dist = get_dataset("moons")
    alpha, sigma = _level(0.5)
    data = dsm.fan(dist, alpha, sigma, (0.0, 2.5), n=4096, seed=0)
    targets = data["targets"]
    se = np.sqrt(np.trace(np.cov(targets.T)) / len(targets)) / data["norm"]
    assert 0.02 > 5 * se  # the point was chosen so that 2% is several standard errors
    exact = dist.score(torch.tensor([[0.0, 2.5]], dtype=torch.float64), alpha, sigma)[0].numpy()
    np.testing.assert_allclose(data["exact"], exact, rtol=1e-12)
    average = targets.mean(0)
    rel = np.linalg.norm(average - exact) / np.linalg.norm(exact)
    assert rel == pytest.approx(data["rel_error"][-1], rel=1e-9)
    assert rel < 0.02 and rel < Z * se


@pytest.mark.parametrize("name,t,xt,label", [("moons", 0.3, (1.5, 1.5), None), ("8gaussians", 0.7, (0.5, -1.0), None),
                                             ("moons", 0.5, (0.0, 0.5), 0), ("circles", 0.2, (1.2, 0.3), 1)])
def test_posterior_draws_have_the_exact_posterior_mean_and_spread(name, t, xt, label):
    """The draws' mean is the ideal denoiser E[x0 | x_t] and the targets' spread is target_spread, each within
    Z standard errors of the draws themselves (the spread's SE: that of the mean of the squared distances)."""
    dist = get_dataset(name)
    alpha, sigma = _level(t)
    n = 4096
    x0 = dsm.posterior_draws(dist, alpha, sigma, xt, label, n=n, seed=3)
    mean = dist.denoise(torch.tensor([xt], dtype=torch.float64), alpha, sigma, label)[0].numpy()
    se = x0.std(0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(x0.mean(0) - mean) < Z * se)
    if label is not None:  # only that label's components can have made x_t
        w = dist.posterior(torch.tensor([xt], dtype=torch.float64), alpha, sigma, label)[0][0]
        assert float(w[dist.labels != label].sum()) == 0.0
    targets = dsm.dsm_targets(x0, xt, alpha, sigma)
    sq = ((targets - targets.mean(0)) ** 2).sum(1) * n / (n - 1)
    spread2 = dsm.target_spread(dist, alpha, sigma, xt, label) ** 2
    assert abs(sq.mean() - spread2) < Z * sq.std(ddof=1) / np.sqrt(n)


def test_targets_are_minus_eps_over_sigma_and_their_mean_is_the_score():
    """(alpha x0 - x_t) / sigma^2 = -eps / sigma for x_t = alpha x0 + sigma eps (float64 round-off), and the
    exact posterior average of the targets is the mixture's score (Tweedie): E[x0 | x_t] in the target formula."""
    dist = get_dataset("moons")
    alpha, sigma = _level(0.4)
    g = torch.Generator().manual_seed(0)
    x0 = dist.sample(50, generator=g)[0].double().numpy()
    eps = torch.randn(50, 2, generator=g, dtype=torch.float64).numpy()
    xt = alpha * x0 + sigma * eps
    np.testing.assert_allclose(dsm.dsm_targets(x0, xt, alpha, sigma), -eps / sigma, rtol=1e-10, atol=1e-12)
    x = torch.tensor(xt[:5])
    tweedie = (alpha * dist.denoise(x, alpha, sigma) - x) / sigma**2
    np.testing.assert_allclose(tweedie.numpy(), dist.score(x, alpha, sigma).numpy(), rtol=1e-9, atol=1e-9)


def test_fan_is_one_draw_sliced_by_n():
    """The page's slider only slices: the first n targets of the 4,096 are the n targets drawn alone, row k - 1
    of `running` is the mean of the first k, and the curve reads `rel_error` at its counts."""
    dist = get_dataset("moons")
    alpha, sigma = _level(0.3)
    full = dsm.fan(dist, alpha, sigma, (1.5, 1.5))
    assert full["targets"].shape == (dsm.N_MAX, 2) and full["curve_n"][0] == 1 and full["curve_n"][-1] == dsm.N_MAX
    for k in (1, 16, 1000):
        np.testing.assert_allclose(full["running"][k - 1], full["targets"][:k].mean(0), rtol=1e-12)
    np.testing.assert_array_equal(full["curve_error"], full["rel_error"][full["curve_n"] - 1])
    again = dsm.fan(dist, alpha, sigma, (1.5, 1.5))
    np.testing.assert_array_equal(again["targets"], full["targets"])  # seeded: the same draw every time
    other = dsm.fan(dist, alpha, sigma, (1.5, 1.5), seed=1)
    assert not np.array_equal(other["targets"], full["targets"])


def test_figures_draw_the_targets_ending_at_alpha_x0_and_patch_like_the_built_ones():
    """Each thin arrow ends at alpha x0 (arrows are sigma^2 times the targets); the exact arrow is sigma^2 times the
    score; the patched base dicts equal the fully built figures. Coordinates are rounded to 1e-3 for drawing."""
    dist = get_dataset("moons")
    alpha, sigma = _level(0.3)
    data = dsm.fan(dist, alpha, sigma, (1.5, 1.5))
    xs, grid, p = np.linspace(-3.5, 3.5, 5), np.zeros((3, 2)), np.ones((5, 5))
    learned = data["exact"] * 1.1
    fig = dsm.fan_figure(xs, p, grid, data, 64, sigma, learned, t=0.3)
    tips = np.column_stack([fig.data[3].x, fig.data[3].y])
    np.testing.assert_allclose(tips, alpha * data["x0"][:64], atol=1e-3)
    lines = np.column_stack([fig.data[2].x, fig.data[2].y]).reshape(64, 3, 2)
    np.testing.assert_allclose(lines[:, 0], np.broadcast_to(data["xt"], (64, 2)), atol=1e-3)
    exact_tip = np.array([fig.data[4].x[1], fig.data[4].y[1]])
    np.testing.assert_allclose(exact_tip - data["xt"], sigma**2 * data["exact"], rtol=1e-9)
    assert fig.data[6].showlegend and "64 targets" in fig.data[5].name
    fan_base, curve_base = dsm.base_dicts()
    patched = patch(fan_base, dict(enumerate(dsm.fan_values(xs, p, grid, data, 64, sigma, learned))),
                    dsm.fan_layout(xs, 0.3))
    built = fig.to_dict()
    for axis in ("xaxis", "yaxis"):
        assert patched["layout"][axis]["range"] == list(built["layout"][axis]["range"]) == [-3.5, 3.5]
    assert patched["layout"]["title"] == built["layout"]["title"]
    for a, b in zip(built["data"], patched["data"]):
        for key in ("x", "y"):
            if key in a:
                np.testing.assert_allclose(decode(a[key]), decode(b[key]))
    curve = dsm.curve_figure(data, 64, 0.05)
    assert curve.data[2].y[0] == pytest.approx(data["rel_error"][63])
    se_line = np.asarray(curve.data[1].y)
    np.testing.assert_allclose(se_line, data["rel_se1"] / np.sqrt([1, dsm.N_MAX]))
    assert list(dsm.curve_figure(data, 64, None).data[3].x) == []


def test_bad_number_of_targets_is_a_clear_error():
    dist = get_dataset("moons")
    for bad in (0, -3, 2.5, True, 2_000_000):
        with pytest.raises(ValueError, match=r"number of targets must be an integer in \[1, 1000000\]"):
            dsm.posterior_draws(dist, 0.8, 0.6, (0.0, 0.0), n=bad)


def test_a_zero_score_still_is_the_average_and_relative_errors_are_marked_undefined():
    """At the centre of the 8 Gaussians the score is zero by symmetry (to round-off): relative errors are undefined
    (the page shows a dash) and stay finite, and the average of 4,096 targets is within Z standard errors of zero,
    the standard error taken from the targets' spread."""
    dist = get_dataset("8gaussians")
    alpha, sigma = _level(0.5)
    data = dsm.fan(dist, alpha, sigma, (0.0, 0.0))
    assert np.linalg.norm(data["exact"]) < 1e-12 and not dsm.relative_defined(data)
    assert np.isfinite(data["rel_error"]).all() and np.isfinite(dsm.relative_error(np.ones(2), data["exact"]))
    targets = data["targets"]
    se = np.sqrt(np.trace(np.cov(targets.T)) / len(targets))
    assert np.linalg.norm(targets.mean(0) - data["exact"]) < Z * se
    assert dsm.relative_defined(dsm.fan(dist, alpha, sigma, (0.5, 0.0)))


def test_both_figures_export_as_png():
    """The page's download buttons: the fan and the curve render through ui.export (matplotlib)."""
    from ui import export

    dist = get_dataset("moons")
    alpha, sigma = _level(0.5)
    data = dsm.fan(dist, alpha, sigma, (-0.5, 1.5))
    xs = np.linspace(-3.5, 3.5, 20)
    p = np.exp(dist.log_prob(torch.tensor(np.stack(np.meshgrid(xs, xs), -1).reshape(-1, 2)), alpha, sigma)
               .numpy()).reshape(20, 20)
    for fig in (dsm.fan_figure(xs, p, np.zeros((1, 2)), data, 256, sigma, data["exact"], 0.5),
                dsm.curve_figure(data, 256, 0.02)):
        assert export.to_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"
