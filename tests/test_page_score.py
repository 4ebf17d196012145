"""Page 3 (score field): its builders against the exact score, and the page driven as a user would."""

import base64
import json
import pathlib
import time

import numpy as np
import plotly.io as pio
import pytest
import torch

from diffusion.models import oracle_model
from diffusion.samplers import guided
from diffusion.schedules import make_schedule
from toy_data import get_dataset
from ui import score
from ui.figures import at_frame, figure_dict
from apptest import open_page, plain

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


class ExactScore:
    """A 'model' whose score is the exact one times `scale` (for checking the error measure)."""

    def __init__(self, dist, schedule, scale=1.0):
        self.dist, self.schedule, self.scale = dist, schedule, scale

    def score(self, x, t, label=None):
        alpha, sigma = self.schedule.alpha_sigma(t)
        return self.scale * self.dist.score(x.double(), alpha, sigma, label).float()


def test_frames_hold_sigma_times_the_exact_score():
    dist, sched = get_dataset("8gaussians"), make_schedule("cosine")
    frames = score.field_frames(dist, sched, None, 3, ts=(0.1, 0.6), n_arrows=7, n_density=12)
    for f in frames:
        alpha, sigma = (float(a) for a in sched.alpha_sigma(f["t"]))
        want = sigma * dist.score(torch.from_numpy(f["points"]), alpha, sigma, 3).numpy()
        np.testing.assert_allclose(f["exact"], want, rtol=1e-12)
        assert f["learned"] is None and f["diff"] is None
        assert f["p"].shape == (12, 12)


def test_learned_equal_to_exact_gives_zero_difference_and_error():
    dist, sched = get_dataset("8gaussians"), make_schedule("cosine")
    frames = score.field_frames(dist, sched, ExactScore(dist, sched), None, ts=(0.3,), n_arrows=5, n_density=10)
    assert frames[0]["diff"].max() < 1e-5 and frames[0]["rel_error"] < 1e-6
    assert score.relative_error(ExactScore(dist, sched, 2.0), dist, sched, 0.3, n=500) == pytest.approx(1.0, rel=1e-5)


def test_quiver_arrows_point_along_the_score():
    pts = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, -1.0]])
    vec = np.array([[0.5, 0.0], [0.0, -10.0], [1.0, 1.0]])
    tr = score.arrows(pts, vec, spacing=1.0, color="#000000", name="s")
    xs, ys = np.asarray(tr.x, float).reshape(3, 7), np.asarray(tr.y, float).reshape(3, 7)
    tip = np.stack([xs[:, 1], ys[:, 1]], 1) - pts
    np.testing.assert_allclose(tip, 0.9 * vec * np.minimum(np.hypot(*vec.T), score.ARROW_CAP)[:, None]
                               / score.ARROW_CAP / np.hypot(*vec.T)[:, None], atol=1e-6)
    np.testing.assert_allclose(np.hypot(*tip.T)[1], 0.9, atol=1e-6)  # capped at one cell (x 0.9)


