"""Page 7 (reverse sampling): the page runs, follows its controls, and its builders are exact."""

import json
import pathlib

import numpy as np
import pytest
import torch

from diffusion.metrics import EnergyReference
from diffusion.models import oracle_model
from diffusion.samplers import prior_sample
from diffusion.schedules import make_schedule
from toy_data import get_dataset
from ui import reverse
from apptest import open_page

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _charts(at):
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _metrics(at):
    return {m.label: m.value for m in at.get("metric")}


@pytest.fixture(scope="module")
def page():
    return open_page("pages/reverse.py", dataset="8gaussians", steps="8", sampler="ddpm")


def test_exact_beside_learned_then_the_controls_change_what_is_shown(page):
    at = page
    anim = _charts(at)[0]
    assert [a["text"] for a in anim["layout"]["annotations"][:2]] == ["Exact", "Learned"]
    assert len(anim["frames"]) == 9  # 8 steps: 9 states, all of them frames
    m = _metrics(at)
    assert float(m["ED ratio, exact"]) > 0 and float(m["ED ratio, learned"]) > 0 and m["Model evaluations"] == "8"
    lo, hi = (float(v) for v in m["Fresh exact samples"].split(" to "))  # the spread of a perfect sampler
    assert 0.1 < lo < 1 < hi < 5
    band = [tr for c in _charts(at) for tr in c["data"] if "fresh exact samples" in tr.get("name", "")]
    assert len(band) == 1 and min(band[0]["y"]) == pytest.approx(lo, abs=0.005)
    assert any(f"read {lo:.2f} to {hi:.2f}" in c.value for c in at.caption)
    assert not any(h.value == "What guidance does" for h in at.header)  # no label, no guidance section
    _check_composed_section(at)

    at.radio(key="reverse.model").set_value("Exact oracle only").run()
    assert not at.exception
    anim1 = _charts(at)[0]
    assert [a["text"] for a in anim1["layout"]["annotations"]][:1] == ["Exact"]
    assert "ED ratio, learned" not in _metrics(at)

    at.sidebar.slider(key="steps").set_value(12).run()
    assert not at.exception
    anim2 = _charts(at)[0]
    assert len(anim2["frames"]) == 13 and _metrics(at)["Model evaluations"] == "12"

    at.sidebar.selectbox(key="sampler").select("ddim").run()  # DDIM brings its eta slider
    assert not at.exception
    before = _charts(at)[0]["frames"][-1]["data"][1]
    at.slider(key="reverse.eta").set_value(1.0).run()
    assert not at.exception
    assert _charts(at)[0]["frames"][-1]["data"][1] != before
    assert any("DDIM" in h.value and "η = 1" in h.value for h in at.subheader)

    ed_before = _metrics(at)["ED ratio, exact"]
    at.sidebar.selectbox(key="label").select(at.sidebar.selectbox(key="label").options[1]).run()
    assert not at.exception
    assert any("label" in h.value for h in at.subheader) and _metrics(at)["ED ratio, exact"] != ed_before


def _check_composed_section(at):
    """The composed prompt's section, at its defaults on 8gaussians: E (2) AND NOT NE (1)."""
    assert any(h.value == "A composed prompt: a AND NOT b" for h in at.header)
    fig = next(c for c in _charts(at) if any("composed target" in tr.get("name", "") for tr in c["data"]))
    assert [a["text"] for a in fig["layout"]["annotations"]] == ["Exact samples of the target",
                                                                 "Exact: composed samples", "Learned: composed samples"]
    table = at.dataframe[0].value
    assert list(table["cloud"]) == ["exact sample of the composed target", "exact sample of p(x | E)",
                                    "Exact, composed ODE", "Exact, composed SDE",
                                    "Learned, composed ODE", "Learned, composed SDE"]
    ratio = table["ED ratio to the composed target"].map(lambda r: float(r.replace(",", "")))
    assert ratio[0] < 3 < 20 < ratio[1]  # an exact sample reads as exact; p(x | E) is not the target
    assert any("cells" in c.value and "wide" in c.value for c in at.caption)  # the exact sampler's cell size
    at.selectbox(key="reverse.not").select("E").run()  # the same label twice: a message, not a traceback
    assert not at.exception and any("two different labels" in i.value for i in at.info)
    at.selectbox(key="reverse.not").select("NE").run()
    assert not at.exception and len(at.dataframe) == 1


def test_run_and_frames_are_the_trajectory():
    dist, sched = get_dataset("moons"), make_schedule("cosine")
    traj = reverse.run(oracle_model(dist, sched), sched, "euler", 6, n=50, seed=3)
    assert torch.equal(traj.xs[0], prior_sample(sched, (50, 2), seed=3))
    fig = reverse.sampling_animation(dist, sched, {"Exact": traj}, tracked=(0, 1), grid_n=10)
    assert len(fig.frames) == 7
    finals = dist.nearest_label(traj.xs[-1]).numpy()
    for k, frame in enumerate(fig.frames):
        pts = np.concatenate([np.stack([frame.data[1 + c].x, frame.data[1 + c].y], 1) for c in range(2)])
        want = np.concatenate([traj.xs[k].numpy()[finals == c] for c in range(2)])
        assert np.allclose(pts, want, atol=1e-3)
        assert np.allclose(frame.data[5].x, reverse.x0_hat_at(traj, k)[:2, 0].numpy(), atol=1e-3)  # the x0_hat crosses
    idx = reverse.frame_indices(201)
    assert idx == sorted(set(idx)) and len(idx) == 61
    assert reverse.frame_indices(201)[0] == 0 and reverse.frame_indices(201)[-1] == 200
    assert reverse.frame_indices(10) == list(range(10))


