"""Page 4 (forward process and SNR): the page runs, follows the sidebar, and its builders are exact."""

import json
import pathlib

import numpy as np
import plotly.io as pio
import pytest
import torch

from diffusion.schedules import SCHEDULES, make_schedule
from toy_data import get_dataset
from ui import forward
from ui.figures import at_frame, figure_dict
from apptest import charts, decode, open_page, plain

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def page():
    return open_page("pages/forward.py", timeout=120, dataset="moons", t="0.4")


def test_page_shows_the_movie_at_the_sidebar_t_and_follows_the_sidebar(page):
    at = page
    movie, curves = charts(at)[:2]
    assert len(movie["frames"]) == len(forward.FRAME_TS) == 31
    assert movie["layout"]["sliders"][0]["active"] == forward.nearest_frame(forward.FRAME_TS, 0.4) == 12
    assert "t = 0.40" in movie["layout"]["title"]["text"]
    metrics = {m.label: m.value for m in at.get("metric")}
    a, s = make_schedule("cosine").alpha_sigma(0.4)
    assert metrics["α_t (signal kept)"] == f"{float(a):.3f}"

    at.sidebar.slider(key="t").set_value(0.8).run()
    assert not at.exception
    movie2, curves2 = charts(at)[:2]
    assert movie2["layout"]["sliders"][0]["active"] == 24 and "t = 0.80" in movie2["layout"]["title"]["text"]
    assert curves2 != curves  # the current-t dots moved

    at.sidebar.selectbox(key="schedule").select("ve").run()
    assert not at.exception
    movie3, curves3 = charts(at)[:2]
    assert any("Variance exploding" in h.value for h in at.subheader)
    assert movie3["frames"][-1]["layout"]["xaxis"]["range"][1] > 100  # zoomed out with sigma_max = 50
    assert curves3 != curves2

    at.sidebar.selectbox(key="label").select(at.sidebar.selectbox(key="label").options[1]).run()
    assert not at.exception
    movie4, _ = charts(at)[:2]
    classes = [tr for tr in movie4["data"] if tr["type"] == "scattergl"]
    assert movie4["data"][0]["z"] != movie3["data"][0]["z"]  # p_t(x | label) instead of p_t(x)
    assert sum(tr.get("showlegend", True) for tr in classes) == 1  # only the chosen label's points remain


def test_other_schedules_have_page_sliders_and_bad_values_warn(page):
    at = page
    at.sidebar.selectbox(key="schedule").select("cosine").run()
    before = charts(at)[1]
    at.slider(key="forward.edm.rho").set_value(3.0).run()
    assert not at.exception
    after = charts(at)[1]
    assert after != before
    at.slider(key="forward.linear.beta_max").set_value(1.0).run()  # does not reach log-SNR -4 at t = 1
    assert not at.exception
    assert any("linear" in w.value and "default" in w.value for w in at.warning)


def test_frames_hold_x_t_equal_alpha_x0_plus_sigma_eps():
    dist, sched = get_dataset("circles"), make_schedule("sigmoid")
    ts = np.array([0.0, 0.3, 0.7, 1.0])
    fig = forward.forward_animation(dist, sched, ts, n_points=40, n_tracked=3, seed=5, grid_n=12)
    x0, y, eps = forward.forward_points(dist, 40, 5)
    k_pts = 2 + dist.num_classes
    for k, t in enumerate(ts):
        a, s = sched.alpha_sigma(float(t))
        want = (a * x0[:3].double() + s * eps[:3].double()).numpy()
        frame = fig.frames[k]
        assert np.allclose(frame.data[k_pts].x, want[:, 0], atol=1e-3)
        assert np.allclose(frame.data[k_pts].y, want[:, 1], atol=1e-3)
        path_x = np.asarray(frame.data[k_pts - 1].x, dtype=float)
        assert np.isnan(path_x).sum() == 3 and (~np.isnan(path_x)).sum() == 3 * (k + 1)  # paths so far
        xs, _, p = forward.density_grid(dist, a, s, n=12, extent=forward.view_half_width(float(a), float(s)))
        assert np.allclose(frame.data[0].z, p, rtol=1e-3, atol=1e-3 * p.max())


def test_opening_at_a_frame_equals_building_at_that_frame():
    dist, sched = get_dataset("moons"), make_schedule("cosine")
    ts = np.array([0.0, 0.5, 1.0])
    base = forward.forward_animation(dist, sched, ts, n_points=30, grid_n=10)
    at2 = forward.forward_animation(dist, sched, ts, n_points=30, grid_n=10, active=2)
    # what the page draws: the cached plain dict opened at a frame by a shallow copy
    d = figure_dict(base)
    assert plain(json.loads(pio.to_json(at_frame(d, 2), validate=False))) == plain(json.loads(pio.to_json(at2)))
    assert d["layout"]["sliders"][0]["active"] == 0 and at_frame(d, 2)["frames"] is d["frames"]  # shared


