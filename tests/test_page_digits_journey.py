"""Page 10 (a digit's journey): the page runs and follows its widgets; its builders are exact.

Nothing here depends on how well the shipped MNIST model is trained: the exact checks use the ideal
denoiser of a single real digit (toy_data.finite_set of one flattened image) or a fake model.
"""

import math
import pathlib

import numpy as np
import pytest
import torch

from diffusion.models import oracle_model
from diffusion.grids import time_grid
from diffusion.samplers import SAMPLERS, Trajectory, sample
from diffusion.schedules import make_schedule
from toy_data import finite_set
from toy_data.mnist import load_mnist
from ui.films import film_steps, film_strip, journey_animation
from ui.images import digit_color, image_z
from ui.pca import fit_pca, pca_journey, project, project_trajectory
from ui.survival import (SURVIVAL_LAMBDAS, journey_from, mse, noise_to, psnr, survival_figure, survival_sweep,
                         survival_ts)
from apptest import charts, decode, open_page

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def page():
    return open_page("pages/digits_journey.py", timeout=300, sampler="ddim", steps="10", t="0.5")


@pytest.fixture(scope="module")
def digit():
    x, y = load_mnist("test")
    return x[:1], int(y[0])


def _exact(x0):
    """The ideal denoiser of the set {x0} on images: E[x0 | x_t] = x0 for every x_t."""
    return finite_set(x0.reshape(1, -1))


def _denoiser(dist, schedule):
    oracle = oracle_model(dist, schedule)
    return lambda x, t: oracle(x.reshape(len(x), -1).double(), t).reshape(x.shape).to(x.dtype)


# --- the page --------------------------------------------------------------------------------------

def test_page_draws_three_sections_and_follows_its_widgets(page):
    at = page
    strip, movie, back, survival, pca = charts(at)
    assert sum(tr["type"] == "heatmap" for tr in strip["data"]) == 16  # 8 steps x (x_t, x0_hat)
    assert len(movie["frames"]) == 11  # 10 DDIM steps and the sample
    assert len(pca["frames"]) == 21 and pca["layout"]["sliders"][0]["active"] == 20
    titles = [a["text"] for a in back["layout"]["annotations"]]
    assert titles[0] == "original (a 7)" and "t = 0.50" in titles[1]
    # from t = 0.5: the part of a 10-step run's grid below t (cosine's t_range is [0.001, 0.996]: 6 steps)
    assert "(6 ddim steps)" in titles[3] and len(time_grid(make_schedule("cosine"), 10, t_start=0.5)) == 7
    metrics = {m.label: m.value for m in at.get("metric")}
    assert set(metrics) == {"One step: MSE", "One step: PSNR", "Denoised back: MSE", "Denoised back: PSNR"}
    mse = float(metrics["Denoised back: MSE"])
    assert metrics["Denoised back: PSNR"] == f"{10 * math.log10(4 / mse):.1f} dB" or abs(
        float(metrics["Denoised back: PSNR"].split()[0]) - 10 * math.log10(4 / mse)) < 0.06
    marker = [tr for tr in survival["data"] if tr.get("name") == "sidebar t"][0]
    assert marker["x"] == [0.5]

    at.selectbox(key="journey.digit").select("7").run()
    assert not at.exception
    strip2 = charts(at)[0]
    assert charts(at)[2] == back  # the other sections did not change
    assert not np.allclose(decode(strip2["data"][8]["z"]), decode(strip["data"][8]["z"]))  # another sample's x0_hat

    at.slider(key="journey.index").set_value(1).run()
    assert not at.exception
    back2 = charts(at)[2]
    assert back2["layout"]["annotations"][0]["text"] == "original (a 2)"
    assert not np.allclose(decode(back2["data"][0]["z"]), decode(back["data"][0]["z"]))

    at.sidebar.slider(key="t").set_value(0.8).run()
    assert not at.exception
    figs = charts(at)
    assert "t = 0.80" in figs[2]["layout"]["annotations"][1]["text"]
    assert [tr for tr in figs[3]["data"] if tr.get("name") == "sidebar t"][0]["x"] == [0.8]
    assert figs[0] == strip2  # the film strip is not resampled when t moves

    at.radio(key="journey.pca_what").set_value("x0_hat").run()
    assert not at.exception
    pca2 = charts(at)[4]
    assert "x̂₀" in pca2["frames"][3]["layout"]["title"]["text"]
    assert pca2["frames"][3]["data"][0]["x"] != pca["frames"][3]["data"][0]["x"]


# --- partial runs from t -----------------------------------------------------------------------------

