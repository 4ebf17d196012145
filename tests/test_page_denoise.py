"""Page 6 (what the model learns): the page runs, its widgets change what is shown, and its builders
agree with the exact mixture (posterior mean = ideal denoiser; a finite set's sampler memorises)."""

from __future__ import annotations

import base64
import json
import os

import numpy as np
import pytest
import torch

from diffusion.models import oracle_model
from diffusion.samplers import prior_sample
from diffusion.schedules import make_schedule
from toy_data import get_dataset
from ui import denoiser_field, memorisation, memorisation_figures, posterior
from ui.figures import SpecFigure, at_frame, patch
from ui.threads import one_thread
from apptest import open_page

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _charts(at) -> list[str]:
    return [c.proto.spec for c in at.get("plotly_chart")]


def _array(value) -> np.ndarray:
    """An array from a figure dict: a list, a numpy array, or plotly's typed array {dtype, bdata}."""
    if isinstance(value, dict) and "bdata" in value:
        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return out.reshape([int(k) for k in str(value["shape"]).split(",")]) if "shape" in value else out
    return np.asarray(value, dtype=float)


def _metrics(at) -> dict:
    return {m.label: m.value for m in at.metric}


@pytest.fixture(scope="module")
def page():
    return open_page("pages/denoise.py", dataset="moons", t="0.5")


def test_page_widgets_change_what_is_shown(page):
    at = page
    charts = _charts(at)
    assert len(charts) == 5  # pick, posterior, field, memorisation, distance curve
    assert "click a point" in charts[0] and "Exact posterior" in charts[1]
    assert '"frames"' in charts[2]  # the field animates over t in the browser
    m0 = _metrics(at)
    assert m0["Noise level"].startswith("σ/α") and float(m0["Learned − exact"]) < 0.1

    # moving x_t redraws the posterior and its numbers, not the field
    at.slider(key="denoise.x1").set_value(-1.5).run()
    c1, m1 = _charts(at), _metrics(at)
    assert c1[1] != charts[1] and c1[0] != charts[0] and c1[2] == charts[2]
    assert m1["Posterior spread"] != m0["Posterior spread"]
    at.slider(key="denoise.x2").set_value(-1.0).run()
    assert _charts(at)[1] != c1[1]

    # more noise: the posterior spreads over more of the data
    at.sidebar.slider(key="t").set_value(0.9).run()
    m2 = _metrics(at)
    assert float(m2["Posterior spread"]) > float(m1["Posterior spread"])
    assert "t = 0.90" in _charts(at)[0]
    assert json.loads(_charts(at)[2])["layout"]["sliders"][0]["active"] == 18  # the frame nearest t = 0.9

    # memorising versus generalising: at the smallest N the network copies its training points, at the largest
    # it is as far from them as fresh data (bounds: tests/test_memorisation.py; here only that the page shows it)
    def memo_row():
        return at.table[0].value.set_index("sampler")["median distance to nearest"].astype(float)

    net, fresh = memorisation_figures.MEMO_NAMES["net"], memorisation_figures.MEMO_NAMES["true"]
    assert at.select_slider(key="denoise.n").value == memorisation.NS[0]
    row = memo_row()
    assert row[net] < 0.1 * row[fresh] and row[memorisation_figures.MEMO_NAMES["ideal"]] < 0.1 * row[fresh]
    before = _charts(at)[3]
    curve = json.loads(_charts(at)[4])
    assert [d["name"] for d in curve["data"][:3]] == list(memorisation_figures.MEMO_NAMES.values())
    assert [d["x"] for d in curve["data"][:3]] == [list(memorisation.NS)] * 3
    at.select_slider(key="denoise.n").set_value(memorisation.NS[-1]).run()
    assert _charts(at)[3] != before and json.loads(_charts(at)[4])["data"][3]["x"] == [memorisation.NS[-1]] * 2
    row = memo_row()
    assert row[net] > 0.5 * row[fresh]

    # a prompt conditions the posterior and the field; the memorisation section has no labels and says so
    before = _charts(at)
    at.sidebar.selectbox(key="label").set_value("upper moon").run()
    assert not at.exception
    after = _charts(at)
    assert after[1] != before[1] and after[2] != before[2] and after[3] == before[3]
    assert any("prompt c = upper moon does not apply" in c.value for c in at.caption)


