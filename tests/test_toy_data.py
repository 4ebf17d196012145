"""Exact Gaussian-mixture ground truth: density, score, denoiser, posterior, labels, sampling, entropy."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import LABEL_PURITY, gen
from toy_data import DATASETS, NO_LABEL, GaussianMixture, finite_set, get_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

F64 = torch.float64
NAMES = list(DATASETS)
# (alpha, sigma): clean data, almost clean, VP mid-way, nearly pure noise, variance-exploding
LEVELS = [(1.0, 0.0), (1.0, 1e-3), (0.999, 0.02), (0.8, 0.6), (0.1, 0.995), (1.0, 3.0)]


def noised(dist, n, alpha, sigma, seed, label=None):
    g = gen("noised", dist.name, n, alpha, sigma, seed)
    x0, _ = dist.sample(n, label=label, generator=g)
    x = alpha * x0.double() + sigma * torch.randn(n, dist.dim, generator=g, dtype=F64)
    return torch.cat([x, 3 * torch.randn(8, dist.dim, generator=g, dtype=F64)])  # plus some far points


def class_log_prior(dist):
    return torch.stack([torch.log(dist.weights[dist.labels == c].sum()) for c in range(dist.num_classes)])


@pytest.fixture(params=NAMES)
def dist(request):
    return get_dataset(request.param)


# --- score and denoiser ----------------------------------------------------------------------------

@pytest.mark.parametrize("alpha, sigma", LEVELS)
def test_score_is_the_gradient_of_log_prob(dist, alpha, sigma):
    x = noised(dist, 200, alpha, sigma, 0).requires_grad_(True)
    lp = dist.log_prob(x, alpha, sigma)
    grad, = torch.autograd.grad(lp.sum(), x)
    score = dist.score(x.detach(), alpha, sigma)
    torch.testing.assert_close(score, grad, rtol=1e-7, atol=1e-7 * (1 + grad.abs().max().item()))


@pytest.mark.parametrize("alpha, sigma", LEVELS)
def test_conditional_score_is_the_gradient_of_conditional_log_prob(dist, alpha, sigma):
    c = dist.num_classes - 1
    x = noised(dist, 100, alpha, sigma, 1, label=c).requires_grad_(True)
    grad, = torch.autograd.grad(dist.log_prob(x, alpha, sigma, label=c).sum(), x)
    score = dist.score(x.detach(), alpha, sigma, label=c)
    torch.testing.assert_close(score, grad, rtol=1e-7, atol=1e-7 * (1 + grad.abs().max().item()))


@pytest.mark.parametrize("alpha, sigma", [lv for lv in LEVELS if lv[1] > 0])
@pytest.mark.parametrize("label", [None, 0])
def test_denoiser_is_tweedie(dist, alpha, sigma, label):
    x = noised(dist, 300, alpha, sigma, 2)
    tweedie = (x + sigma**2 * dist.score(x, alpha, sigma, label)) / alpha
    den = dist.denoise(x, alpha, sigma, label)
    torch.testing.assert_close(den, tweedie, rtol=1e-7, atol=1e-7 * (1 + sigma**2 / alpha))


def test_denoiser_at_sigma_zero_is_identity(dist):
    x = noised(dist, 50, 1.0, 0.0, 3)
    torch.testing.assert_close(dist.denoise(x, 1.0, 0.0), x, rtol=0, atol=1e-12)


def test_denoiser_keeps_dtype_and_accepts_per_row_levels(dist):
    x = noised(dist, 6, 0.8, 0.6, 4)[:6]
    assert dist.denoise(x.float(), 0.8, 0.6).dtype == torch.float32
    a = torch.tensor([1.0, 0.9, 0.8, 0.5, 0.3, 0.1], dtype=F64)
    s = torch.sqrt(1 - a**2) + 0.01
    rows = torch.cat([dist.denoise(x[i:i + 1], a[i].item(), s[i].item()) for i in range(6)])
    torch.testing.assert_close(dist.denoise(x, a, s), rows, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="one entry per row"):
        dist.denoise(x, a[:4], s[:4])


# --- the density integrates to one ----------------------------------------------------------------

@pytest.mark.parametrize("alpha, sigma", [(1.0, 0.0), (0.8, 0.6)])
def test_log_prob_integrates_to_one(dist, alpha, sigma):
    std = torch.sqrt(alpha**2 * dist.stds**2 + sigma**2)  # each noised component's std
    lo = (alpha * dist.means - 9 * std[:, None]).min(0).values
    hi = (alpha * dist.means + 9 * std[:, None]).max(0).values
    h = 0.5 * std.min().item()  # trapezoid error on a Gaussian ~ exp(-2 pi^2 (std/h)^2): negligible
    axes = [torch.arange(lo[i].item(), hi[i].item() + h, h, dtype=F64) for i in range(2)]
    xx, yy = torch.meshgrid(*axes, indexing="ij")
    p = torch.exp(dist.log_prob(torch.stack([xx.flatten(), yy.flatten()], -1), alpha, sigma)).reshape(xx.shape)
    total = torch.trapezoid(torch.trapezoid(p, axes[1], dim=1), axes[0]).item()
    assert total == pytest.approx(1.0, abs=1e-3)


# --- labels ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha, sigma", [(1.0, 0.0), (0.8, 0.6), (0.1, 0.995)])
def test_log_prob_is_the_sum_over_classes(dist, alpha, sigma):
    x = noised(dist, 200, alpha, sigma, 5)
    per_class = torch.stack([dist.log_prob(x, alpha, sigma, label=c) for c in range(dist.num_classes)], -1)
    total = torch.logsumexp(class_log_prior(dist) + per_class, -1)
    torch.testing.assert_close(dist.log_prob(x, alpha, sigma), total, rtol=1e-10, atol=1e-10)


def test_class_posterior_recombines_the_score(dist):
    """grad log p = sum_c p(c | x) grad log p(x | c), with p(c | x) from Bayes' rule."""
    alpha, sigma = 0.8, 0.6
    x = noised(dist, 100, alpha, sigma, 6)
    per_class = torch.stack([dist.log_prob(x, alpha, sigma, label=c) for c in range(dist.num_classes)], -1)
    post = torch.softmax(class_log_prior(dist) + per_class, -1)
    scores = torch.stack([dist.score(x, alpha, sigma, label=c) for c in range(dist.num_classes)], 1)
    torch.testing.assert_close((post[..., None] * scores).sum(1), dist.score(x, alpha, sigma),
                               rtol=1e-8, atol=1e-8)


