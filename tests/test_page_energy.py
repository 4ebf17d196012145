"""Page 2 (energy and the normaliser): its builders against exact values, and the page driven as a user would."""

import json
import math
import pathlib
import time

import numpy as np
import pytest
import torch

from diffusion.likelihood import log_z_grid
from diffusion.metrics import relative_score_error
from diffusion.models import oracle_model
from diffusion.schedules import make_schedule
from toy_data import get_dataset
from toy_data.chain_rule import marginal_log_prob
from ui.energy import (constant_figure, convergence_figure, cost_figure, cost_in_d, cost_story, energy_heatmaps,
                       energy_surfaces, exact_energy, exact_z_convergence, finite_difference_score, grid_log_z,
                       grid_score, learned_energy, partition_function, points_needed, raw_energy, z_convergence)
from ui.figures import view_half_width
from apptest import charts, decode, open_page

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def _energy(dist, alpha, sigma, label=None):
    return lambda p: -dist.log_prob(p, alpha, sigma, label)


@pytest.mark.parametrize("name,t,label", [("moons", 0.0, None), ("8gaussians", 0.4, None), ("grid", 0.1, 2)])
def test_z_of_a_normalised_energy_is_one(name, t, label):
    dist, sched = get_dataset(name), make_schedule("cosine")
    alpha, sigma = (float(a) for a in sched.alpha_sigma(t))
    z = partition_function(_energy(dist, alpha, sigma, label), 300, 6.0)
    assert z["Z"] == pytest.approx(1.0, abs=2e-3)
    assert z["evaluations"] == 300 * 300


def test_adding_c_scales_z_by_exp_minus_c_and_keeps_the_score():
    dist = get_dataset("8gaussians")
    alpha, sigma = 0.9, 0.4
    energy = _energy(dist, alpha, sigma)
    z0 = partition_function(energy, 120, 5.0)
    for c in (-20.0, 3.0, 700.0):  # 700: Z itself underflows to ~e^-700, log Z must not
        zc = partition_function(energy, 120, 5.0, c)
        assert zc["log_Z"] == pytest.approx(z0["log_Z"] - c, abs=1e-9)
    x = np.array([[0.3, -0.7], [1.5, 1.1], [-2.0, 0.1]])
    s0 = finite_difference_score(lambda p: energy(p).numpy(), x)
    sc = finite_difference_score(lambda p: energy(p).numpy() + 5.0, x)
    np.testing.assert_allclose(sc, s0, atol=1e-8)
    exact = dist.score(torch.from_numpy(x), alpha, sigma).numpy()
    np.testing.assert_allclose(s0, exact, rtol=1e-5, atol=1e-6)


def test_log_z_of_a_drawn_grid():
    dist = get_dataset("8gaussians")
    xs, E = exact_energy(dist, 0.8, 0.6, None, n=161, half=6.0)
    assert grid_log_z(E, xs) == pytest.approx(0.0, abs=1e-3)
    assert grid_log_z(E, xs, c=2.5) == pytest.approx(-2.5, abs=1e-3)


def test_grid_score_of_the_exact_energy_is_the_exact_score():
    dist = get_dataset("8gaussians")
    alpha, sigma = 0.8, 0.6
    xs, E = exact_energy(dist, alpha, sigma, None, n=201, half=4.0)
    u, w = grid_score(E, xs)
    gx, gy = np.meshgrid(xs, xs)
    exact = dist.score(torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], -1)), alpha, sigma).numpy()
    inner = (slice(1, -1), slice(1, -1))
    np.testing.assert_allclose(u[inner], exact[:, 0].reshape(201, 201)[inner], atol=2e-3)
    np.testing.assert_allclose(w[inner], exact[:, 1].reshape(201, 201)[inner], atol=2e-3)


