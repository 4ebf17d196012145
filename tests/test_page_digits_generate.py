"""Page 9 (generate digits): the page runs and follows its controls; the digit builders are exact."""

import json

import numpy as np
import pytest
import torch

from diffusion.samplers import guided, nfe_of, prior_sample, sample, unconditional_nfe
from diffusion.schedules import make_schedule
from ui import digits, images

from apptest import decode, open_page


class TemplateModel:
    """A fake 10-class image model: x0_hat is a blend of the input and a per-class template (digit c: a bright
    c-th column band), so guidance and composition have something to act on; label -1 / None: the mean template."""

    num_classes = 10

    def __init__(self, schedule):
        self.schedule = schedule
        t = -torch.ones(10, 1, 28, 28)
        for c in range(10):
            t[c, :, :, 2 * c + 2:2 * c + 6] = 1.0
        self.templates = torch.cat([t, t.mean(0, keepdim=True)])  # index 10: no label
        self.calls = 0

    def __call__(self, x, t, label=None):
        self.calls += 1
        b = x.shape[0]
        if label is None:
            idx = torch.full((b,), 10)
        else:
            idx = torch.as_tensor(label).long().expand(b)
            idx = torch.where(idx < 0, 10, idx)
        t = torch.as_tensor(t, dtype=torch.float32).reshape(-1, 1, 1, 1)
        return (1 - t) * 0.3 * x + self.templates[idx]


@pytest.fixture
def fake():
    return TemplateModel(make_schedule("cosine"))


# --- builders -----------------------------------------------------------------------------------------

def test_labels_are_validated_with_a_clear_message(fake):
    assert digits.check_labels([0, 9, None]) == [0, 9, None]
    for bad in ([10], [-1], [3, 12], [2.5], ["3"], [True]):
        with pytest.raises(ValueError, match="from 0 to 9"):
            digits.check_labels(bad)
    with pytest.raises(ValueError, match="at least one digit"):
        digits.check_labels([])
    with pytest.raises(ValueError, match="digit must be an integer from 0 to 9"):
        digits.generate(fake, fake.schedule, [3, 11], 2, steps=2)
    with pytest.raises(ValueError, match="samples per digit must be an integer from 1 to 16"):
        digits.generate(fake, fake.schedule, [3], 0, steps=2)


def test_a_2d_model_is_refused_on_the_digit_pages():
    from ui.models import shipped

    model, _ = shipped("moons")
    with pytest.raises(ValueError, match="2-D points"):
        digits.check_model(model)
    with pytest.raises(ValueError, match="10 digits"):
        digits.check_model(type("M", (), {"num_classes": 3})())


def test_generate_is_guided_sampling_with_shared_noise_per_column(fake):
    sch = fake.schedule
    out = digits.generate(fake, sch, [3, None, 8], per_digit=2, guidance=1.5, sampler="ddim", steps=4, seed=7)
    assert out.shape == (3, 2, 28, 28)
    x = prior_sample(sch, (2, 1, 28, 28), seed=7)
    for r, lab in enumerate([3, None, 8]):
        ref = sample(guided(fake, lab, 1.5), x.clone(), sch, "ddim", 4)
        np.testing.assert_allclose(out[r], ref[:, 0].numpy(), atol=1e-5)
    # the same seed gives the same grid, another seed another one
    np.testing.assert_array_equal(out, digits.generate(fake, sch, [3, None, 8], 2, 1.5, "ddim", 4, 7))
    assert not np.allclose(out, digits.generate(fake, sch, [3, None, 8], 2, 1.5, "ddim", 4, 8))


def test_one_prompt_of_weight_w_is_guidance_with_weight_w_minus_1(fake):
    x = torch.randn(5, 1, 28, 28)
    for w in (0.0, 1.0, 2.5, 4.0):
        composed = digits.compose(fake, [(4, w)])(x, torch.tensor(0.4))
        np.testing.assert_allclose(composed, guided(fake, 4, w - 1)(x, torch.tensor(0.4)), atol=1e-6)
    # and with two prompts: the unconditional guess plus both weighted directions, in one batched network call
    fake.calls = 0
    two = digits.compose(fake, [(3, 2.0), (1, -1.5)])(x, 0.4)
    assert fake.calls == 1
    u, c3, c1 = fake(x, 0.4, None), fake(x, 0.4, 3), fake(x, 0.4, 1)
    np.testing.assert_allclose(two, u + 2.0 * (c3 - u) - 1.5 * (c1 - u), atol=1e-6)
    with pytest.raises(ValueError, match="from 0 to 9"):
        digits.compose(fake, [(3, 1.0), (10, 1.0)])


