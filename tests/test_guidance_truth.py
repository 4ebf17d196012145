"""What classifier-free guidance samples, checked against the exact tilted density (toy_data/tilted.py).

The page claims: the tilted density p(x|c)^(1+w) p(x)^(-w) is what the guided score points at when t = 0,
yet guided sampling with the exact scores draws from neither it nor p(x|c), and the ODE and the SDE differ.
These tests measure each claim against an independent reference with its Monte Carlo standard error.
"""

import math

import numpy as np
import pytest
import torch

from diffusion.metrics import EnergyReference, energy_distance
from diffusion.models import oracle_model
from diffusion.schedules import make_schedule
from toy_data import get_dataset
from toy_data.mixture import GaussianMixture
from toy_data.tilted import TiltedMixture
from ui import guidance, reverse

pytestmark = pytest.mark.usefixtures("one_thread")


def _overlapping():
    """Two unit Gaussians one unit apart: the labels overlap a lot, so the tilt moves the density visibly."""
    return GaussianMixture([[0.0, 0.0], [1.0, 0.0]], 1.0, 1.0, [0, 1], ("left", "right"), "overlap")


def _grid_moments(tilted, n=400, extent=7.0):
    xs, _, p = tilted.grid(n, extent)
    gx, gy = np.meshgrid(xs, xs)
    da = (xs[1] - xs[0]) ** 2
    mean = np.array([(p * gx).sum() * da, (p * gy).sum() * da])
    std = np.sqrt([(p * (gx - mean[0]) ** 2).sum() * da, (p * (gy - mean[1]) ** 2).sum() * da])
    return xs, p, da, mean, std


@pytest.mark.parametrize("case", [("overlap", 0, 2.0),  # the other two sets: seconds each, in the slow run
                                  pytest.param(("8gaussians", 0, 3.0), marks=pytest.mark.slow),
                                  pytest.param(("moons", 0, 4.0), marks=pytest.mark.slow)])
def test_tilted_density_is_normalised_and_its_grid_matches_its_exact_samples(case):
    name, label, w = case
    dist = _overlapping() if name == "overlap" else get_dataset(name)
    tilted = TiltedMixture(dist, label, w)
    xs, p, da, mean, std = _grid_moments(tilted)
    # The grid's raw integral of p(x|c)^(1+w) p(x)^(-w) equals the Monte Carlo normaliser pi^-w E[P(c|x)^w]
    # (two independent computations; 4 standard errors plus 0.5% for the grid's quadrature).
    gx, gy = np.meshgrid(xs, xs)
    raw = torch.exp(tilted.log_prob_unnormalised(torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], -1)))).sum().item()
    z, z_se = tilted.normaliser(200_000, seed=1)
    assert raw * da == pytest.approx(z, abs=4 * z_se + 0.005 * z)
    assert p.sum() * da == pytest.approx(1.0, abs=1e-9)
    # Mean and std from the normalised grid equal those of exact rejection samples, within 4 standard errors
    # (the sd of a sample std is about std / sqrt(2 n) for these near-Gaussian clouds; grid spacing 0.035).
    n = 40_000
    x = tilted.sample(n, generator=torch.Generator().manual_seed(2))[0].double()
    se_mean = x.std(0).numpy() / math.sqrt(n)
    assert np.all(np.abs(x.mean(0).numpy() - mean) < 4 * se_mean + 1e-3)
    assert np.all(np.abs(x.std(0).numpy() - std) < 4 * std / math.sqrt(2 * n) + 1e-3)
    if name == "overlap":  # here the tilt matters: the label's own mean is (0, 0), the tilted one well left of it
        assert mean[0] < -20 * se_mean[0] - 0.3