def test_ode_energy_of_the_exact_denoiser_matches_log_prob():
    dist, sched = get_dataset("8gaussians"), make_schedule("cosine")
    t = 0.5
    alpha, sigma = (float(a) for a in sched.alpha_sigma(t))
    xs, E, secs = learned_energy(oracle_model(dist, sched), t, None, n=5, half=2.0, steps=16)
    _, exact = exact_energy(dist, alpha, sigma, None, n=5, half=2.0)
    assert secs > 0
    np.testing.assert_allclose(E, exact, atol=0.05)


def test_cost_story_is_computed_not_hard_coded():
    story = cost_story(10, 784)
    assert story["log10_evaluations"] == pytest.approx(784.0)
    assert story["log10_years"] == pytest.approx(784 - 9 - math.log10(365.25 * 86400))
    assert story["beats_atoms"]
    assert story["max_dim_in_a_day"] == 13  # 10^13 <= 8.64e13 evaluations < 10^14
    assert cost_story(2, 100)["beats_atoms"] is False  # 2^100 ~ 1e30
    np.testing.assert_allclose(cost_in_d(100, [1, 2, 784]), [2, 4, 1568])
    conv = {4: math.log(0.9), 8: math.log(0.995), 16: 0.0}
    assert points_needed(conv) == 8


def test_figures_put_exact_beside_learned():
    dist = get_dataset("moons")
    xs, E = exact_energy(dist, 1.0, 0.3, None, n=30)
    fig = energy_heatmaps(xs, E, xs, E + 0.1)
    assert [a.text for a in fig.layout.annotations] == ["Exact", "Learned"]
    assert energy_surfaces(xs, E, xs, E).data[1].type == "surface"
    fig_c = constant_figure(xs, E, 2.0)
    # the arrows of E and of E + c are the same line segments
    for axis in ("x", "y"):
        a, b = (np.array(fig_c.data[i][axis], dtype=float) for i in (1, 3))  # None (pen up) becomes NaN
        np.testing.assert_allclose(a, b, atol=1e-12)
    assert np.allclose(np.asarray(fig_c.data[2].z) - np.asarray(fig_c.data[0].z), 2.0)
    conv = z_convergence(_energy(dist, 1.0, 0.3), 3.0, ns=(4, 8, 16))
    full = exact_z_convergence(dist, 1.0, 0.3, None, 3.0)  # what the page hands to the worker
    assert all(full[n] == pytest.approx(conv[n], abs=1e-12) for n in conv)
    assert len(convergence_figure(conv).data[0].x) == 2
    cost = cost_figure(10)
    assert cost.data[0].y[-1] == pytest.approx(784.0) and list(cost.data[3].x) == [2, 784]


# A rerun whose heavy work is cached, timed around the whole AppTest run (app.py's sidebar and navigation, the
# page, AppTest reading the result), must take under 2 s: with 20 sessions on two cores a control change's p95
# is under 2 s (docs/measurements.md, the load tests), so one session alone over it recomputes something on every
# run. This one takes about 0.06 s on a quiet machine.
CACHED_RERUN_MS = 2000


def _metric(at, label_start):
    return next(m.value for m in at.metric if m.label.startswith(label_start))