def test_guidance_sweep_rows_equal_generate_at_each_weight(fake):
    sweep = digits.guidance_sweep(fake, fake.schedule, 2, (0.0, 2.0, 5.0), n=3, sampler="heun", steps=3, seed=4)
    assert sweep.shape == (3, 3, 28, 28)
    for r, w in enumerate((0.0, 2.0, 5.0)):
        np.testing.assert_allclose(sweep[r], digits.generate(fake, fake.schedule, [2], 3, w, "heun", 3, 4)[0],
                                   rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="needs a digit"):
        digits.guidance_sweep(fake, fake.schedule, None)
    with pytest.raises(ValueError, match="guidance weight must be in"):
        digits.guidance_sweep(fake, fake.schedule, 2, (0.0, 30.0))


def test_compose_grid_rows_and_names(fake):
    images, names = digits.compose_grid(fake, fake.schedule, [(3, 2.0), (8, 2.0), (5, 0.0)], n=3, sampler="euler",
                                    steps=3, seed=1, alone=True)
    assert images.shape == (3, 3, 28, 28)
    assert names == ["a 3 (w = 2)", "an 8 (w = 2)", "all together"]
    # each row equals its own composed denoiser from the same starting noise
    x = prior_sample(fake.schedule, (3, 1, 28, 28), seed=1)
    for r, prompts in enumerate([[(3, 2.0)], [(8, 2.0)], [(3, 2.0), (8, 2.0)]]):
        ref = sample(digits.compose(fake, prompts), x.clone(), fake.schedule, "euler", 3)
        np.testing.assert_allclose(images[r], ref[:, 0].numpy(), atol=1e-5)
    assert digits.prompt_text([(7, 3.0), (1, -2.0)]) == "a 7 (w = 3) but not a 1 (w = -2)"
    with pytest.raises(ValueError, match="other than 0"):
        digits.compose_grid(fake, fake.schedule, [(3, 0.0)], n=2, steps=2)


def test_nfe_is_counted_from_the_sampler():
    sch = make_schedule("cosine")
    for sampler in ("ddpm", "ddim", "euler", "dpmpp_2m", "sde"):
        assert nfe_of(sampler, 7) == unconditional_nfe(sch, sampler, 7) == 7
    assert nfe_of("heun", 10) == unconditional_nfe(sch, "heun", 10) == 19  # Heun's last step is a single Euler step
    inside = unconditional_nfe(sch, "euler", 20, interval=(-2.0, 4.0))  # log-SNR in [-2, 4)
    lams = sch.logsnr(torch.linspace(*sch.t_range, 21, dtype=torch.float64)[1:].flip(0))
    assert inside == int(((lams >= -2) & (lams < 4)).sum()) and 0 < inside < 20


def test_tile_layout_and_grid_figure():
    imgs = np.arange(2 * 3 * 4 * 5, dtype=float).reshape(2, 3, 4, 5)
    z = images.tile(imgs, pad=1)
    assert z.shape == (2 * 4 + 1, 3 * 5 + 2)
    np.testing.assert_array_equal(z[5:9, 12:17], imgs[1, 2])  # image (1, 2) at rows 5..8, columns 12..16
    np.testing.assert_array_equal(z[0:4, 6:11], imgs[0, 1])
    assert np.isnan(z[4]).all() and np.isnan(z[:, 5]).all()  # the gaps
    fig = images.grid_figure(np.zeros((2, 3, 28, 28)), ["digit 3", "no label"], "t")
    assert fig.data[0].type == "heatmap" and fig.layout.yaxis.scaleanchor == "x"
    assert list(fig.layout.yaxis.ticktext) == ["digit 3", "no label"]
    assert fig.layout.yaxis.range[0] > fig.layout.yaxis.range[1]  # image rows top to bottom