def test_gridded_posterior_mean_is_the_ideal_denoiser():
    dist = get_dataset("moons")
    xs, log_p0 = posterior.clean_log_prob_grid(dist, n=161)
    for alpha, sigma, xt, label in [(0.8, 0.6, (1.0, 0.5), None), (0.5, 0.87, (-0.3, 0.8), None),
                                    (0.9, 0.45, (0.2, -0.4), 1)]:
        if label is not None:
            xs, log_p0 = posterior.clean_log_prob_grid(dist, label, n=161)
        post = posterior.posterior_grid(dist, xs, log_p0, alpha, sigma, xt, label)
        cell = (xs[1] - xs[0]) ** 2
        assert post.sum() * cell == pytest.approx(1.0, abs=0.01)  # normalised exactly by p_t(x_t)
        exact = dist.denoise(torch.tensor([xt], dtype=torch.float64), alpha, sigma, label)[0].numpy()
        np.testing.assert_allclose(posterior.grid_mean(xs, post), exact, atol=0.01)
        np.testing.assert_allclose(posterior.posterior_summary(dist, alpha, sigma, xt, label)["mean"], exact, atol=1e-9)


def test_posterior_spread_grows_with_noise():
    dist = get_dataset("8gaussians")
    spreads = [posterior.posterior_summary(dist, a, s, (0.5, 0.5))["spread"] for a, s in [(0.99, 0.14), (0.7, 0.71),
                                                                                      (0.2, 0.98)]]
    assert spreads[0] < spreads[1] < spreads[2]


def test_finite_set_sampler_memorises():
    dist = get_dataset("moons")
    schedule = make_schedule("cosine")
    points, labels = memorisation_figures.training_set(dist, 4, seed=0)
    fs = memorisation_figures.memoriser(dist, points, labels)
    # its ideal denoiser at low noise returns the nearest training point
    x = points[:2].float() + 0.01
    np.testing.assert_allclose(fs.denoise(x, 1.0, 0.01).numpy(), points[:2].numpy(), atol=1e-4)
    noise = prior_sample(schedule, (200, 2), seed=1)
    with one_thread():
        out = memorisation_figures.sample_from(oracle_model(fs, schedule), schedule, noise)
        true = dist.sample(200, generator=torch.Generator().manual_seed(2))[0]
    d = memorisation_figures.nearest_distance(out, points)
    assert d.mean() < 0.03 and np.quantile(d, 0.9) < 0.05
    assert memorisation_figures.nearest_distance(true, points).mean() > 0.3  # fresh data is not near 4 points


def test_denoiser_field_is_the_oracle_and_at_frame_opens_at_t():
    dist = get_dataset("moons")
    schedule = make_schedule("cosine")
    ts = denoiser_field.field_times(schedule)
    assert len(ts) == 21 and ts[0] == pytest.approx(schedule.t_range[0]) and ts[10] == 0.5
    points = denoiser_field.field_points(5)
    field = denoiser_field.denoiser_field(oracle_model(dist, schedule), points, ts)
    a, s = schedule.alpha_sigma(0.5)
    np.testing.assert_allclose(field[10], dist.denoise(torch.tensor(points), a, s).numpy(), atol=1e-5)
    fig = denoiser_field.field_figure(points, field, field, ts, 0)
    spec = fig.to_dict()
    opened = at_frame(spec, 7)
    assert opened["layout"]["sliders"][0]["active"] == 7
    arrow = spec["frames"][7]["traces"][0]
    np.testing.assert_array_equal(_array(opened["data"][arrow]["x"]), _array(spec["frames"][7]["data"][0]["x"]))
    assert spec["layout"]["sliders"][0]["active"] == 0  # the cached dict is not modified
    assert SpecFigure(opened).to_dict() is opened


def test_pick_and_posterior_patches_match_the_built_figures():
    dist = get_dataset("moons")
    xs, log_p0 = posterior.clean_log_prob_grid(dist, n=41)
    post = posterior.posterior_grid(dist, xs, log_p0, 0.8, 0.6, (1.0, 0.5))
    full = posterior.posterior_figure(xs, post, (1.0, 0.5), 0.8, 0.6, (0.1, 0.2), (0.15, 0.2)).to_dict()
    base = posterior.posterior_figure(xs, np.zeros_like(post), (0, 0), 1.0, 1.0, (0, 0)).to_dict()
    patched = patch(base, dict(enumerate(posterior.posterior_values(xs, post, (1.0, 0.5), 0.8, 0.6, (0.1, 0.2),
                                                                      (0.15, 0.2)))))
    for a, b in zip(full["data"], patched["data"]):
        for key in ("x", "y", "z"):
            if key in a:
                np.testing.assert_allclose(_array(a[key]), _array(b[key]))
    nx, pt = posterior.noisy_density(dist, 0.8, 0.6, n=20)
    fig = posterior.pick_figure(nx, pt, posterior.pick_grid(), 2.0, (0.3, 0.4), 0.5)
    assert fig.data[1].x[0] == pytest.approx(-2 * posterior.PICK_RANGE) and "t = 0.50" in fig.layout.title.text