def test_curves_equal_the_schedules():
    schedules, notes = forward.schedules_from_params({n: forward.default_params(n) for n in SCHEDULES})
    assert not notes
    fig = forward.schedule_curves(schedules, "cosine", 0.25)
    ts = torch.linspace(0, 1, 201, dtype=torch.float64)
    lines = {(tr.legendgroup, tr.xaxis): tr for tr in fig.data if tr.mode == "lines"}
    dots = {(tr.legendgroup, tr.xaxis): tr for tr in fig.data if tr.mode == "markers"}
    for name, sched in schedules.items():
        assert np.allclose(lines[(name, "x4")].y, sched.logsnr(ts).numpy())
        assert np.allclose(lines[(name, "x3")].y, torch.exp(sched.logsnr(ts)).numpy())
        assert np.allclose(lines[(name, "x")].y, sched.alpha_sigma(ts)[0].numpy())
        assert np.allclose(dots[(name, "x4")].y, [float(sched.logsnr(0.25))])
    widths = {tr.legendgroup: tr.line.width for tr in fig.data if tr.mode == "lines"}
    assert widths["cosine"] > widths["linear"]


def test_rejected_parameters_fall_back_with_the_parameter_named():
    schedules, notes = forward.schedules_from_params({"sigmoid": {"start": 2.0, "end": 1.0, "tau": 1.0}, "flow": {}})
    assert schedules["sigmoid"] == make_schedule("sigmoid") and len(notes) == 1 and "end" in notes[0]


# --- the digit view ("The same on digits") ---------------------------------------------------------------

def test_digit_view_shows_one_digit_per_schedule_and_logsnr_and_follows_its_widgets(page):
    at = page
    at.sidebar.selectbox(key="schedule").select("cosine").run()
    assert any(h.value == "The same on digits" for h in at.header)
    digits = charts(at)[2]
    heat = [tr for tr in digits["data"] if tr["type"] == "heatmap"]
    assert len(heat) == len(SCHEDULES) * len(forward.FORWARD_LAMBDAS) == 42
    rows = [digits["layout"][f"yaxis{1 + 7 * r if r else ''}"]["title"]["text"] for r in range(6)]
    assert rows == ["DDPM linear β", "Cosine (sidebar)", "Sigmoid", "EDM / Karras", "Variance exploding",
                    "Rectified flow"]
    titles = [a["text"] for a in digits["layout"]["annotations"]]
    assert titles[0].startswith("λ = 8<br>t = ")
    # equal lambda: the same picture in every row (the VE row reaches only lambda = -7.8 at sigma_max = 50)
    z = np.array([decode(tr["z"]) for tr in heat]).reshape(6, 7, 28, 28)
    assert np.abs(z[:, :6] - z[:1, :6]).max() < 2e-3
    at.number_input(key="forward.digit").set_value(1).run()
    assert not at.exception
    z2 = np.array([decode(tr["z"]) for tr in charts(at)[2]["data"]])
    assert not np.allclose(z2.reshape(6, 7, 28, 28)[:, 0], z[:, 0])  # another digit
    at.sidebar.selectbox(key="schedule").select("flow").run()
    assert not at.exception
    layout = charts(at)[2]["layout"]
    assert layout["yaxis36"]["title"]["text"] == "Rectified flow (sidebar)"


def test_digit_grid_depends_on_logsnr_only():
    x0 = torch.linspace(-1, 1, 784).reshape(1, 28, 28)
    schedules = {n: make_schedule(n) for n in SCHEDULES}
    images, ts, lams = forward.logsnr_digit_grid(x0, schedules, (6.0, 0.0, -3.0), seed=3)
    eps = torch.randn((28, 28), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for j, lam in enumerate((6.0, 0.0, -3.0)):
        want = ((x0[0].double() + np.exp(-lam / 2) * eps) / np.sqrt(1 + np.exp(-lam))).numpy()
        for i, (name, sched) in enumerate(schedules.items()):
            assert abs(float(sched.logsnr(ts[i, j])) - lam) < 1e-6, name
            assert np.allclose(images[i, j], want, atol=1e-9), name
    fig = forward.logsnr_grid_figure(images, ts, lams, (6.0, 0.0, -3.0), list(schedules))
    assert fig.layout.annotations[0].text == f"λ = 6<br>t = {ts[0, 0]:.3f}"


def test_the_snr_text_states_the_power_of_this_data_and_of_mnist():
    """SNR = α²/σ² is the power ratio only for unit-power data; the page gives each set's own power."""
    from toy_data.mnist import load_mnist

    at = open_page("pages/forward.py", dataset="pinwheel")
    text = " ".join(m.value for m in at.markdown)
    assert f"= {get_dataset('pinwheel').power():.2f} per coordinate" in text
    power, var = forward.pixel_power(load_mnist("test")[0])
    assert 0.5 < power < 1.0 and 0.2 < var < 0.5  # mostly the -1 background; the varying part is far smaller
    assert f"= {power:.2f}" in text and f"variance only {var:.2f}" in text