def test_the_true_label_wins_on_a_template_oracle(fake):
    """A model whose conditional guess is the class template: the image that is template 6 is explained best by 6."""
    x0 = fake.templates[6, 0]
    s = digits.label_scores(fake, fake.schedule, x0, n_draws=12)
    assert s["x0"].shape == (10, 12) and np.isfinite(s["x0"]).all() and np.isfinite(s["eps"]).all()
    assert s["guess_x0"] == 6 and s["guess_eps"] == 6
    assert s["x0_err"][6] < np.delete(s["x0_err"], 6).min()
    assert s["mid"].shape == (10, 28, 28)
    # the shown guesses: the fake's x0_hat at the draw near log-SNR -2
    t_all, eps = digits.shared_draws(fake.schedule, 12)
    k = int(np.argmin(np.abs(t_all.numpy() - s["mid_t"])))
    alpha, sigma = (float(a) for a in fake.schedule.alpha_sigma(t_all[k]))
    assert abs(float(fake.schedule.logsnr(t_all[k])) + 2) < 1.5
    x_t = alpha * x0 + sigma * eps[k, 0]
    np.testing.assert_allclose(s["mid"], (0.3 * (1 - s["mid_t"]) * x_t + fake.templates[:10, 0]).numpy(), atol=1e-5)
    t = s["t"]
    assert (np.diff(t) > 0).all() and fake.schedule.t_range[0] <= t[0] and t[-1] <= fake.schedule.t_range[1]
    fig = digits.scores_figure(s["x0_err"], 6, "x₀")
    extra = s["x0_err"] - s["x0_err"].min()
    assert fig.data[0].customdata[6, 1] == 0 and "label 6" in fig.layout.title.text
    assert fig.data[0].text[6].startswith("true, best")
    # the best label's bar is 0 above itself, yet drawn as a visible stub; the others at their height
    assert fig.data[0].y[6] == pytest.approx(digits.STUB * extra.max()) and fig.data[0].y[6] > 0
    np.testing.assert_allclose(np.delete(fig.data[0].y, 6), np.delete(np.maximum(extra, digits.STUB * extra.max()), 6))
    assert fig.layout.yaxis.range[1] > extra.max()  # room for the labels above the tallest bar
    fig = digits.scores_figure(s["x0_err"], 2, "x₀")  # told the wrong truth: both are marked
    assert fig.data[0].text[2].startswith("true<br>") and fig.data[0].text[6].startswith("best<br>")
    assert fig.data[0].text[0].startswith("+") and "(true label: 2)" in fig.layout.title.text
    assert fig.data[0].marker.line.width[2] > 0 and fig.data[0].marker.line.width[6] == 0


# --- the page --------------------------------------------------------------------------------------------

def _grid(at):
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")][0]


def _z(fig):
    return decode(fig["data"][0]["z"])


def _metrics(at):
    return {m.label: m.value for m in at.get("metric")}


FAST = {"sampler": "ddim", "steps": "3", "digits.sidebar": "true"}  # the sidebar's sampler: 3 DDIM steps, sampled live


@pytest.mark.slow  # samples again after each of many control changes; the page's other AppTests stay fast
def test_page_generates_and_follows_its_controls():
    at = open_page("pages/digits_generate.py", **FAST, **{"digits.sweep.on": "false"})
    at.multiselect(key="digits.pick").set_value([3, 8]).run()
    at.slider(key="digits.per").set_value(2).run()
    assert not at.exception and not at.error
    g0 = _grid(at)
    assert _z(g0).shape == (2 * 28 + 2, 2 * 28 + 2) and g0["layout"]["yaxis"]["ticktext"] == ["digit 3", "digit 8"]
    m = _metrics(at)
    assert m["Digits"] == "4" and m["Function evaluations (NFE)"] == "3" and m["Generation time"].endswith(" s")
    # the page's w = 1 guided for -1.5 <= lambda < 4: of 3 DDIM steps at lambda = -10, -1.1, 1.1 the last two
    assert "w = 1 for -1.5 ≤ λ < 4" in g0["layout"]["title"]["text"] and m["Network calls"] == "5"

    at.multiselect(key="digits.pick").set_value([3, None, 1]).run()
    g1 = _grid(at)
    assert g1["layout"]["yaxis"]["ticktext"] == ["digit 3", "no label", "digit 1"]
    z0, z1 = _z(g0), _z(g1)
    np.testing.assert_allclose(z1[:28], z0[:28], atol=1e-6)  # row "3": same noise, same prompt, same row
    assert z1.shape[0] == 3 * 28 + 4 and not np.allclose(z1[30:58], z0[30:58])

    at.number_input(key="digits.seed").set_value(5).run()
    g2 = _grid(at)
    assert not np.allclose(_z(g2), z1, equal_nan=True)

    at.segmented_control(key="digits.w").set_value(3.0).run()
    assert not at.exception
    g3 = _grid(at)
    assert not np.allclose(_z(g3), _z(g2), equal_nan=True) and "w = 3 for -1.5" in g3["layout"]["title"]["text"]
    at.toggle(key="digits.interval").set_value(False).run()  # guidance over the whole journey
    g_all = _grid(at)
    assert "λ" not in g_all["layout"]["title"]["text"] and not np.allclose(_z(g_all), _z(g3), equal_nan=True)
    assert _metrics(at)["Network calls"] == "6"  # two calls per evaluation
    at.segmented_control(key="digits.w").set_value(0.0).run()
    assert _metrics(at)["Network calls"] == "3" and "w = 0" in _grid(at)["layout"]["title"]["text"]
    at.toggle(key="digits.interval").set_value(True).run()

    at.multiselect(key="digits.pick").set_value([3]).run()
    at.sidebar.selectbox(key="sampler").select("heun").run()
    assert _metrics(at)["Function evaluations (NFE)"] == "5"  # 3 Heun steps, 2 evaluations each but the last
    at.button(key="digits.quick").click().run()  # the quick setting: at most 20 evaluations = 10 Heun steps
    assert at.sidebar.slider(key="steps").value == 10 and _metrics(at)["Function evaluations (NFE)"] == "19"
    assert not any(b.key == "digits.quick" for b in at.button)  # already there: no button
    at.sidebar.slider(key="steps").set_value(3).run()

    at.toggle(key="digits.sweep.on").set_value(True)
    at.slider(key="digits.sweep.n").set_value(2).run()
    s0 = [json.loads(c.proto.spec) for c in at.get("plotly_chart")][1]
    assert s0["layout"]["yaxis"]["ticktext"] == ["w = 0", "w = 1", "w = 3", "w = 6"]
    assert "Digit 3" in s0["layout"]["title"]["text"]
    at.selectbox(key="digits.sweep.digit").set_value(6).run()
    s1 = [json.loads(c.proto.spec) for c in at.get("plotly_chart")][1]
    assert "Digit 6" in s1["layout"]["title"]["text"] and not np.allclose(_z(s1), _z(s0), equal_nan=True)

    at.multiselect(key="digits.pick").set_value([]).run()
    assert not at.exception and "Pick at least one digit" in at.info[0].value