def test_exact_denoiser_of_one_digit_brings_it_back_from_any_t(digit):
    x0, _ = digit
    sched = make_schedule("sigmoid")
    den = _denoiser(_exact(x0), sched)
    t_lo = sched.t_range[0]
    a_lo, s_lo = (float(v) for v in sched.alpha_sigma(t_lo))
    for t in (0.2, 0.5, 0.9):
        x_t, eps = noise_to(sched, t, x0, seed=4)
        # DDIM with x0_hat = x0 keeps eps_hat = eps: it lands exactly on x0 + (sigma/alpha)(t_min) eps
        back = sample(den, x_t, sched, "ddim", 12, t_start=t)
        assert torch.allclose(back, x0 + (s_lo / a_lo) * eps, atol=1e-5)
        for name in SAMPLERS:
            if name == "heun":  # its last correction, at t_min where sigma'/sigma is huge, amplifies the Euler
                continue        # predictor's error for a one-point denoiser: a core issue (full runs too)
            back = sample(den, x_t, sched, name, 12, t_start=t, generator=torch.Generator().manual_seed(0))
            assert mse(back, x0) < 5e-3, name  # Euler: a few coarse steps, PSNR > 29 dB
        r = journey_from(den, x0, sched, t, "heun", 12, seed=4)
        assert torch.allclose(r["x_t"], x_t) and torch.allclose(r["x0_hat"], x0)
        assert r["mse_x0_hat"] == 0 and r["psnr_x0_hat"] == math.inf


def test_survival_sweep_of_a_model_that_always_guesses_blank(digit):
    x0, _ = digit
    sched = make_schedule("cosine")
    blank = lambda x, t: torch.zeros_like(x)  # noqa: E731
    ts = survival_ts(sched)
    sweep = survival_sweep(blank, x0, sched, "ddim", 10, ts, seed=2)
    assert np.allclose(sweep["logsnr"], SURVIVAL_LAMBDAS, atol=1e-6)  # increasing t: decreasing lambda
    assert np.allclose(sweep["mse_x0_hat"], float((x0.double() ** 2).mean()))  # the guess 0 vs the digit
    t_lo = sched.t_range[0]
    a_lo, s_lo = (float(v) for v in sched.alpha_sigma(t_lo))
    for k, t in enumerate(ts):
        x_t, _ = noise_to(sched, t, x0, seed=2)
        s_t = float(sched.alpha_sigma(float(t))[1])
        # DDIM with x0_hat = 0: x_s = (sigma_s / sigma_t) x_t at each step, so the run ends at (sigma_min / sigma_t) x_t
        assert abs(sweep["mse_back"][k] - mse(s_lo / s_t * x_t / a_lo, x0)) < 1e-6
    assert psnr(1.0) == pytest.approx(10 * math.log10(4))
    fig = survival_figure(sweep, sched, 0.5, {"mse_back": 0.5, "mse_x0_hat": 0.3}, "Cosine")
    assert fig.layout.xaxis.range[0] > fig.layout.xaxis.range[1]  # noisier to the right


# --- film strip and movie -----------------------------------------------------------------------------

