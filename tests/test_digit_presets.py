"""The digit pages' views computed ahead (ui/digit_presets.py): the stored rows are the live ones, used only
for the model and schedule that made them, and a damaged file never breaks a page."""

import io
import json

import numpy as np
import pytest
import torch

from diffusion.schedules import make_schedule
from ui import digit_presets, digit_runs, digits
from ui.digit_presets import GEN_N, INTERVAL, JOURNEY_SAMPLER, JOURNEY_STEPS, SAMPLER, SEED, STEPS, gen_args
from ui.energy_maps import weights_fingerprint

from apptest import open_page

Q = 1 / 127.5  # uint8 storage: -1..1 in 255 steps, so a stored pixel is within half a step of the live one


class Fake:
    """A 10-class image model: x0_hat blends the input with a per-class template (index 10: no label)."""

    num_classes = 10

    def __init__(self):
        self.schedule = make_schedule("cosine")
        t = -torch.ones(11, 1, 28, 28)
        for c in range(10):
            t[c, :, :, 2 * c + 2:2 * c + 6] = 1.0
        t[10] = t[:10].mean(0)
        self.templates = t

    def __call__(self, x, t, label=None):
        idx = torch.full((x.shape[0],), 10) if label is None else torch.as_tensor(label).long().expand(x.shape[0])
        idx = torch.where(idx < 0, 10, idx)
        return 0.3 * x + self.templates[idx]


@pytest.fixture(scope="module")
def shipped():
    from ui.models import mnist

    model, config = mnist.__wrapped__() if hasattr(mnist, "__wrapped__") else mnist()
    assert model is not None, config
    return model


def test_stored_rows_are_the_live_rows_and_only_for_their_own_arguments(tmp_path):
    fake = Fake()
    test_x = torch.zeros(1, 1, 28, 28)
    entries = digit_presets.build(fake, test_x, torch.tensor([7]), pages=("generate",))
    path = tmp_path / "p.npz"
    digit_presets.save(path, entries, "abc", fake.schedule.spec())
    store, problem = digit_presets.load(path)
    assert problem is None and store.matches("abc", fake.schedule.spec())
    assert not store.matches("abd", fake.schedule.spec()) and not store.matches("abc", "linear")
    for w, interval in digit_presets.GEN_SETTINGS:
        for label in [3] + ([None] if w == 0 else []):
            hit = store.get("gen", **gen_args(label, w, interval, SAMPLER, STEPS, SEED))
            live = digits.generate(fake, fake.schedule, [label], GEN_N, w, SAMPLER, STEPS, SEED, "cpu",
                               interval)[0]
            np.testing.assert_allclose(hit["images"], np.clip(live, -1, 1), atol=Q / 2 + 1e-6)
            assert hit["seconds"] >= 0
    # any other argument is not in the file
    args = gen_args(3, 1.0, INTERVAL, SAMPLER, STEPS, SEED)
    for change in (dict(seed=1), dict(steps=10), dict(sampler="heun"), dict(w=2.0), dict(interval=[-2.0, 4.0])):
        assert store.get("gen", **{**args, **change}) is None, change
    # w = 0 and 'no label' ignore the interval: both spellings name the same entry
    assert gen_args(None, 3.0, INTERVAL, "ddim", 5, 0) == gen_args(None, 0.0, None, "ddim", 5, 0)