def test_guided_score_matches_guided_denoiser():
    """s_u + (1+w)(s_c - s_u) is the score of samplers.guided's x0: s = (alpha x0 - x) / sigma^2."""
    dist, sched = get_dataset("8gaussians"), make_schedule("cosine")
    t, w, label = 0.4, 2.5, 1
    alpha, sigma = (float(a) for a in sched.alpha_sigma(t))
    g = score.guidance_fields(dist, sched, t, label, w, None, n_arrows=6, n_density=10)
    x = torch.from_numpy(g["points"])
    x0 = guided(oracle_model(dist, sched), label, w)(x, torch.tensor(t, dtype=torch.float64))
    want = sigma * (alpha * x0 - x) / sigma**2
    np.testing.assert_allclose(g["exact"]["guided"], want.numpy(), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(score.guided_scaled_score(g["exact"]["conditional"], g["exact"]["unconditional"], 0.0),
                               g["exact"]["conditional"])
    assert guided(oracle_model(dist, sched), label, 0.0)  # w = 0 is allowed


def test_animation_opens_at_the_chosen_frame():
    dist, sched = get_dataset("8gaussians"), make_schedule("cosine")
    model = ExactScore(dist, sched, 1.1)
    frames = score.field_frames(dist, sched, model, None, ts=(0.1, 0.5, 0.9), n_arrows=5, n_density=10)
    fig = score.score_animation(frames, 0)
    assert len(fig.frames) == 3 and [a.text.split(":")[0] for a in fig.layout.annotations][:2] == ["Exact", "Learned"]
    opened = at_frame(figure_dict(fig), 2)  # what the page draws: the cached dict opened at frame 2
    assert opened["layout"]["sliders"][0]["active"] == 2
    np.testing.assert_array_equal(opened["data"][1]["x"], fig.frames[2].data[1].x)
    assert [tr["xaxis"] for tr in opened["data"]] == ["x", "x", "x2", "x2", "x3"]
    assert score.nearest_frame(score.FRAME_TS, 0.33) == 7  # 0.35
    exact_only = score.field_frames(dist, sched, None, None, ts=(0.2, 0.8), n_arrows=5, n_density=10)
    opened = at_frame(figure_dict(score.score_animation(exact_only, 0)), 1)
    assert len(opened["data"]) == 2 and opened["layout"]["sliders"][0]["active"] == 1
    # the shallow copy draws the same figure as building the animation at that frame
    for frames_k, k in ((frames, 2), (exact_only, 1)):
        got = json.loads(pio.to_json(at_frame(figure_dict(score.score_animation(frames_k, 0)), k), validate=False))
        assert plain(got) == plain(json.loads(score.score_animation(frames_k, k).to_json()))

# A rerun on the same animation frame, timed around the whole AppTest run (app.py's sidebar and navigation, the
# page, AppTest reading the result), must take under 2 s: with 20 sessions on two cores a control change's p95 is
# under 2 s (docs/measurements.md, the load tests), so one session alone over it recomputes something it need not.
# The field and its animation are cached; the error and the guided field at the new t are computed (about 0.5 s
# on a quiet machine).
CACHED_RERUN_MS = 2000


def _specs(at):
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def test_page_runs_and_its_widgets_change_what_is_shown():
    at = open_page("pages/score.py", dataset="8gaussians", t="0.3")
    specs = _specs(at)
    anim = specs[0]
    assert len(anim["frames"]) == len(score.FRAME_TS) == 21
    assert anim["layout"]["sliders"][0]["active"] == 6  # t = 0.30
    err = next(m for m in at.metric if m.label.startswith("Relative score error"))
    assert 0 < float(err.value) < 1
    assert any("pick one under" in i.value for i in at.info)  # guidance needs a label

    at.sidebar.slider(key="t").set_value(0.7).run()
    assert not at.exception
    assert _specs(at)[0]["layout"]["sliders"][0]["active"] == 14
    assert next(m for m in at.metric if m.label.startswith("Relative score error")).label.endswith("0.70")

    at.select_slider(key="score.arrows").set_value(9).run()
    assert not at.exception
    arrows_trace = _specs(at)[0]["data"][1]
    x = arrows_trace["x"]  # a typed array: {"dtype": "f4", "bdata": base64}
    n_points = len(base64.b64decode(x["bdata"])) // np.dtype(x["dtype"]).itemsize if isinstance(x, dict) else len(x)
    assert n_points == 9 * 9 * 7

    at.sidebar.selectbox(key="label").select("N").run()
    assert not at.exception
    charts = _specs(at)
    assert len(charts) == 3, "field, error curve, guidance"
    guided_before = charts[2]
    at.sidebar.slider(key="w").set_value(4.0).run()
    assert not at.exception
    after = _specs(at)[2]
    assert after != guided_before and "w = 4" in json.dumps(after["layout"]["annotations"])
    assert any("A composed prompt" in c.value for c in at.caption)  # page 7 holds the composed prompt's view
    assert [p.page for p in at.get("page_link")][-1:] == ["reverse"]  # a link to page 7
    start = time.perf_counter()
    at.sidebar.slider(key="t").set_value(0.71).run()  # same frame, cached field: a cheap rerun
    assert 1000 * (time.perf_counter() - start) < CACHED_RERUN_MS


def test_plain_reads_two_encodings_of_one_float32_as_one_number():
    """A float32 array arrives as base64 (decoded to its exact double) from a Figure and as its shortest
    decimal from a plain dict; the figure comparisons above must see one number, whatever the last bits."""
    value = np.float32(7.42305e-23)
    as_base64 = {"dtype": "f4", "bdata": base64.b64encode(np.array([value]).tobytes()).decode()}
    as_text = json.loads(pio.to_json({"x": np.array([value])}, validate=False))["x"]  # orjson: "7.42305e-23"
    assert plain(as_base64) == plain(as_text) == plain([float(value)])
    assert plain(as_text) != plain([float(np.nextafter(value, np.float32(1)))])  # one ulp apart stays apart