def test_page_runs_and_its_widgets_change_what_is_shown():
    at = open_page("pages/energy.py", dataset="8gaussians", t="0.5")
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    assert len(specs) == 8  # landscape, surface, Z's convergence, cost, constant, energy head (two), chain rule
    heat = json.loads(specs[0])
    assert len(heat["data"]) == 4, "exact and learned heat maps with contours"
    assert float(_metric(at, "Z (grid")) == pytest.approx(1.0, abs=0.01)
    assert _metric(at, "Energy evaluations") == "3,600"

    at.slider(key="energy.n").set_value(20).run()
    assert not at.exception
    assert _metric(at, "Energy evaluations") == "400"
    assert at.get("plotly_chart")[3].proto.spec != specs[3]  # the n^d curve moved

    s_before = _metric(at, "Score at (0.5, 0.5) from E + c")
    at.number_input(key="energy.c").set_value(3.0).run()
    assert not at.exception
    z = float(_metric(at, "Z (grid"))
    assert float(_metric(at, "Z of E + c")) == pytest.approx(z * math.exp(-3.0), rel=1e-3)
    assert _metric(at, "Score at (0.5, 0.5) from E + c") == s_before == _metric(at, "Score at (0.5, 0.5) from E")

    at.sidebar.slider(key="t").set_value(0.8).run()
    assert not at.exception
    assert at.get("plotly_chart")[0].proto.spec != specs[0]
    heat_08 = at.get("plotly_chart")[0].proto.spec
    score_08 = _metric(at, "Score at (0.5, 0.5) from E")
    at.sidebar.slider(key="t").set_value(0.79).run()  # the landscape moves in steps of 0.05: the same maps
    assert at.get("plotly_chart")[0].proto.spec == heat_08
    assert any("Drawn at t = 0.80" in c.value for c in at.caption)
    assert _metric(at, "Score at (0.5, 0.5) from E") != score_08  # the probe follows the sidebar's t itself
    start = time.perf_counter()
    at.number_input(key="energy.c").set_value(1.0).run()  # a cached rerun: everything but c is cached
    assert 1000 * (time.perf_counter() - start) < CACHED_RERUN_MS


def test_an_energy_head_shows_its_raw_energy_and_its_z():
    """A model trained as an energy head: the page says so (not "predicts velocity") and draws its raw E_θ,
    whose grid Z_θ normalises it: E_θ + log Z_θ integrates to one over the box."""
    from streamlit.testing.v1 import AppTest

    from diffusion.models import DiffusionModel
    from diffusion.nets import MLP2D, MLPConfig
    from diffusion.schedules import make_schedule

    torch.manual_seed(0)
    net = MLP2D(MLPConfig(width=16, depth=1, num_classes=2, scalar_out=True))
    model = DiffusionModel(net, "energy", make_schedule("cosine"), 2).requires_grad_(False)
    info = {"parameterization": "energy", "schedule": "cosine", "train": {"steps_done": 1}, "source": "session",
            "id": "energy-test"}
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params.update({"dataset": "moons", "t": "0.5", "model": "session", "energy.head": "session"})
    at.session_state["trained"] = {"moons": (model, info)}
    at.run()
    at.switch_page("pages/energy.py").run()
    assert not at.exception, at.exception
    text = " ".join(c.value for c in at.caption)
    assert "predicts" not in text.split("not an energy")[0][-200:] and "outputs an energy" in text
    log_z = float(_metric(at, "log Z_θ at t = 0.50"))
    half = view_half_width(*(float(a) for a in make_schedule("cosine").alpha_sigma(0.5)))
    xs, E_raw, _ = raw_energy(model, 0.5, None, 40, half)
    assert log_z == pytest.approx(log_z_grid(model, 0.5, None, 128, half), abs=5e-4)  # shown to 3 decimals
    assert float(_metric(at, "Lowest raw E_θ")) == pytest.approx(E_raw.min(), abs=0.005)
    assert any("Raw E_θ" in c.proto.spec for c in at.get("plotly_chart"))


def test_raw_energy_is_the_energy_whose_slope_is_the_score():
    """-grad E_θ (central differences of the raw energy) is the model's score, under its own schedule and
    rescheduled to another (where E_θ shifts only by a constant)."""
    from diffusion.models import DiffusionModel, reschedule
    from diffusion.nets import MLP2D, MLPConfig

    torch.manual_seed(1)
    net = MLP2D(MLPConfig(width=16, depth=1, scalar_out=True)).double()
    model = DiffusionModel(net, "energy", make_schedule("cosine"), 0).requires_grad_(False)
    x = torch.tensor([[0.3, -0.7], [1.1, 0.4]], dtype=torch.float64)
    step = 1e-5  # float64 central differences: truncation ~h^2 |E'''| and round-off ~1e-16 / h, both < 1e-8
    for m in (model, reschedule(model, make_schedule("linear"))):
        grad = torch.stack([(m.energy(x + step * e, 0.4) - m.energy(x - step * e, 0.4)) / (2 * step)
                            for e in torch.eye(2, dtype=torch.float64)], -1)
        torch.testing.assert_close(-grad, m.score(x, 0.4), rtol=1e-6, atol=1e-8)