def test_conditional_samples_have_their_label(dist):
    purity = LABEL_PURITY.get(dist.name, 0.995)
    for c in range(dist.num_classes):
        x, labels = dist.sample(4000, label=c, generator=gen("cond", dist.name, c))
        assert x.shape == (4000, 2) and x.dtype == torch.float32
        assert (labels == c).all()
        near = (dist.nearest_label(x) == c).double().mean().item()
        assert near >= purity, (c, near)
    # independently: among unconditional samples drawn from label-c components, the same share is nearest to c
    x, labels = dist.sample(20000, generator=gen("uncond", dist.name))
    near = (dist.nearest_label(x) == labels).double().mean().item()
    assert near >= purity


def test_unconditional_label_frequencies(dist):
    n = 40000
    _, labels = dist.sample(n, generator=gen("freq", dist.name))
    freq = torch.bincount(labels, minlength=dist.num_classes).double() / n
    p = class_log_prior(dist).exp()
    assert ((freq - p).abs() <= 5 * torch.sqrt(p * (1 - p) / n)).all()


def test_per_row_labels_match_scalar_labels(dist):
    alpha, sigma = 0.8, 0.6
    x = noised(dist, 40, alpha, sigma, 7)
    n = x.shape[0]
    g = gen("rowlab", dist.name)
    lab = torch.randint(NO_LABEL, dist.num_classes, (n,), generator=g)
    lab[:2] = torch.tensor([NO_LABEL, 0])
    for method in ("log_prob", "score", "denoise"):
        got = getattr(dist, method)(x, alpha, sigma, label=lab)
        want = torch.stack([getattr(dist, method)(x[i:i + 1], alpha, sigma,
                                                  label=None if lab[i] < 0 else int(lab[i]))[0] for i in range(n)])
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12, msg=method)
    w, m, s = dist.posterior(x, alpha, sigma, label=lab)
    for i in range(n):
        wi, mi, si = dist.posterior(x[i:i + 1], alpha, sigma, label=None if lab[i] < 0 else int(lab[i]))
        torch.testing.assert_close(w[i], wi[0])
        torch.testing.assert_close(m[i], mi[0])
        torch.testing.assert_close(s[i], si[0])
    # sampling with one label per row
    lab = torch.randint(NO_LABEL, dist.num_classes, (20000,), generator=g)
    xs, got = dist.sample(20000, label=lab, generator=g)
    assert ((got == lab) | (lab == NO_LABEL)).all()
    free = lab == NO_LABEL
    freq = torch.bincount(got[free], minlength=dist.num_classes).double() / free.sum()
    p = class_log_prior(dist).exp()
    assert ((freq - p).abs() <= 5 * torch.sqrt(p * (1 - p) / free.sum())).all()
    # a constant label tensor gives the same label-c distribution as the scalar form
    xs_row, _ = dist.sample(4000, label=torch.full((4000,), 0), generator=g)
    xs_scalar, _ = dist.sample(4000, label=0, generator=g)
    assert (xs_row.mean(0) - xs_scalar.mean(0)).abs().max() < 0.1
    with pytest.raises(ValueError, match="one entry per row"):
        dist.sample(10, label=torch.zeros(9, dtype=torch.long))