def test_tilt_keeps_points_by_their_class_posterior():
    """Rejection keeps x ~ p(x|c) with probability P(c|x)^w: the kept share matches the normaliser."""
    dist = _overlapping()
    tilted = TiltedMixture(dist, 0, 2.0)
    z, z_se = tilted.normaliser(100_000, seed=3)
    kept = z * math.exp(tilted.w * tilted.log_pi)  # E[P(c|x)^w]
    x = dist.sample(100_000, label=0, generator=torch.Generator().manual_seed(4))[0]
    post = torch.exp(tilted.log_class_posterior(x))
    assert torch.all(post <= 1 + 1e-12) and post.min() < 0.3  # the labels overlap
    assert (post**2).mean().item() == pytest.approx(kept, abs=4 * (post**2).std().item() / math.sqrt(1e5) + 4 * z_se)
    with pytest.raises(ValueError):
        TiltedMixture(dist, None, 1.0)
    with pytest.raises(ValueError):
        TiltedMixture(dist, 0, -1.0)


# --- guided sampling with the exact scores: neither the tilted density nor p(x|c) ----------------------

N = 4000


@pytest.fixture(scope="module")
def guided_8gaussians():
    dist, sched = get_dataset("8gaussians"), make_schedule("cosine")
    model = oracle_model(dist, sched)
    with torch.no_grad():
        torch.set_num_threads(1)
        ode = reverse.run(model, sched, "heun", 50, N, 1, 0, 3.0).xs[-1].double()
        sde = reverse.run(model, sched, "sde", 200, N, 1, 0, 3.0).xs[-1].double()
    return dist, ode, sde


def test_exact_score_cfg_samples_are_not_the_tilted_density(guided_8gaussians):
    """8gaussians, label E, w = 3: the tilted density has mean 1.40 and std 0.14 along x1; the guided ODE
    ends near 1.72 and 0.08, the guided SDE near 1.46 and 0.14. Each gap is many standard errors."""
    dist, ode, sde = guided_8gaussians
    tilted = TiltedMixture(dist, 0, 3.0)
    _, _, _, mean, std = _grid_moments(tilted)
    assert mean[0] == pytest.approx(1.40, abs=0.005) and std[0] == pytest.approx(0.14, abs=0.005)
    for x, want_mean, want_std in ((ode, 1.72, 0.08), (sde, 1.46, 0.14)):
        se = x[:, 0].std().item() / math.sqrt(N)
        assert x[:, 0].mean().item() == pytest.approx(want_mean, abs=0.02)
        assert x[:, 0].std().item() == pytest.approx(want_std, abs=0.01)
        assert abs(x[:, 0].mean().item() - mean[0]) > 10 * se  # not the tilted density's mean
    assert ode[:, 0].std().item() < 0.7 * std[0]  # the ODE concentrates
    # The ODE and the SDE, with the same guided score, end in different distributions.
    se_diff = math.sqrt(ode[:, 0].var().item() / N + sde[:, 0].var().item() / N)
    assert ode[:, 0].mean().item() - sde[:, 0].mean().item() > 10 * se_diff


@pytest.mark.slow  # 16 exact tilted samples of 4,000 points and their energy distances (seconds)
def test_guided_samples_are_farther_from_the_tilted_density_than_sampling_noise(guided_8gaussians):
    """Energy distance to an exact tilted sample, against the spread of that distance for exact tilted samples."""
    dist, ode, sde = guided_8gaussians
    tilted = TiltedMixture(dist, 0, 3.0)
    g = torch.Generator().manual_seed(5)
    ref = tilted.sample(N, generator=g)[0]
    noise = [energy_distance(tilted.sample(N, generator=g)[0], ref) for _ in range(8)]
    assert energy_distance(sde, ref) > 5 * max(noise)
    assert energy_distance(ode, ref) > 5 * max(noise)
    # and farther from p(x|c) too
    ref_c = dist.sample(N, label=0, generator=g)[0]
    noise_c = [energy_distance(dist.sample(N, label=0, generator=g)[0], ref_c) for _ in range(8)]
    assert min(energy_distance(sde, ref_c), energy_distance(ode, ref_c)) > 5 * max(noise_c)