HEADS = ROOT / "checkpoints" / "energy"


@pytest.mark.parametrize("name", ["moons", "8gaussians"])
def test_the_shipped_energy_heads_load_and_their_log_z_drifted_while_training(name):
    from diffusion.checkpoints import load_checkpoint
    from diffusion.likelihood import LOG_Z_TIMES
    from ui.energy_head import drift, history_of

    model, config = load_checkpoint(HEADS / f"{name}.safetensors", expect={"parameterization": "energy"})
    history = history_of(config)
    assert history is not None and history["t"] == list(LOG_Z_TIMES)
    steps = config["train"]["steps_done"]
    assert history["steps"][-1] == steps and len(history["steps"]) >= 40
    # the last record is the saved (EMA) weights' log Z: the same float32 network on the same grid
    for t, logged in zip(history["t"], history["log_z"][-1]):
        assert log_z_grid(model, t) == pytest.approx(logged, abs=1e-4)
    # Drift: log Z_theta moved over training by far more than it wobbles between the last five records.
    moves = drift(history)
    assert any(abs(change) > 10 * max(wobble, 1e-3) for change, wobble in moves.values()), moves


def test_page_shows_the_shipped_energy_head_with_its_z_and_the_chain_rule():
    from diffusion.checkpoints import load_checkpoint
    from diffusion.models import reschedule
    from ui import energy_head
    from ui.energy_head import history_of

    at = open_page("pages/energy.py", dataset="moons", t="0.3")
    model, config = load_checkpoint(HEADS / "moons.safetensors")
    cosine = make_schedule("cosine")
    alpha, sigma = (float(a) for a in cosine.alpha_sigma(0.3))
    half = view_half_width(alpha, sigma)
    log_z = float(_metric(at, "log Z_θ at t = 0.30"))
    assert log_z == pytest.approx(log_z_grid(reschedule(model, cosine), 0.3, None, 128, half), abs=5e-4)
    assert float(_metric(at, "Change from the next coarser grid")) < 1e-3  # the grid has settled
    err = float(_metric(at, "Score error of −∇E_θ").rstrip("%")) / 100
    exact_err = relative_score_error(reschedule(model, cosine), get_dataset("moons"), cosine, (0.3,), 2000)["0.3"]
    assert err == pytest.approx(exact_err, abs=6e-4)  # shown to 0.1%
    assert err < 0.5  # a trained head's -grad E_theta is close to the exact score
    figs = charts(at)
    z_fig = next(f for f in figs if "log Z_θ(t) while training" in json.dumps(f["layout"], ensure_ascii=False))
    lines = [tr for tr in z_fig["data"] if tr.get("xaxis") == "x2"]
    history = history_of(config)
    assert len(lines) == 3 and list(decode(lines[0]["x"])) == history["steps"]
    grid_line = next(tr for tr in z_fig["data"] if tr.get("xaxis", "x") == "x")
    assert list(decode(grid_line["x"])) == list(energy_head.GRID_NS)
    assert any("log Z_θ moved by" in c.value for c in at.caption)

    chain = next(f for f in figs if "p(x₂ | x₁ = 0.00)" in json.dumps(f["layout"], ensure_ascii=False))
    at.slider(key="energy.a").set_value(1.0).run()
    assert not at.exception
    assert any("p(x₂ | x₁ = 1.00)" in json.dumps(f["layout"], ensure_ascii=False) for f in charts(at))
    assert chain is not None and any("Energy-distance ratio" in c.value for c in at.caption)