@pytest.mark.parametrize("bad", [-1, 99, 0.5, 1.0, True, False, torch.tensor(0.0), torch.tensor([0, 99]),
                                 torch.tensor([-2, 0]), torch.tensor([True, False])])
def test_bad_labels_raise(dist, bad):
    # a big label for `bad` = 99 and the number of classes for the out-of-range cases
    if isinstance(bad, int) and not isinstance(bad, bool) and bad == 99:
        bad = dist.num_classes
    x = torch.zeros(2, 2, dtype=F64)
    for f in (lambda: dist.log_prob(x, label=bad), lambda: dist.score(x, 0.8, 0.6, label=bad),
              lambda: dist.denoise(x, 0.8, 0.6, label=bad), lambda: dist.sample(2, label=bad)):
        with pytest.raises(ValueError) as e:
            f()
        msg = str(e.value)
        if torch.as_tensor(bad).dtype in (torch.float32, torch.float64, torch.bool) or isinstance(bad, (bool, float)):
            assert "integer" in msg
        else:
            assert f"0..{dist.num_classes - 1}" in msg
            assert dist.label_names[0] in msg


def test_unknown_dataset():
    with pytest.raises(ValueError) as e:
        get_dataset("two_moons")
    assert "'two_moons'" in str(e.value)
    for name in DATASETS:
        assert name in str(e.value)


def test_bad_sample_sizes_raise(dist):
    for n in (-1, 1.5, True, 10**8, "10"):
        with pytest.raises(ValueError, match="number of points"):
            dist.sample(n)
    assert dist.sample(1)[0].shape == (1, 2)


def test_sample_zero_points():
    x, labels = get_dataset("moons").sample(0)
    assert x.shape == (0, 2) and labels.shape == (0,)


# --- posterior ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha, sigma", [(0.999, 0.02), (0.8, 0.6), (0.1, 0.995)])
def test_posterior_mean_is_the_denoiser(dist, alpha, sigma):
    x = noised(dist, 200, alpha, sigma, 8)
    w, m, s = dist.posterior(x, alpha, sigma)
    assert w.shape == (x.shape[0], len(dist.weights)) and m.shape == w.shape + (2,) and s.shape == w.shape
    torch.testing.assert_close(w.sum(-1), torch.ones(x.shape[0], dtype=F64))
    torch.testing.assert_close((w[..., None] * m).sum(1), dist.denoise(x, alpha, sigma), rtol=1e-9, atol=1e-9)
    # the second moment too: E|x0|^2 = sum_k w_k (|m_k|^2 + D s_k^2) = E|x0 - E x0|^2 + |E x0|^2,
    # with the posterior variance from Tweedie's second-order formula via the denoiser's divergence
    var = (w * ((m**2).sum(-1) + 2 * s**2)).sum(-1) - ((w[..., None] * m).sum(1) ** 2).sum(-1)
    xg = x[:20].clone().requires_grad_(True)
    den = dist.denoise(xg, alpha, sigma)
    div = sum(torch.autograd.grad(den[:, i].sum(), xg, retain_graph=True)[0][:, i] for i in range(2))
    torch.testing.assert_close(var[:20], sigma**2 / alpha * div, rtol=1e-6, atol=1e-9)


def test_posterior_of_a_single_gaussian_is_conjugate():
    mu, s0 = torch.tensor([[0.3, -0.2]], dtype=F64), 0.7
    g = GaussianMixture(mu, s0, [1.0], [0], ("only",))
    x = torch.randn(10, 2, generator=gen("conj"), dtype=F64)
    alpha, sigma = 0.6, 0.5
    prec = 1 / s0**2 + alpha**2 / sigma**2
    mean = (mu / s0**2 + alpha * x / sigma**2) / prec
    w, m, s = g.posterior(x, alpha, sigma)
    torch.testing.assert_close(w, torch.ones(10, 1, dtype=F64))
    torch.testing.assert_close(m[:, 0], mean)
    torch.testing.assert_close(s, torch.full((10, 1), prec**-0.5, dtype=F64))
    torch.testing.assert_close(g.denoise(x, alpha, sigma), mean)
    # and its density is N(alpha mu, alpha^2 s0^2 + sigma^2)
    v = alpha**2 * s0**2 + sigma**2
    torch.testing.assert_close(g.log_prob(x, alpha, sigma),
                               -math.log(2 * math.pi * v) - ((x - alpha * mu) ** 2).sum(-1) / (2 * v))


