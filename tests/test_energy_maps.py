"""The Energy page's maps computed ahead (ui/energy_maps.py): exact copies of the live maps, used only when
everything that made them still holds, and a damaged file never breaks the page."""

import io
import json

import numpy as np
import pytest

from diffusion.checkpoints import load_checkpoint
from toy_data import DATASETS
from ui import energy, energy_maps
from ui.figures import view_half_width

from apptest import open_page

F16 = dict(rtol=2e-3, atol=2e-2)  # the file stores float16


@pytest.fixture(scope="module")
def moons():
    model, _ = load_checkpoint(f"{energy_maps.ROOT}/checkpoints/moons.safetensors")
    return model.requires_grad_(False)


def _half(model, t):
    return view_half_width(*(float(a) for a in model.schedule.alpha_sigma(t)))


def test_a_built_file_gives_back_the_live_maps_and_only_when_everything_matches(tmp_path, moons):
    path = tmp_path / "maps.npz"
    energy_maps.save(path, energy_maps.build(["moons"], grid=6, steps=2, t_step=0.5, jobs=1))
    store, problem = energy_maps.load(path)
    assert problem is None
    fp, spec = energy_maps.weights_fingerprint(moons), moons.schedule.spec()
    for label in (None, 0, 1):
        for t in (0.0, 0.5, 1.0):
            xs, e, secs = store.lookup("moons", fp, spec, label, t, 6, 2, _half(moons, t))
            xs_live, e_live, _ = energy.learned_energy(moons, t, label, 6, _half(moons, t), 2)
            np.testing.assert_allclose(xs, xs_live)
            np.testing.assert_allclose(e, e_live, **F16)
            assert secs > 0
    args = dict(dataset="moons", fingerprint=fp, spec=spec, label=None, t=0.5, grid=6, steps=2, half=_half(moons, 0.5))
    assert store.lookup(**args) is not None
    for change in (dict(dataset="spiral"), dict(fingerprint="0" * 16), dict(spec="linear"), dict(label=2),
                   dict(t=0.25), dict(grid=7), dict(steps=3), dict(half=args["half"] + 0.1)):
        assert store.lookup(**{**args, **change}) is None, change


def test_the_fingerprint_follows_the_weights(moons):
    import copy

    twin = copy.deepcopy(moons)
    assert energy_maps.weights_fingerprint(twin) == energy_maps.weights_fingerprint(moons)
    next(twin.net.parameters()).data[0] += 1e-6
    assert energy_maps.weights_fingerprint(twin) != energy_maps.weights_fingerprint(moons)


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_damaged_files_are_reported_never_raised_or_unpickled(tmp_path):
    assert energy_maps.load(tmp_path / "missing.npz") == (None, None)
    good_meta = {"format": energy_maps.FORMAT, "grid": 2, "steps": 2, "t_step": 1.0,
                 "datasets": {"moons": {"fingerprint": "x", "spec": "cosine", "t": [0.0, 1.0], "half": [1, 1],
                                        "labels": 2}}}
    cases = {
        "garbage": b"not a zip file at all",
        "truncated": _npz(meta=np.array(json.dumps(good_meta)), E_moons=np.zeros((3, 2, 2, 2)),
                          seconds_moons=np.zeros((3, 2)))[:200],
        # a valid description, but stored as a pickled object array: only allow_pickle=False refuses it
        "pickled": _npz(meta=np.array(json.dumps(good_meta), dtype=object), E_moons=np.zeros((3, 2, 2, 2)),
                        seconds_moons=np.zeros((3, 2))),
        "other format": _npz(meta=np.array(json.dumps({**good_meta, "format": "something else"}))),
        "wrong shape": _npz(meta=np.array(json.dumps(good_meta)), E_moons=np.zeros((3, 2, 2, 3)),
                            seconds_moons=np.zeros((3, 2))),
        "missing array": _npz(meta=np.array(json.dumps(good_meta))),
        "integer maps": _npz(meta=np.array(json.dumps(good_meta)), E_moons=np.zeros((3, 2, 2, 2), dtype=np.int64),
                             seconds_moons=np.zeros((3, 2))),
        "no fingerprint": _npz(meta=np.array(json.dumps({**good_meta, "datasets": {"moons": {
            k: v for k, v in good_meta["datasets"]["moons"].items() if k != "fingerprint"}}})),
            E_moons=np.zeros((3, 2, 2, 2)), seconds_moons=np.zeros((3, 2))),
    }
    path = tmp_path / "good.npz"
    path.write_bytes(_npz(meta=np.array(json.dumps(good_meta)), E_moons=np.zeros((3, 2, 2, 2)),
                          seconds_moons=np.zeros((3, 2))))
    assert energy_maps.load(path)[1] is None  # the cases below differ from this one in one thing each
    for name, data in cases.items():
        path = tmp_path / f"{name}.npz"
        path.write_bytes(data)
        store, problem = energy_maps.load(path)
        assert store is None and problem and path.name in problem, (name, problem)


def test_the_shipped_file_matches_the_shipped_models():
    store, problem = energy_maps.load()
    assert problem is None and store is not None
    assert (store.meta["grid"], store.meta["steps"], store.meta["t_step"]) == (energy_maps.GRID, energy_maps.STEPS,
                                                                                energy_maps.T_STEP)
    for name in DATASETS:
        model, _ = load_checkpoint(f"{energy_maps.ROOT}/checkpoints/{name}.safetensors")
        d = store.meta["datasets"][name]
        assert d["fingerprint"] == energy_maps.weights_fingerprint(model), (
            f"{name}: rerun python -m checkpoints.build energy-maps")
        assert d["spec"] == model.schedule.spec() and d["labels"] == model.num_classes
        assert d["t"] == energy_maps.t_values()
    model, _ = load_checkpoint(f"{energy_maps.ROOT}/checkpoints/moons.safetensors")
    hit = store.lookup("moons", energy_maps.weights_fingerprint(model), model.schedule.spec(), 1, 0.3,
                       energy_maps.GRID, energy_maps.STEPS, _half(model, 0.3))
    live = energy.learned_energy(model, 0.3, 1, energy_maps.GRID, _half(model, 0.3), energy_maps.STEPS)[1]
    np.testing.assert_allclose(hit[1], live, **F16)


def _help(at, label):
    return next(m.proto.help for m in at.metric if m.label == label)


def test_the_page_reads_the_shipped_maps_and_survives_a_damaged_file(tmp_path, monkeypatch):
    at = open_page("pages/energy.py", t="0.4")
    assert "computed ahead" in _help(at, "Time they took") and not at.warning
    bad = tmp_path / "energy_maps.npz"
    bad.write_bytes(b"\x00" * 100)
    monkeypatch.setattr(energy_maps, "PATH", str(bad))
    at = open_page("pages/energy.py", t="0.4")
    assert any("precomputed energy maps cannot be used" in w.value and "energy_maps.npz" in w.value for w in at.warning)
    assert "first time anyone asked" in _help(at, "Time they took")  # computed live, and shown
    # the landscape, its 3-D surface, the grid's Z, its cost in d, the constant, the energy head's two, the chain rule
    assert len(at.get("plotly_chart")) == 8
