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
from ui.models import shipped
from diffusion.models import reschedule
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.testing.v1.element_tree import Block, Widget
from apptest import charts as chart_dicts, decode, open_page

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
    assert len(charts) == 7  # pick, posterior, field, memorisation, distance curve, DSM targets and their curve
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


# --- denoising score matching, seen ---------------------------------------------------------------------------

class _Click(Widget):
    """A click on a point of a plotly chart drawn with on_select: the selection the browser sends (AppTest has no
    plotly widget of its own, so the chart's element is replaced by this one before the run)."""

    def __init__(self, chart, points):
        self.proto, self.root, self.type = chart.proto, chart.root, "plotly_chart"
        self.id, self.key, self.disabled, self._value = chart.proto.id, chart.key, False, None
        self.points = points

    @property
    def value(self):
        return self.points

    @property
    def _widget_state(self):
        selection = {"selection": {"points": self.points, "point_indices": [], "box": [], "lasso": []}}
        return WidgetState(id=self.id, string_value=json.dumps(selection))


def _click(at, key: str, x: float, y: float, curve: int):
    def replace(block) -> bool:
        for i, child in block.children.items():
            if getattr(child, "key", None) == key:
                block.children[i] = _Click(child, [{"curve_number": curve, "point_number": 0, "x": x, "y": y}])
                return True
            if isinstance(child, Block) and replace(child):
                return True
        return False

    assert replace(at.main), key
    return at.run()


def _dsm_charts(at) -> tuple[dict, dict]:
    by_title = {c["layout"]["title"]["text"]: c for c in chart_dicts(at) if "title" in c["layout"]}
    fan = next(c for t, c in by_title.items() if t.startswith("Training targets at x_t"))
    return fan, by_title["The average settles on the score"]


def _percent(text: str) -> float:
    return float(text.rstrip("%")) / 100


def test_dsm_view_shows_the_average_settling_on_the_exact_score():
    """Opened from a shared link at x_t = (0, 2.5), t = 0.5, n = 4,096 (where 2% is more than 5 standard errors:
    tests/test_dsm.py): the shown average is within 2% and within 4 of the shown standard errors of the exact
    score, the exact arrow is sigma^2 times dist.score, the network's error is |s_theta - s| / |s| of the page's
    model; the slider only slices the one draw, and a click moves x_t."""
    at = open_page("pages/denoise.py", dataset="moons", t="0.5",
                   **{"denoise.dsm.x1": "0", "denoise.dsm.x2": "2.5", "denoise.dsm.n": "4096"})
    assert (at.slider(key="denoise.dsm.x1").value, at.slider(key="denoise.dsm.x2").value) == (0.0, 2.5)
    assert at.select_slider(key="denoise.dsm.n").value == 4096
    dist, schedule = get_dataset("moons"), make_schedule("cosine")
    alpha, sigma = (float(a) for a in schedule.alpha_sigma(0.5))
    m = _metrics(at)
    average, se = _percent(m["Average of the targets vs exact"]), _percent(m["Standard error"])
    assert average < 0.02 and average < 4 * se + 5e-5  # 5e-5: the shown percentages' rounding
    fan, curve = _dsm_charts(at)
    assert fan["layout"]["xaxis"]["range"] == fan["layout"]["yaxis"]["range"] == [-3.5, 3.5]  # the picking square
    x = torch.tensor([[0.0, 2.5]], dtype=torch.float64)
    exact = dist.score(x, alpha, sigma)[0].numpy()
    arrow = fan["data"][4]
    np.testing.assert_allclose([arrow["x"][1] - arrow["x"][0], arrow["y"][1] - arrow["y"][0]], sigma**2 * exact,
                               rtol=1e-9)
    assert len(decode(fan["data"][2]["x"])) == 3 * 4096  # every target drawn: start, tip, gap
    model = reschedule(shipped("moons")[0], schedule)
    with torch.no_grad():
        s_theta = model.score(x.float(), 0.5).double()[0].numpy()
    net = np.linalg.norm(s_theta - exact) / np.linalg.norm(exact)
    assert _percent(m["Network vs exact"]) == pytest.approx(net, abs=5e-5)
    assert decode(curve["data"][3]["y"])[0] == pytest.approx(net, rel=1e-6)

    # fewer targets: the first 16 of the same draw, a larger error, the same exact arrow
    tips = decode(fan["data"][3]["x"])
    at.select_slider(key="denoise.dsm.n").set_value(16).run()
    fan16, curve16 = _dsm_charts(at)
    np.testing.assert_array_equal(decode(fan16["data"][3]["x"]), tips[:16])
    assert fan16["data"][4] == fan["data"][4] and decode(curve16["data"][2]["x"]).tolist() == [16]
    m16 = _metrics(at)
    # SE falls as 1/sqrt(n): sqrt(4096 / 16) = 16 times the shown one, whose rounding (5e-5) grows 16-fold too
    assert _percent(m16["Standard error"]) == pytest.approx(16 * se, abs=16 * 5e-5 + 5e-5)
    assert m16["Average of the targets vs exact"] != m["Average of the targets vs exact"]

    # a click on the clickable points (trace 1) moves x_t to it, on the sliders' 0.05 grid
    _click(at, "denoise.dsm.pick", -2.0, 1.0, curve=1)
    assert not at.exception
    assert (at.slider(key="denoise.dsm.x1").value, at.slider(key="denoise.dsm.x2").value) == (-2.0, 1.0)
    fan_moved = _dsm_charts(at)[0]
    assert fan_moved["data"][7]["x"] == [-2.0] and fan_moved["data"][7]["y"] == [1.0]
    exact = dist.score(torch.tensor([[-2.0, 1.0]], dtype=torch.float64), alpha, sigma)[0].numpy()
    arrow = fan_moved["data"][4]
    np.testing.assert_allclose([arrow["x"][1] + 2.0, arrow["y"][1] - 1.0], sigma**2 * exact, rtol=1e-9)