# --- entropy -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("s0, dim", [(0.7, 2), (0.05, 2), (2.0, 3)])
def test_entropy_of_a_single_gaussian(s0, dim):
    g = GaussianMixture(torch.full((1, dim), 0.5, dtype=F64), s0, [1.0], [0], ("only",))
    h, se = g.entropy(n=100_000, seed=3)
    exact = dim / 2 * math.log(2 * math.pi * math.e * s0**2)
    assert 0 < se < 0.01
    assert abs(h - exact) <= 3 * se


def test_entropy_of_a_well_separated_mixture():
    """K equal, far-apart Gaussians: H = log K + the Gaussian entropy."""
    means = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]], dtype=F64)
    g = GaussianMixture(means, 0.3, [1.0] * 4, [0, 0, 1, 1], ("a", "b"))
    h, se = g.entropy(n=100_000, seed=4)
    exact = math.log(4) + math.log(2 * math.pi * math.e * 0.3**2)
    assert abs(h - exact) <= 3 * se + 1e-9
    assert se < 0.01
    assert g.entropy(n=1000, seed=4) == g.entropy(n=1000, seed=4)


def test_entropy_of_point_masses_raises():
    with pytest.raises(ValueError, match="point masses"):
        finite_set([[0.0, 0.0], [1.0, 1.0]]).entropy()


# --- finite sets -------------------------------------------------------------------------------------

def test_finite_set_memorises():
    g = gen("finite")
    pts = torch.randn(30, 2, generator=g, dtype=F64)
    fs = finite_set(pts)
    x = torch.randn(500, 2, generator=g, dtype=F64) * 1.5
    nearest = pts[torch.cdist(x, pts).argmin(-1)]
    torch.testing.assert_close(fs.denoise(x, 1.0, 1e-3), nearest, rtol=0, atol=1e-9)
    torch.testing.assert_close(fs.denoise(pts, 1.0, 1e-3), pts, rtol=0, atol=1e-12)
    # at huge noise the posterior is flat: the mean of the points
    mean = pts.mean(0).expand(500, 2)
    torch.testing.assert_close(fs.denoise(x, 1.0, 1e4), mean, rtol=0, atol=1e-6)
    torch.testing.assert_close(fs.denoise(x, 1e-6, 1.0), mean, rtol=0, atol=1e-5)


def test_finite_set_with_bandwidth_and_labels():
    pts = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]], dtype=F64)
    fs = finite_set(pts, labels=[0, 1, 1], label_names=("a", "b"), bandwidth=0.5)
    assert fs.num_classes == 2 and torch.equal(fs.stds, torch.full((3,), 0.5, dtype=F64))
    x, lab = fs.sample(3000, label=1, generator=gen("fsb"))
    assert (lab == 1).all() and (fs.nearest_label(x) == 1).all()
    torch.testing.assert_close(x.double().mean(0), torch.tensor([2.0, 2.0], dtype=F64), rtol=0, atol=0.15)
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        finite_set(torch.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        finite_set([[0.0, float("nan")]])


# --- standardisation ---------------------------------------------------------------------------------

def test_standardised(dist):
    x, _ = dist.sample(200_000, generator=gen("std", dist.name))
    x = x.double()
    assert x.mean(0).abs().max() < 0.01
    assert x.var(0).mean().item() == pytest.approx(1.0, abs=0.01)
    # and exactly, from the mixture's parameters
    w = dist.weights
    centre = w @ dist.means
    assert centre.abs().max() < 1e-12
    var = (w * ((dist.means**2).sum(-1) + dist.dim * dist.stds**2)).sum() / dist.dim
    assert var.item() == pytest.approx(1.0, abs=1e-12)


def test_get_dataset_is_cached_and_named(dist):
    assert get_dataset(dist.name) is dist
    assert dist.dim == 2 and dist.num_classes == len(dist.label_names) >= 2
    assert torch.isclose(dist.weights.sum(), torch.tensor(1.0, dtype=F64))
    assert set(dist.labels.tolist()) == set(range(dist.num_classes))


@pytest.mark.parametrize("name", ["moons", "8gaussians", "pinwheel"])
def test_power_is_the_mean_square_of_samples(name):
    """E[x^2] per coordinate, exact, against 200,000 samples: within 5 standard errors of the mean."""
    dist = get_dataset(name)
    x = dist.sample(200_000, generator=gen("power", name))[0].double() ** 2
    per_point = x.mean(1)
    assert dist.power() == pytest.approx(per_point.mean().item(), abs=5 * per_point.std().item() / math.sqrt(len(x)))