def _fake_trajectory(sched, steps=6, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    ts = time_grid(sched, steps)
    xs = torch.randn((steps + 1, batch, 1, 28, 28), generator=g)
    return Trajectory(ts, xs, torch.tanh(torch.randn((steps, batch, 1, 28, 28), generator=g)))


def test_film_strip_and_movie_show_the_trajectory():
    sched = make_schedule("ve")
    traj = _fake_trajectory(sched, steps=12)
    assert film_steps(12, 8) == [0, 2, 3, 5, 7, 9, 10, 12] and film_steps(3, 8) == [0, 1, 2, 3]
    strip = film_strip(traj, sched)
    assert len(strip.data) == 16
    a, s = (float(v) for v in sched.alpha_sigma(float(traj.ts[2])))
    want = image_z(traj.xs[2, 0] / math.sqrt(a * a + s * s))
    assert np.allclose(strip.data[1].z, want)  # column 2 is step 2: x_t / sqrt(alpha^2 + sigma^2)
    assert np.allclose(strip.data[9].z, image_z(traj.x0_hats[2, 0]))
    assert np.allclose(strip.data[7].z, image_z(traj.xs[12, 0]))  # the last column is the sample
    assert strip.layout.annotations[1].text.startswith(f"t = {float(traj.ts[2]):.2f}<br>λ = ")
    assert np.allclose(image_z(torch.arange(784.0).reshape(28, 28) / 784)[0],
                       np.round(np.arange(756, 784) / 784, 3))  # row 0 is drawn at the top
    movie = journey_animation(traj, sched)
    assert len(movie.frames) == 13 and movie.layout.sliders[0].active == 0
    assert np.allclose(movie.frames[5].data[1].z, image_z(traj.x0_hats[5, 0]))
    assert "the sample" in movie.frames[-1].layout.title.text


# --- PCA -------------------------------------------------------------------------------------------------

def test_pca_finds_known_directions_and_projects_every_step():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(500, generator=g, dtype=torch.float64), torch.randn(500, generator=g, dtype=torch.float64)
    a, b = a - a.mean(), b - b.mean()
    b = b - (b @ a) / (a @ a) * a  # uncorrelated in the sample, so the principal axes are exactly pixels 10 and 400
    data = torch.zeros(500, 784, dtype=torch.float64)
    data[:, 10], data[:, 400] = 3 * a, b  # variance 9 along pixel 10, 1 along pixel 400
    data += 1e-6 * torch.randn(data.shape, generator=g, dtype=torch.float64)
    pca = fit_pca(data.reshape(500, 1, 28, 28))
    xy = project(pca, data)
    assert abs(abs(pca.components_[0, 10]) - 1) < 1e-3 and abs(abs(pca.components_[1, 400]) - 1) < 1e-3
    assert np.allclose(np.abs(xy[:, 0]), np.abs(3 * a.numpy()), atol=1e-4)

    sched = make_schedule("cosine")
    traj = _fake_trajectory(sched, steps=4, batch=6)
    paths = project_trajectory(pca, traj, sched, "x_t")
    assert paths.shape == (5, 6, 2)
    al, sg = (float(v) for v in sched.alpha_sigma(float(traj.ts[1])))
    assert np.allclose(paths[1], pca.transform(traj.xs[1].reshape(6, -1).double().numpy() / math.hypot(al, sg)))
    assert np.allclose(paths[-1], pca.transform(traj.xs[-1].reshape(6, -1).double().numpy()))
    guesses = project_trajectory(pca, traj, sched, "x0_hat")
    assert np.allclose(guesses[2], pca.transform(traj.x0_hats[2].reshape(6, -1).double().numpy()))
    with pytest.raises(ValueError, match="x_t"):
        project_trajectory(pca, traj, sched, "eps")

    labels = np.array([0, 0, 1, 1, 2, 2])
    fig = pca_journey(xy, np.arange(500) % 3, paths, labels, traj.ts, sched)
    assert len(fig.frames) == 5 and fig.layout.sliders[0].active == 4
    assert fig.frames[2].traces == (3, 4, 5)  # only the particles move; the cloud stays
    assert np.allclose(fig.frames[2].data[1].x, np.round(paths[2, 2:4, 0], 3))
    assert fig.layout.yaxis.scaleanchor == "x"


# --- the first view, shared links and the words ------------------------------------------------------------

def test_the_first_view_is_computed_ahead_and_says_what_snr_and_power_are():
    at = open_page("pages/digits_journey.py", timeout=300)
    assert not at.exception and not at.error and not at.warning
    captions = [c.value for c in at.caption]
    assert any("computed ahead of time" in c and "Heun" in c for c in captions)  # the film strip
    assert any("DDIM with 20 steps (computed ahead of time)" in c for c in captions)  # the PCA journeys
    (power,) = [c for c in captions if "SNR = α²/σ²" in c]
    x, _ = load_mnist("test")
    e_x0_sq = float((x.double() ** 2).mean())  # the data's own second moment, pixels in [-1, 1]
    assert f"E[x₀²] = {e_x0_sq:.3f}" in power
    sched = make_schedule("cosine")
    a, s = (float(v) for v in sched.alpha_sigma(0.3))
    assert f"SNR = α²/σ² = {a * a / (s * s):.3g}" in power
    assert f"{100 * a * a * e_x0_sq / (a * a * e_x0_sq + s * s):.1f}% of the noisy image's power" in power
    assert "signal by power" not in " ".join(captions)


def test_a_shared_link_reopens_the_pages_own_controls():
    query = {"sampler": "ddim", "steps": "4", "journey.digit": "7", "journey.seed": "2", "journey.index": "3",
             "journey.label": "true", "journey.pca_what": "x0_hat"}
    at = open_page("pages/digits_journey.py", timeout=300, **query)
    assert not at.exception and not at.error
    assert at.selectbox(key="journey.digit").value == "7" and at.number_input(key="journey.seed").value == 2
    assert at.slider(key="journey.index").value == 3 and at.checkbox(key="journey.label").value
    assert at.radio(key="journey.pca_what").value == "x0_hat"
    back = charts(at)[2]
    assert back["layout"]["annotations"][0]["text"] == "original (a 0)"  # MNIST test digit 3 is a 0


def test_the_ten_digits_have_ten_distinct_qualitative_colours():
    from plotly.colors import qualitative

    colours = [digit_color(d) for d in range(10)]
    assert colours == list(qualitative.D3) and len(set(colours)) == 10