def _train_own(at, steps: int = 40):
    """Press the memorisation section's Train, wait for its job, and redraw: (job, its distance table)."""
    from ui import memorisation_live

    at.button(key="denoise.own_train").click().run()
    assert not at.exception
    job = at.session_state[memorisation_live.JOB]
    assert job.recipe["steps"] == steps
    job.join(120)
    at.run()  # the job is done: the section redraws the page once, so it stops polling
    assert not at.exception and job.progress()["state"] == "done", job.error
    return job, at.table[1].value.set_index("sampler")["median distance to nearest"].astype(float)


@pytest.mark.slow  # opens page 6 and trains a 40-step network through its control (10-20 s)
def test_a_network_trained_on_your_own_n_is_shown_beside_the_ideal_denoiser(monkeypatch):
    from ui import memorisation_live

    monkeypatch.setattr(memorisation_live, "USER_RECIPE", {**memorisation.USER_RECIPE, "steps": 40})
    at = open_page("pages/denoise.py", dataset="moons")
    at.number_input(key="denoise.own_n").set_value(16).run()
    job, row = _train_own(at)
    assert job.n == 16
    np.testing.assert_array_equal(job.arrays["train_16"], memorisation_figures.training_set(get_dataset("moons"),
                                                                                           16, memorisation.SEED)[0])
    names = memorisation_figures.MEMO_NAMES
    d = memorisation.distances(job.arrays, (16,))[16]
    for key in ("ideal", "net", "true"):  # the table shows the job's own distances (rounded to 3 decimals there)
        assert row[names[key]] == pytest.approx(np.median(d[key]), abs=1e-12)
    # the ideal denoiser's samples copy the 16 points (sampling's final noise: median 0.008); fresh data do not
    assert row[names["ideal"]] < 0.015 and row[names["true"]] > 10 * row[names["ideal"]]
    assert any("40 steps of 256 points" in c.value and "4,000 steps" in c.value for c in at.caption)
    assert any(m.value == memorisation.verdict(16, d) for m in at.markdown)  # the distances, in words
    assert len(at.get("plotly_chart")) >= 6  # the job's samples figure joined the page's
    at.number_input(key="denoise.own_n").set_value(1).run()  # below the range: the widget itself clamps
    assert not at.exception


@pytest.mark.slow  # page 8, then page 6 with your points, training a 40-step network on them (10-20 s)
def test_a_network_trained_on_your_points_from_page_8(monkeypatch):
    from ui import memorisation_live

    monkeypatch.setattr(memorisation_live, "USER_RECIPE", {**memorisation.USER_RECIPE, "steps": 40})
    at = open_page("pages/your_data.py")
    at.slider(key="yours.preset_n").set_value(30)
    at.button(key="yours.load_preset").click().run()
    at.button(key="yours.memorise").click().run()  # to page 6, with your points chosen in the sidebar
    assert not at.exception and at.session_state["dataset"] == "yours"
    at.switch_page("pages/denoise.py").run()  # AppTest stays on the page it was switched to: follow
    assert not at.exception and not [w for w in at.number_input if w.key == "denoise.own_n"]
    assert any("your 30 points" in m.value for m in at.markdown)
    job, row = _train_own(at)
    mixture = at.session_state["custom_dist"]
    np.testing.assert_array_equal(job.arrays["train_30"], mixture.means.numpy())  # exactly your points
    assert job.dataset == "yours" and job.n == 30
    names = memorisation_figures.MEMO_NAMES
    # fresh samples of the fitted mixture (each point blurred by h) lie about h from the points; copies do not
    assert row[names["ideal"]] < 0.015 < 0.3 * float(mixture.stds[0]) < row[names["true"]]