def test_a_dataset_without_an_energy_head_says_where_one_is():
    at = open_page("pages/energy.py", dataset="spiral", t="0.3")
    text = " ".join(i.value for i in at.info)
    assert "Two moons" in text and "page 5" in text and "Network predicts: energy" in text


@pytest.mark.parametrize("a", [-1.3, 0.0, 0.85])
def test_the_chain_rule_figure_moved_to_a_is_the_figure_drawn_at_a(a):
    """The page draws one figure per dataset and moves its four a-dependent traces (at_a): it must be exactly
    the figure built from scratch at a."""
    import plotly.io as pio

    from ui.autoregressive import at_a, chain_rule_figure, chain_rule_samples, curves
    from ui.figures import figure_dict

    dist = get_dataset("8gaussians")
    samples = chain_rule_samples(dist, n=200)
    base = figure_dict(chain_rule_figure(curves(dist, 0.4), samples, 0.4))
    c = curves(dist, a)
    moved = json.loads(pio.to_json(at_a(base, c, a)))
    assert moved == json.loads(pio.to_json(figure_dict(chain_rule_figure(c, samples, a))))
    p = torch.exp(marginal_log_prob(dist, torch.tensor([a], dtype=torch.float64))).item()
    # The marker sits on p(x1 = a), read off the curve by linear interpolation (step h = 0.01): relative error
    # h^2 |p''| / (8 p) <= h^2 (z^2 - 1) / (8 s^2) < 5e-3 within z = 3 of a component of width s = 0.14.
    assert moved["data"][1]["y"][1] == pytest.approx(p, rel=5e-3)


def test_a_damaged_or_wrong_energy_head_file_is_refused_with_a_reason(tmp_path):
    from ui.energy_head import shipped_datasets, shipped_head

    (tmp_path / "moons.safetensors").write_bytes(b"not a checkpoint")
    (tmp_path / "circles.safetensors").write_bytes((ROOT / "checkpoints" / "circles.safetensors").read_bytes())
    assert shipped_datasets(str(tmp_path)) == ["circles", "moons"]
    for name in ("moons", "circles", "spiral"):  # garbage, a v-prediction model, no file
        model, info = shipped_head(name, str(tmp_path))
        assert model is None and info["error"], name
    assert "parameterization" in shipped_head("circles", str(tmp_path))[1]["error"]


def test_an_energy_head_trained_on_page_5_shows_its_log_z_drift_on_page_2():
    """Page 5's training job records log Z_theta(t) while an energy head trains; page 2 draws that record."""
    from streamlit.testing.v1 import AppTest

    from ui.live_metrics import LiveKL
    from ui.training import TrainingJob, make_config

    dist = get_dataset("moons")
    job = TrainingJob(dist, "moons", "moons", "energy", make_schedule("cosine"), make_config(60, 128, 3e-3, "eps", "cpu"))
    job.kl = LiveKL(dist, live_points=50, final_points=50, share=0.0)  # its KL is not what this test is about
    job.start().join(120)
    assert job.state == "done", job.error
    info = {**job.info(), "source": "session", "id": "energy-drift-test"}
    history = info["train"]["log_z_history"]
    assert history["steps"] == [25, 50, 60]  # every max(25, 60 // 40) steps, and the last
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params.update({"dataset": "moons", "t": "0.5", "model": "session", "energy.head": "session"})
    at.session_state["trained"] = {"moons": (job.result.model, info)}
    at.run()
    at.switch_page("pages/energy.py").run()
    assert not at.exception, at.exception
    drawn = next(c for c in charts(at) if any(tr.get("name") == "t = 0.05" for tr in c["data"]))
    for j, t in enumerate(history["t"]):
        line = next(tr for tr in drawn["data"] if tr.get("name") == f"t = {t:g}")
        assert list(decode(line["x"])) == history["steps"]
        np.testing.assert_allclose(decode(line["y"]), [row[j] for row in history["log_z"]], rtol=0, atol=1e-9)