def test_guidance_report_rows_measure_the_clouds():
    dist, sched = get_dataset("8gaussians"), make_schedule("cosine")
    rep = guidance.guidance_report(dist, sched, {"Exact": oracle_model(dist, sched)}, 0, 3.0, n=600, seed=1, grid_n=40)
    assert [r["cloud"] for r in rep.rows] == ["exact sample of p(x | c)", "exact sample of the tilted density",
                                               "Exact, guided ODE", "Exact, guided SDE"]
    ode = rep.samples["Exact"]["ODE"].double()
    assert rep.rows[2]["mean"] == pytest.approx(ode.mean(0).tolist())
    assert rep.rows[2]["std"] == pytest.approx(ode.std(0).tolist())
    assert 0.99 < rep.kept <= 1.0  # 8gaussians' labels barely overlap: the tilt keeps nearly all of p(x|c)
    assert rep.rows[0]["outside"] < 0.03 and rep.rows[2]["outside"] > 0.04  # the ODE leaves p(x|c)'s 99% region
    assert rep.rows[2]["ed_tilted"] > 20 and rep.rows[1]["ed_tilted"] < 5
    fig = guidance.guidance_figure(rep)
    names = [tr.name for tr in fig.data]
    assert "guided ODE samples" in names and "guided SDE samples" in names and any("tilted" in (n or "") for n in names)
    xs, ys, p_c, p_w, levels = rep.grid  # a close-up of the one mode, its 50/90/99% lines nested
    assert 1.0 < xs.mean() < 1.8 and abs(ys.mean()) < 0.2 and xs[-1] - xs[0] < 2
    assert levels[0] > levels[1] > levels[2] > 0
    inside = (p_w >= levels[1]).sum() * (xs[1] - xs[0]) * (ys[1] - ys[0])  # the 90% region of N(mu, 0.14^2 I)
    assert inside == pytest.approx(math.pi * 0.14**2 * 2 * math.log(10), rel=0.15)
    table = guidance.summary_rows(rep)
    assert table[2]["mean (x₁, x₂)"] == f"({ode.mean(0)[0]:.2f}, {ode.mean(0)[1]:.2f})"


# --- the energy-distance ratio's scale ------------------------------------------------------------------

def test_ed_floor_is_the_expected_distance_of_two_exact_samples():
    """EnergyReference's floor 2 E|Y-Y'| / n equals the mean energy distance of many independent pairs."""
    dist, n = get_dataset("8gaussians"), 300
    ref = EnergyReference(dist, n)
    g = torch.Generator().manual_seed(6)
    eds = np.array([energy_distance(dist.sample(n, generator=g)[0], dist.sample(n, generator=g)[0])
                    for _ in range(300)])
    assert ref.floor == pytest.approx(eds.mean(), abs=4 * eds.std() / math.sqrt(len(eds)))


def test_controls_show_the_spread_of_a_perfect_sampler():
    dist = get_dataset("moons")
    ref, controls = reverse.reference_with_controls(dist, 500, None, k=12)
    assert len(controls) == 12 and controls[0] == pytest.approx(ref.control())
    assert 0.2 < min(controls) < 1 < max(controls) < 5  # scattered around 1
    # Far from the truth the ratio grows in proportion to n: for a shifted copy of the data (E|X-X'| = E|Y-Y'|)
    # ratio - 1 = n D / (2 E|Y-Y'|) in expectation, so doubling the points doubles ratio - 1.
    shift = torch.tensor([0.5, 0.0])
    g = torch.Generator().manual_seed(7)
    r500 = ref.ratio(dist.sample(500, generator=g)[0] + shift)
    r1000 = EnergyReference(dist, 1000).ratio(dist.sample(1000, generator=g)[0] + shift)
    assert r500 > 10 * max(controls) and (r1000 - 1) / (r500 - 1) == pytest.approx(2.0, rel=0.2)