def test_the_first_view_is_the_model_at_its_best_and_computed_ahead():
    """Without any URL: DPM-Solver++(2M) with 20 steps, w = 1 guided only for -1.5 <= lambda < 4, read from
    the shipped presets (so it needs no sampling); w = 0 is one click away, and also computed ahead."""
    at = open_page("pages/digits_generate.py")
    assert not at.exception and not at.error and not at.warning
    assert at.segmented_control(key="digits.w").value == 1.0 and at.toggle(key="digits.interval").value
    assert not at.toggle(key="digits.sidebar").value
    g = _grid(at)
    assert g["layout"]["title"]["text"] == "DPM-Solver++(2M), 20 steps (20 evaluations), guidance w = 1 for -1.5 ≤ λ < 4"
    assert g["layout"]["yaxis"]["ticktext"] == ["digit 1", "digit 3", "digit 7", "digit 8"]
    m = _metrics(at)
    assert m["Function evaluations (NFE)"] == "20" and m["Digits"] == "16"
    assert _metrics(at)["Generation time"] == "instant"  # short enough for its column
    assert "computed ahead of time" in next(x.proto.help for x in at.get("metric") if x.label == "Generation time")
    assert any("99.15%" in c.value and "w = 0" in c.value for c in at.caption)
    sweep = [json.loads(c.proto.spec) for c in at.get("plotly_chart")][1]  # the sweep: also computed ahead
    assert sweep["layout"]["yaxis"]["ticktext"] == ["w = 0", "w = 1", "w = 3", "w = 6"]
    at.segmented_control(key="digits.w").set_value(0.0).run()
    assert "computed ahead of time" in next(x.proto.help for x in at.get("metric") if x.label == "Generation time")
    assert "w = 0" in _grid(at)["layout"]["title"]["text"]


def test_a_shared_link_reopens_the_pages_own_controls():
    query = {**FAST, "digits.pick": ["2", "no label"], "digits.per": "3", "digits.seed": "7", "digits.w": "3",
             "digits.interval": "false", "digits.sweep.digit": "5", "digits.sweep.n": "2"}
    at = open_page("pages/digits_generate.py", **query)
    assert not at.exception and not at.error
    assert at.multiselect(key="digits.pick").value == [2, None] and at.slider(key="digits.per").value == 3
    assert at.number_input(key="digits.seed").value == 7 and at.segmented_control(key="digits.w").value == 3.0
    assert not at.toggle(key="digits.interval").value and at.toggle(key="digits.sidebar").value
    assert at.selectbox(key="digits.sweep.digit").value == 5 and at.slider(key="digits.sweep.n").value == 2
    g = _grid(at)
    assert g["layout"]["yaxis"]["ticktext"] == ["digit 2", "no label"] and _z(g).shape == (2 * 28 + 2, 3 * 28 + 4)
    assert "DDIM, 3 steps" in g["layout"]["title"]["text"] and "w = 3" in g["layout"]["title"]["text"]


@pytest.mark.parametrize("page", ["pages/digits_generate.py", "pages/digits_prompts.py", "pages/digits_journey.py"])
def test_a_wrong_or_missing_checkpoint_gives_a_clear_message(page, monkeypatch):
    import ui.models

    moons, config = ui.models.shipped("moons")  # a 2-D model where the MNIST one should be
    answers = [((moons, config), "wrong kind"), ((None, {"error": "mnist.safetensors is missing"}), "missing")]
    for answer, text in answers:
        monkeypatch.setattr(ui.models, "mnist", lambda answer=answer: answer)
        at = open_page(page, timeout=60)  # asserts that no exception was raised
        assert any(text in e.value for e in at.error), [e.value for e in at.error]
        assert not at.get("plotly_chart")