def test_the_first_n_samples_of_a_stored_row_are_the_samples_of_a_smaller_grid():
    """The pages show the first n of the stored samples: that is exact because column j starts from the same
    noise whatever the number of columns."""
    fake, sch = Fake(), make_schedule("cosine")
    big = digits.generate(fake, sch, [4], 8, 1.0, "dpmpp_2m", 4, 0)
    small = digits.generate(fake, sch, [4], 3, 1.0, "dpmpp_2m", 4, 0)
    np.testing.assert_allclose(big[:, :3], small, atol=1e-6)


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_damaged_files_are_reported_never_raised_or_unpickled(tmp_path):
    assert digit_presets.load(tmp_path / "missing.npz") == (None, None)
    entry = {"id": 0, "seconds": 1.0, "fields": {"images": ["image", [2, 28, 28]]}}
    meta = {"format": digit_presets.FORMAT, "fingerprint": "x", "spec": "cosine", "entries": {"gen:{}": entry}}
    good = dict(meta=np.array(json.dumps(meta)), **{"0.images": np.zeros((2, 28, 28), np.uint8)})
    path = tmp_path / "good.npz"
    path.write_bytes(_npz(**good))
    assert digit_presets.load(path)[1] is None  # each case below differs from this file in one thing

    def with_meta(**change):
        return _npz(**{**good, "meta": np.array(json.dumps({**meta, **change}))})

    def with_entry(**change):
        return with_meta(entries={"gen:{}": {**entry, **change}})

    cases = {
        "garbage": b"not a zip file at all",
        "truncated": _npz(**good)[:200],
        "pickled": _npz(**{**good, "meta": np.array(json.dumps(meta), dtype=object)}),
        "other format": with_meta(format="something else"),
        "no fingerprint": with_meta(fingerprint=None),
        "no entries": with_meta(entries=[]),
        "wrong shape": with_entry(fields={"images": ["image", [3, 28, 28]]}),
        "unknown kind": with_entry(fields={"images": ["jpeg", [2, 28, 28]]}),
        "missing array": with_entry(id=1),
        "no seconds": with_entry(seconds="fast"),
        "wrong dtype": _npz(**{**good, "0.images": np.zeros((2, 28, 28), np.float32)}),
        "not finite": _npz(**{**good, "meta": np.array(json.dumps({**meta, "entries": {"x:{}": {
            "id": 0, "seconds": 1.0, "fields": {"images": ["f32", [2, 28, 28]]}}}})),
            "0.images": np.full((2, 28, 28), np.nan, np.float32)}),
    }
    for name, data in cases.items():
        path = tmp_path / f"{name}.npz"
        path.write_bytes(data)
        store, problem = digit_presets.load(path)
        assert store is None and problem and path.name in problem, (name, problem)


def test_the_shipped_file_matches_the_shipped_model(shipped):
    """Fails when the checkpoint (or a sampler the entries used) changed without
    `python -m checkpoints.build digit-presets`."""
    store, problem = digit_presets.load()
    assert problem is None and store is not None
    assert store.matches(weights_fingerprint(shipped), shipped.schedule.spec()), (
        "rerun python -m checkpoints.build digit-presets")
    sched = shipped.schedule
    for w, interval in digit_presets.GEN_SETTINGS:
        for label in range(10):
            hit = store.get("gen", **gen_args(label, w, interval, SAMPLER, STEPS, SEED))
            assert hit is not None and hit["images"].shape == (GEN_N, 28, 28), (w, interval, label)
    # the first view's row of 7s, sampled again here: the same digits
    live = digits.generate(shipped, sched, [7], GEN_N, 1.0, SAMPLER, STEPS, SEED, "cpu", INTERVAL)[0]
    hit = store.get("gen", **gen_args(7, 1.0, INTERVAL, SAMPLER, STEPS, SEED))
    # float round-off between machines is far below a uint8 step, but 20 ODE steps may amplify it on a few pixels
    assert np.mean(np.abs(hit["images"] - np.clip(live, -1, 1)) <= Q) > 0.999
    for prompts in digit_presets.COMPOSE_PRESETS.values():
        for row in digit_presets.compose_rows(prompts):
            assert store.get("compose", prompts=row, sampler=SAMPLER, steps=STEPS, seed=SEED) is not None
    film = store.get("film", digit=3, w=0.0, sampler=JOURNEY_SAMPLER, steps=JOURNEY_STEPS, seed=SEED)
    traj = digit_runs.film_trajectory(shipped, sched, JOURNEY_SAMPLER, JOURNEY_STEPS, 3, 0.0, SEED)
    np.testing.assert_allclose(film["xs"][-1], traj.xs[-1].numpy(), atol=2e-2)  # float16: 3 decimal digits


def test_a_damaged_file_gives_a_warning_and_live_digits(tmp_path, monkeypatch):
    bad = tmp_path / "digit_presets.npz"
    bad.write_bytes(b"\x00" * 100)
    monkeypatch.setattr(digit_presets, "PATH", str(bad))
    at = open_page("pages/digits_generate.py", sampler="ddim", steps="3", **{"digits.sidebar": "true",
                                                                              "digits.sweep.on": "false"})
    assert any("computed ahead of time cannot be used" in w.value and "digit_presets.npz" in w.value
               for w in at.warning)
    help_text = next(m.proto.help for m in at.get("metric") if m.label == "Generation time")
    assert "first computed" in help_text
    assert len(at.get("plotly_chart")) == 1 and not at.exception
