"""Page 11 (prompts on digits): composition and the generator-as-classifier follow their controls."""


import numpy as np
import pytest

from ui.models import mnist

from apptest import charts, decode, open_page


def _z(fig):
    return decode(fig["data"][0]["z"])


def _bars(at):
    (fig,) = [f for f in charts(at) if f["data"][0]["type"] == "bar"]
    return fig


def _y(fig):
    return decode(fig["data"][0]["y"])


@pytest.fixture(scope="module")
def page():
    return open_page("pages/digits_prompts.py", sampler="ddim", steps="3", **{"prompts.sidebar": "true"})


@pytest.mark.slow  # samples again after each of many control changes; the page's other AppTests stay fast
def test_composition_follows_digits_weights_and_presets(page):
    at = page
    at.slider(key="prompts.n").set_value(4).run()
    at.select_slider(key="prompts.draws").set_value(8).run()
    assert not at.exception and not at.error
    g0 = charts(at)[0]
    assert "a 3 (w = 2) and an 8 (w = 2)" in g0["layout"]["title"]["text"]
    z0 = _z(g0)
    assert z0.shape == (28, 4 * 28 + 3 * 2)

    at.slider(key="prompts.w1").set_value(-1.5).run()  # "a 3 but not an 8"
    g1 = charts(at)[0]
    assert "a 3 (w = 2) but not an 8 (w = -1.5)" in g1["layout"]["title"]["text"]
    assert not np.allclose(_z(g1), z0)

    at.selectbox(key="prompts.c0").set_value(5).run()
    g2 = charts(at)[0]
    assert "a 5 (w = 2)" in g2["layout"]["title"]["text"] and not np.allclose(_z(g2), _z(g1))

    at.checkbox(key="prompts.alone").check().run()
    g3 = charts(at)[0]
    assert g3["layout"]["yaxis"]["ticktext"] == ["a 5 (w = 2)", "anything but not an 8 (w = -1.5)", "all together"]
    np.testing.assert_allclose(_z(g3)[60:88], _z(g2), atol=2e-3)  # the composed row, same noise: unchanged

    at.button(key="prompts.preset.a 7 but not a 1").click().run()
    assert not at.exception
    assert "a 7 (w = 3) but not a 1 (w = -2)" in charts(at)[0]["layout"]["title"]["text"]
    at.button(key="prompts.preset.a 4 and a 9 but not a 1").click().run()
    assert at.radio(key="prompts.k").value == 3
    assert "a 4 (w = 2) and a 9 (w = 2) but not a 1 (w = -1.5)" in charts(at)[0]["layout"]["title"]["text"]

    for i in range(3):
        at.slider(key=f"prompts.w{i}").set_value(0.0)
    at.run()
    assert not at.exception and any("Every weight is 0" in i.value for i in at.info)


def test_classifier_bars_follow_the_test_digit(page):
    at = page
    at.slider(key="prompts.index").set_value(0).run()
    b0 = _bars(at)
    y0 = _y(b0)
    assert y0.shape == (10,) and np.isfinite(y0).all() and y0.min() > 0  # the best label: a visible stub
    labels = {m.label: m.value for m in at.get("metric")}
    assert labels["True label"] == "7"  # MNIST test digit 0 is a 7
    assert b0["data"][0]["marker"]["color"][7] != b0["data"][0]["marker"]["color"][0]  # the true label highlighted

    at.slider(key="prompts.index").set_value(1).run()
    b1 = _bars(at)
    assert not np.allclose(_y(b1), y0)
    assert {m.label: m.value for m in at.get("metric")}["True label"] == "2"
    assert "(true label: 2)" in b1["layout"]["title"]["text"]

    at.radio(key="prompts.weighting").set_value("eps").run()
    assert "ε error" in _bars(at)["layout"]["yaxis"]["title"]["text"]

    at.button(key="prompts.random").click().run()
    assert not at.exception


@pytest.mark.slow  # a quality check of the shipped checkpoint (seconds of scoring), no page code
def test_shipped_model_classifies_when_trained():
    """Quality check of the shipped checkpoint, only once it is a trained model (else only shapes)."""
    from diffusion.models import reschedule
    from diffusion.schedules import make_schedule
    from toy_data.mnist import load_mnist
    from ui import digits

    model, config = mnist.__wrapped__() if hasattr(mnist, "__wrapped__") else mnist()
    assert model is not None, config
    images, labels = load_mnist("test")
    trained = config["train"]["steps_done"] >= 4000
    idx = range(10) if trained else range(1)
    m = reschedule(model, make_schedule("cosine"))
    right = 0
    for i in idx:
        s = digits.label_scores(m, m.schedule, images[i, 0], n_draws=16)
        assert s["x0"].shape == (10, 16) and np.isfinite(s["x0"]).all()
        right += s["guess_x0"] == int(labels[i])
    if trained:
        assert right >= 6


@pytest.mark.slow  # two more AppTests of the page, one of them sampling live
def test_the_first_view_is_computed_ahead_and_a_link_keeps_the_controls():
    at = open_page("pages/digits_prompts.py")
    assert not at.exception and not at.error and not at.warning
    g = charts(at)[0]
    assert "a 3 (w = 2) and an 8 (w = 2)" in g["layout"]["title"]["text"] and _z(g).shape == (28, 8 * 28 + 7 * 2)
    assert any("DPM-Solver++(2M), 20 steps" in c.value and "computed ahead of time" in c.value for c in at.caption)
    assert any("computed ahead of time" in c.value for c in at.caption if "shared (t, ε) draws" in c.value)
    at.button(key="prompts.preset.a 7 but not a 1").click().run()  # a preset: also computed ahead
    assert any("computed ahead of time" in c.value for c in at.caption if "DPM-Solver++" in c.value)

    query = {"prompts.sidebar": "true", "sampler": "ddim", "steps": "2", "prompts.k": "3", "prompts.c0": "4",
             "prompts.w0": "1.5", "prompts.c2": "1", "prompts.w2": "-1", "prompts.n": "4", "prompts.seed": "3",
             "prompts.alone": "true", "prompts.index": "5", "prompts.draws": "8", "prompts.weighting": "eps"}
    at = open_page("pages/digits_prompts.py", **query)
    assert not at.exception and not at.error
    assert at.radio(key="prompts.k").value == 3 and at.selectbox(key="prompts.c0").value == 4
    assert at.slider(key="prompts.w0").value == 1.5 and at.slider(key="prompts.w2").value == -1.0
    assert at.slider(key="prompts.n").value == 4 and at.number_input(key="prompts.seed").value == 3
    assert at.checkbox(key="prompts.alone").value and at.slider(key="prompts.index").value == 5
    assert at.select_slider(key="prompts.draws").value == 8 and at.radio(key="prompts.weighting").value == "eps"
    assert "a 4 (w = 1.5) and an 8 (w = 2) but not a 1 (w = -1)" in charts(at)[0]["layout"]["title"]["text"]


def test_the_composition_text_does_not_claim_the_samples_come_from_the_product():
    at = open_page("pages/digits_prompts.py")
    text = " ".join(m.value for m in at.markdown)
    assert "samples from a **product of experts**" not in text
    assert "adds up **scores**" in text and "not the same as drawing from the" in text
