"""Page 1 (data and prompts): the page runs, its widgets change what is shown, and its builders are exact."""

from __future__ import annotations

import base64
import json
import os

import numpy as np
import pytest
import torch

from toy_data import get_dataset
from ui import data
from apptest import open_page

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _specs(at):
    return [c.proto.spec for c in at.get("plotly_chart")]


def _traces(spec):
    return json.loads(spec)["data"]


def _array(value) -> np.ndarray:
    """A trace's array from figure JSON: a list, or plotly's typed array {dtype, bdata}."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value, dtype=float)


@pytest.fixture(scope="module")
def page():
    return open_page("pages/data.py", dataset="moons")


def test_page_widgets_change_what_is_shown(page):
    at = page
    before = _specs(at)
    assert len(before) == 2  # the panels, the prior bars
    assert not at.metric  # no prompt: no hit rate
    assert "Whole distribution p(x)" in before[0] and "Learned samples, no prompt" in before[0]
    # no prompt: p(x | c) would repeat p(x), so there are two panels, not three
    assert "p(x | c)" not in before[0] and {tr.get("xaxis", "x") for tr in _traces(before[0])} == {"x", "x2"}

    at.sidebar.selectbox(key="label").set_value("lower moon").run()
    assert not at.exception
    spec = _specs(at)[0]
    assert spec != before[0] and "c = lower moon" in spec
    hit = float(at.metric[0].value.rstrip("%")) / 100
    assert hit > 0.9  # the learned samples answer the prompt
    # the exact conditional samples all carry the prompted label: one trace per label present in panel 2
    names = {tr["name"] for tr in _traces(spec)
             if tr.get("xaxis") == "x2" and tr["type"] == "scattergl" and len(_array(tr["x"]))}
    assert names == {"lower moon"}

    at.button(key="data.again").click().run()
    again = _specs(at)[0]
    assert again != spec and "c = lower moon" in again  # new points, same prompt
    assert at.session_state["data.seed"] == 1

    at.select_slider(key="data.n").set_value(100).run()
    x_counts = [len(_array(tr["x"])) for tr in _traces(_specs(at)[0]) if tr["type"] == "scattergl"]
    assert sum(x_counts) == 3 * 100
    assert not at.exception


def test_class_prior_is_the_label_weights():
    for name in ("moons", "pinwheel", "8gaussians"):
        dist = get_dataset(name)
        prior = data.class_prior(dist)
        assert prior.shape == (dist.num_classes,)
        assert prior.sum() == pytest.approx(1.0)
        for c in range(dist.num_classes):
            assert prior[c] == pytest.approx(dist.weights[dist.labels == c].sum().item())


def test_exact_samples_are_seeded_and_conditional():
    dist = get_dataset("circles")
    x, y = data.exact_samples(dist, 300, 2, seed=3)
    assert x.shape == (300, 2) and (y == 2).all()
    assert np.array_equal(x, data.exact_samples(dist, 300, 2, seed=3)[0])
    assert not np.array_equal(x, data.exact_samples(dist, 300, 2, seed=4)[0])
    # exact samples of a class lie in that class's region
    assert data.prompt_hit_rate(dist, x, 2) > 0.99


def test_prompt_figure_patch_matches_the_full_figure():
    dist = get_dataset("pinwheel")
    xs, p, pc = data.density_grids(dist, label=3, n=21)
    (ax, ay), (cx, cy) = data.exact_samples(dist, 50, None, 0), data.exact_samples(dist, 50, 3, 1)
    full = data.prompt_figure(dist, xs, p, pc, 3, ax, ay, cx, cy, cx, cy).to_dict()
    base = data.prompt_figure(dist, xs, p, pc, 3, None, None, None, None, learned_panel=True).to_dict()
    from ui.figures import patch

    patched = patch(base, data.prompt_values(dist, ax, ay, cx, cy, cx, cy))
    assert len(full["data"]) == len(patched["data"]) == 3 + 3 * dist.num_classes
    for a, b in zip(full["data"], patched["data"]):
        assert a["name"] == b["name"] if "name" in a else True
        for key in ("x", "y"):
            np.testing.assert_allclose(_array(a[key]), _array(b[key]))
    # no prompt: two panels (p(x), learned), patched the same way
    full = data.prompt_figure(dist, xs, p, None, None, ax, ay, ax, ay, cx, cy).to_dict()
    base = data.prompt_figure(dist, xs, p, None, None, None, None, None, None, learned_panel=True).to_dict()
    patched = patch(base, data.prompt_values(dist, ax, ay, None, None, cx, cy))
    assert len(full["data"]) == len(patched["data"]) == 2 + 2 * dist.num_classes
    for a, b in zip(full["data"], patched["data"]):
        for key in ("x", "y"):
            np.testing.assert_allclose(_array(a[key]), _array(b[key]))


def test_density_grids_match_log_prob():
    dist = get_dataset("moons")
    xs, p, pc = data.density_grids(dist, label=0, n=31)
    i, j = 12, 20
    pt = torch.tensor([[xs[j], xs[i]]], dtype=torch.float64)
    assert p[i, j] == pytest.approx(dist.log_prob(pt).exp().item(), rel=1e-6)
    assert pc[i, j] == pytest.approx(dist.log_prob(pt, 1.0, 0.0, 0).exp().item(), rel=1e-6)
    cell = (xs[1] - xs[0]) ** 2
    assert p.sum() * cell == pytest.approx(1.0, abs=0.02)  # nearly all mass inside [-3, 3]^2


def test_learned_samples_answer_the_prompt():
    from diffusion.models import reschedule
    from diffusion.schedules import make_schedule
    from ui.models import shipped

    model, _ = shipped("moons")
    schedule = make_schedule("cosine")
    x = data.learned_samples(reschedule(model, schedule), schedule, 200, label=1, seed=0)
    assert x.shape == (200, 2) and np.isfinite(x).all()
    assert data.prompt_hit_rate(get_dataset("moons"), x, 1) > 0.9
    assert np.array_equal(x, data.learned_samples(reschedule(model, schedule), schedule, 200, label=1, seed=0))
