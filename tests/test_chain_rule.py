"""The autoregressive example: p(x1) p(x2 | x1), exact on the 2-D mixtures (toy_data.chain_rule)."""

import math

import pytest
import torch

from diffusion.metrics import EnergyReference
from toy_data import get_dataset
from toy_data.chain_rule import (chain_rule_sample, conditional_log_prob, conditional_log_weights,
                                 marginal_log_prob)

pytestmark = pytest.mark.usefixtures("one_thread")

LEVELS = [(1.0, 0.0), (0.8, 0.6)]  # clean data, and a noisy level (any alpha, sigma works the same way)


@pytest.mark.parametrize("name", ["moons", "8gaussians", "checkerboard"])
@pytest.mark.parametrize("alpha,sigma", LEVELS)
def test_the_two_factors_multiply_to_the_joint_density(name, alpha, sigma):
    dist = get_dataset(name)
    g = torch.Generator().manual_seed(0)
    x = dist.sample(2000, generator=g)[0].double() * alpha + sigma * torch.randn(2000, 2, generator=g,
                                                                                 dtype=torch.float64)
    joint = dist.log_prob(x, alpha, sigma)
    chain = marginal_log_prob(dist, x[:, 0], alpha, sigma) + conditional_log_prob(dist, x[:, 1], x[:, 0],
                                                                                  alpha, sigma)
    # float64 logsumexps of terms of size ~10: round-off ~1e-14; 1e-10 leaves room and catches any real error
    assert torch.allclose(chain, joint, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", ["moons", "8gaussians"])
def test_each_factor_is_a_normalised_one_dimensional_density(name):
    dist = get_dataset(name)
    x = torch.linspace(-8, 8, 16001, dtype=torch.float64)
    h = float(x[1] - x[0])
    # The trapezoid rule on 16,001 points over [-8, 8] (h = 0.001) of a smooth density with no mass outside:
    # error ~ h^2 times its curvature, below 1e-6 for component widths >= 0.05 (moons' narrowest).
    assert float(torch.exp(marginal_log_prob(dist, x)).sum() * h) == pytest.approx(1.0, abs=1e-6)
    for a in (-1.0, 0.0, 0.7):
        assert float(torch.exp(conditional_log_prob(dist, x, a)).sum() * h) == pytest.approx(1.0, abs=1e-6)
        assert float(torch.exp(conditional_log_weights(dist, a)).sum()) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("name", ["moons", "8gaussians"])
def test_chain_rule_samples_match_the_joint(name):
    dist = get_dataset(name)
    n = 2000
    ref = EnergyReference(dist, n, seed=1)
    x = chain_rule_sample(dist, n, generator=torch.Generator().manual_seed(3)).float()
    ratio = ref.ratio(x)
    # Exact samples' own ratios scatter from draw to draw: the chain rule's must fall inside that scatter.
    controls = ref.controls(12)
    assert ratio <= max(controls), (ratio, controls)
    # and its moments agree with the mixture's within 4 standard errors
    truth = dist.sample(200_000, generator=torch.Generator().manual_seed(4))[0].double()
    big = chain_rule_sample(dist, 200_000, generator=torch.Generator().manual_seed(5))
    se = truth.std(0) / math.sqrt(len(big)) * math.sqrt(2)  # two independent means
    assert ((big.mean(0) - truth.mean(0)).abs() <= 4 * se).all()


def test_the_conditional_forgets_the_component_of_x1():
    """On 8gaussians x1 = 0 is shared by the top and bottom Gaussians: p(x2 | x1 = 0) has both modes."""
    dist = get_dataset("8gaussians")
    g = torch.Generator().manual_seed(0)
    x = torch.linspace(-3, 3, 601, dtype=torch.float64)
    p = torch.exp(conditional_log_prob(dist, x, 0.0))
    top, bottom = p[x > 0].sum(), p[x < 0].sum()
    assert float(top / bottom) == pytest.approx(1.0, rel=1e-6)  # symmetric set: the two modes weigh the same
    pts = chain_rule_sample(dist, 100, generator=g)
    assert pts.shape == (100, 2) and pts.dtype == torch.float64


def test_bad_inputs_are_named():
    dist = get_dataset("moons")
    with pytest.raises(ValueError, match="number of points"):
        chain_rule_sample(dist, -1)
    with pytest.raises(ValueError, match="label"):
        marginal_log_prob(dist, [0.0], label=7)