def test_ode_is_deterministic_and_sde_is_not_from_the_same_start():
    dist, sched = get_dataset("circles"), make_schedule("cosine")
    model = oracle_model(dist, sched)
    x = prior_sample(sched, (40, 2), seed=7)
    a = reverse.run(model, sched, "heun", 10, seed=1, x_start=x)
    b = reverse.run(model, sched, "heun", 10, seed=2, x_start=x)
    c = reverse.run(model, sched, "sde", 10, seed=1, x_start=x)
    d = reverse.run(model, sched, "sde", 10, seed=2, x_start=x)
    assert torch.equal(a.xs[-1], b.xs[-1]) and not torch.equal(c.xs[-1], d.xs[-1])
    assert torch.equal(c.xs[0], a.xs[0])
    fig = reverse.ode_sde_figure(dist, a, c, n_paths=3, grid_n=10)
    paths = [tr for tr in fig.data if getattr(tr, "mode", None) == "lines"]
    assert len(paths) == 6 and np.allclose(paths[0].x, a.xs[:, 0, 0].numpy(), atol=1e-3)
    assert np.allclose(paths[3].x, c.xs[:, 0, 0].numpy(), atol=1e-3)
    starts = [(tr.x[0], tr.y[0]) for tr in fig.data if tr.name == "its start (the same in both)"]
    assert len(starts) == 6 and starts[:3] == starts[3:]  # the rings mark the one shared start in both panels


def test_exact_oracle_with_heun_50_steps_reads_as_the_truth():
    dist, sched = get_dataset("moons"), make_schedule("cosine")
    ref = EnergyReference(dist, 2000)
    traj = reverse.run(oracle_model(dist, sched), sched, "heun", 50, n=2000, seed=1)
    assert ref.ratio(traj.xs[-1]) < 2
    bad = reverse.run(oracle_model(dist, sched), sched, "euler", 2, n=2000, seed=1)  # two Euler steps: visibly off
    assert ref.ratio(bad.xs[-1]) > 3
    from diffusion.metrics import energy_distance
    x = traj.xs[-1]
    assert np.isclose(ref.distances(x)[0], energy_distance(x, ref.refs[0]), rtol=1e-9)


def test_x0_hat_figure_follows_the_predictions():
    dist, sched = get_dataset("moons"), make_schedule("cosine")
    traj = reverse.run(oracle_model(dist, sched), sched, "heun", 5, n=10, seed=0)
    fig = reverse.x0_hat_figure(dist, sched, traj, tracked=(0,), grid_n=10)
    assert np.allclose(fig.data[2].x, traj.x0_hats[:, 0, 0].numpy(), atol=1e-3)
    dist_to_final = np.linalg.norm(traj.x0_hats[:, 0].numpy() - traj.xs[-1, 0].numpy(), axis=1)
    assert np.allclose(fig.data[3].y, dist_to_final)


@pytest.mark.slow  # a second AppTest of the page; test_exact_beside_learned_... opens it in the fast loop
def test_guidance_section_shows_the_tilted_density_and_numbers_only_when_guiding():
    at = open_page("pages/reverse.py", dataset="8gaussians", steps="8", sampler="ddpm", label="E", w="3")
    assert any(h.value == "What guidance does" for h in at.header)
    fig = next(c for c in _charts(at) if any("tilted" in tr.get("name", "") for tr in c["data"]))
    names = [tr.get("name", "") for tr in fig["data"]]
    assert names.count("guided ODE samples") == 2 and names.count("guided SDE samples") == 2  # exact and learned
    assert [a["text"] for a in fig["layout"]["annotations"]] == ["Exact: guided samples", "Learned: guided samples"]
    table = at.dataframe[0].value
    assert list(table["cloud"]) == ["exact sample of p(x | c)", "exact sample of the tilted density",
                                    "Exact, guided ODE", "Exact, guided SDE",
                                    "Learned, guided ODE", "Learned, guided SDE"]
    ode_mean = float(table["mean (x₁, x₂)"][2].strip("()").split(",")[0])
    assert ode_mean == pytest.approx(1.71, abs=0.03)  # the tilted density's is 1.40 (tests/test_guidance_truth.py)
    assert float(table["ED ratio to the tilted density"][2]) > 20 > float(table["ED ratio to the tilted density"][1])
    assert any("tilt keeps" in c.value for c in at.caption)
    assert any("which guidance does not sample" in c.value for c in at.caption)
    assert not any("purer" in c.value or "more typical" in c.value for c in at.caption)

    # The section's own w reruns the section alone; less guidance, a mean nearer p(x | E)'s 1.41 (its standard
    # error is 0.002 at 2,000 points).
    at.slider(key="reverse.gw").set_value(1.0).run()
    assert not at.exception and not at.warning
    ode_w1 = float(at.dataframe[0].value["mean (x₁, x₂)"][2].strip("()").split(",")[0])
    assert 1.41 < ode_w1 < ode_mean - 0.05
    at.sidebar.slider(key="w").set_value(2.0).run()  # the sidebar's w moves: the section's follows it
    assert not at.exception and at.slider(key="reverse.gw").value == 2.0

    at.sidebar.slider(key="w").set_value(0.0).run()
    assert not at.exception
    assert not any(h.value == "What guidance does" for h in at.header)
    assert not any("guided" in c for t in at.dataframe for c in t.value["cloud"])
    assert not any("tilted" in tr.get("name", "") for c in _charts(at) for tr in c["data"])
