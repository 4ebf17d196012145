"""Memorising versus generalising (ui/memorisation.py): the shipped networks were trained on the page's training
sets, memorise at the smallest N and generalise at the largest, and the shipped samples are theirs."""

import copy
import io
import json

import numpy as np
import pytest
import torch

from diffusion.checkpoints import load_checkpoint
from toy_data import finite_set, get_dataset
from ui import memorisation, memorisation_figures
from ui.energy_maps import weights_fingerprint

SMALL, LARGE = memorisation.NS[0], memorisation.NS[-1]


@pytest.fixture(scope="module")
def moons_nets():
    nets, problem = memorisation.load_nets("moons")
    assert problem is None and set(nets) == set(memorisation.NS), "run python -m checkpoints.build memorisation-nets"
    return nets


@pytest.fixture(scope="module")
def moons_live(moons_nets):
    """The smallest and largest N sampled here, from the shipped networks (not from the samples file)."""
    return memorisation.compute(get_dataset("moons"), moons_nets, (SMALL, LARGE))


def test_the_shipped_networks_are_safetensors_trained_on_the_page_training_sets():
    for name in memorisation.DATASETS:
        dist = get_dataset(name)
        for n in memorisation.NS:
            path = memorisation.net_path(name, n)
            with open(path, "rb") as f:
                assert not f.read(2).startswith(b"\x80")  # not a pickle: a safetensors header length
            model, config = load_checkpoint(path, expect={"net.arch": "mlp2d", "dataset": name})
            assert config["memorisation"] == {"n": n, "seed": memorisation.SEED,
                                              "points_sha": memorisation.points_hash(memorisation_figures.training_set(dist, n, memorisation.SEED)[0])}
            assert {k: config["train"][k] for k in memorisation.RECIPE} == memorisation.RECIPE, f"{name} N={n}: retrain"
            assert config["train"]["steps_done"] == memorisation.RECIPE["steps"]
            assert model.num_classes == 0 and config["net"]["width"] == memorisation.RECIPE["width"]


def test_the_smallest_n_network_memorises(moons_live):
    d = memorisation.distances(moons_live, (SMALL,))[SMALL]
    # Sampling ends at lambda = 10 with noise of std 0.0067 per coordinate, so a sample that copies a training
    # point lies a Rayleigh(0.0067) distance from it: median 0.008, 99.9% below 0.025. The ideal denoiser does.
    assert np.median(d["ideal"]) < 0.012 and (d["ideal"] < 0.025).mean() > 0.95
    # The network trained on those 4 points: most samples are such copies, its median is within a few times the
    # sampler's noise and a tenth of fresh data's (0.77 from 4 points; a generalising network sits there).
    assert np.median(d["net"]) < 0.03 and np.median(d["net"]) < 0.1 * np.median(d["true"])
    assert (d["net"] < 0.025).mean() > 0.8


def test_the_largest_n_network_generalises(moons_live):
    d = memorisation.distances(moons_live, (LARGE,))[LARGE]
    gap = abs(np.median(d["net"]) - np.median(d["true"]))
    se = np.hypot(memorisation.median_se(d["net"]), memorisation.median_se(d["true"]))
    # Its samples are as far from the 2,000 points as fresh data are: the medians agree within 4 standard
    # errors of two independent 1,000-sample medians (a 1-in-15,000 miss if they were equal in law), ...
    assert gap < 4 * se, (np.median(d["net"]), np.median(d["true"]), se)
    # ... and far from the copies the ideal denoiser of the same 2,000 points makes.
    assert np.median(d["net"]) > 2 * np.median(d["ideal"])


def test_switch_reads_where_the_network_stops_copying_and_starts_generalising():
    ns = [4, 16, 256, 2000]
    curves = {"ideal": [0.008, 0.008, 0.009, 0.009], "net": [0.008, 0.011, 0.03, 0.023],
              "true": [0.8, 0.3, 0.066, 0.024]}
    assert memorisation.switch(ns, curves) == (16, 2000)  # 0.011 < 1.5 x 0.008; 0.023 >= 0.8 x 0.024
    assert memorisation.switch(ns, {**curves, "net": curves["true"]}) == (None, 4)
    assert memorisation.switch(ns, {**curves, "net": curves["ideal"]}) == (2000, None)


def test_median_standard_error_matches_repeated_draws():
    rng = np.random.default_rng(0)
    draws = [rng.exponential(size=1000) for _ in range(400)]
    spread = np.std([np.median(x) for x in draws])  # the true standard error, 0.0316 asymptotically
    estimates = [memorisation.median_se(x) for x in draws[:20]]
    # One estimate scatters by ~13% (it reads the density from ~60 order statistics); the mean of 20 by ~3%,
    # and the spread of 400 medians is itself known to ~4%: 15% is three of their combined deviations.
    assert np.mean(estimates) == pytest.approx(spread, rel=0.15)


def test_the_shipped_samples_are_those_of_the_shipped_networks(moons_nets, moons_live):
    store, problem = memorisation.load()
    assert problem is None and store is not None
    for name in memorisation.DATASETS:
        nets, _ = memorisation.load_nets(name)
        assert memorisation.stored(store, name, nets) is not None, (
            f"{name}: rerun python -m checkpoints.build memorisation-samples")
    arrays = memorisation.stored(store, "moons", moons_nets)
    for key in (f"train_{SMALL}", f"ideal_{SMALL}", f"net_{SMALL}", f"net_{LARGE}", "true"):
        # float32 in the file, and another CPU's kernels round differently; a stale file (another network, other
        # training points or noise) moves samples by the size of the data's features, 0.1 and more
        np.testing.assert_allclose(arrays[key], moons_live[key], atol=1e-3, err_msg=key)


def test_stored_samples_are_used_only_for_the_same_networks_and_training_sets(moons_nets, monkeypatch):
    store, _ = memorisation.load()
    assert memorisation.stored(store, "moons", moons_nets) is not None
    changed = dict(moons_nets)
    changed[SMALL] = copy.deepcopy(moons_nets[SMALL])
    next(changed[SMALL].net.parameters()).data[0] += 1e-6
    assert weights_fingerprint(changed[SMALL]) != weights_fingerprint(moons_nets[SMALL])
    assert memorisation.stored(store, "moons", changed) is None
    assert memorisation.stored(store, "moons", {n: m for n, m in moons_nets.items() if n != LARGE}) is None
    assert memorisation.stored(store, "spiral", moons_nets) is None
    monkeypatch.setattr(memorisation, "SEED", memorisation.SEED + 1)  # other training points than the networks saw
    assert memorisation.stored(store, "moons", moons_nets) is None


def test_a_built_file_round_trips(tmp_path):
    arrays = memorisation.build_file(("moons",), (SMALL,), memorisation.FOLDER)
    path = tmp_path / "samples.npz"
    memorisation.save(path, arrays)
    store, problem = memorisation.load(path)
    assert problem is None
    nets, _ = memorisation.load_nets("moons", (SMALL,))
    got = memorisation.stored(store, "moons", nets, ns=(SMALL,))
    assert got is not None and got[f"net_{SMALL}"].shape == (memorisation.N_GEN, 2)


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_damaged_files_are_reported_never_raised_or_unpickled(tmp_path):
    assert memorisation.load(tmp_path / "missing.npz") == (None, None)
    meta = {"format": memorisation.FORMAT, "sampler": "ddim", "steps": 50, "n_gen": 3, "noise_seed": 0, "seed": 0,
            "datasets": {"moons": {"ns": [2], "spec": "cosine", "fingerprints": {"2": "x"}, "points_sha": {"2": "y"}}}}
    good = {"moons/true": np.zeros((3, 2)), "moons/train_2": np.zeros((2, 2)), "moons/ideal_2": np.zeros((3, 2)),
            "moons/net_2": np.zeros((3, 2))}
    m = lambda d, dtype=None: np.array(json.dumps(d), dtype=dtype)  # noqa: E731
    path = tmp_path / "good.npz"
    path.write_bytes(_npz(meta=m(meta), **good))
    assert memorisation.load(path)[1] is None  # each case below differs from this one in one thing
    no_fp = copy.deepcopy(meta)
    del no_fp["datasets"]["moons"]["fingerprints"]
    cases = {
        "garbage": b"not a zip file",
        "truncated": _npz(meta=m(meta), **good)[:200],
        "pickled": _npz(meta=m(meta, object), **good),  # only allow_pickle=False refuses it
        "other format": _npz(meta=m({**meta, "format": "x"}), **good),
        "no fingerprints": _npz(meta=m(no_fp), **good),
        "wrong shape": _npz(meta=m(meta), **{**good, "moons/net_2": np.zeros((3, 3))}),
        "missing array": _npz(meta=m(meta), **{k: a for k, a in good.items() if k != "moons/ideal_2"}),
        "integers": _npz(meta=m(meta), **{**good, "moons/true": np.zeros((3, 2), dtype=np.int64)}),
        "not finite": _npz(meta=m(meta), **{**good, "moons/true": np.full((3, 2), np.nan)}),
    }
    for name, data in cases.items():
        path = tmp_path / f"{name}.npz"
        path.write_bytes(data)
        store, problem = memorisation.load(path)
        assert store is None and problem and path.name in problem, (name, problem)


@pytest.mark.slow  # an AppTest of page 6 that draws every sampler's samples live (seconds)
def test_the_page_samples_live_when_the_file_is_damaged(tmp_path, monkeypatch):
    from apptest import open_page

    bad = tmp_path / "samples.npz"
    bad.write_bytes(b"\x00" * 100)
    monkeypatch.setattr(memorisation, "PATH", str(bad))
    at = open_page("pages/denoise.py", dataset="moons")
    assert any("cannot be used" in w.value and "samples.npz" in w.value for w in at.warning)
    assert {"denoise.memo", "denoise.curve"} <= {c.key for c in at.get("plotly_chart")}
    row = at.table[0].value.set_index("sampler")["median distance to nearest"].astype(float)
    assert row[memorisation_figures.MEMO_NAMES["net"]] < 0.1 * row[memorisation_figures.MEMO_NAMES["true"]]  # N = 4, sampled here


@pytest.mark.slow  # another AppTest of page 6: spiral, whose samples are all drawn live (seconds)
def test_a_dataset_without_networks_shows_the_ideal_denoiser_and_says_so():
    from apptest import open_page

    at = open_page("pages/denoise.py", dataset="spiral")
    assert any("shipped for" in i.value for i in at.info)
    table = at.table[0].value
    assert list(table["sampler"]) == [memorisation_figures.MEMO_NAMES["ideal"], memorisation_figures.MEMO_NAMES["true"]]


def test_issue_targets_the_small_n_network_copies_and_the_large_n_one_is_as_far_as_fresh_data(moons_live):
    small = memorisation.distances(moons_live, (SMALL,))[SMALL]
    # Target: >= 90% of the N = 4 network's samples within 0.05 of a training point. A copy lies a Rayleigh(0.0067)
    # distance from its point (the sampler's final noise), beyond 0.05 with probability exp(-0.05² / (2 x 0.0067²))
    # ~ 1e-12, so the share counts copies; the binomial standard error of a share near 0.95 of 1,000 is 0.007.
    assert (small["net"] < 0.05).mean() >= 0.9
    assert (small["true"] < 0.05).mean() < 0.1  # fresh data are not near 4 points: the 0.05 bound has teeth
    large = memorisation.distances(moons_live, (LARGE,))[LARGE]
    # Target: at N = 2,000 the medians agree within 20%. Each 1,000-sample median has a relative standard error of
    # 2-4% (median_se), so 20% is about 5 combined standard errors for a network whose samples are fresh data.
    assert abs(np.median(large["net"]) / np.median(large["true"]) - 1) <= 0.2
    assert np.median(large["ideal"]) < 0.5 * np.median(large["true"])  # copies would miss the 20% by far


def test_the_user_training_sets_and_bad_n():
    dist = get_dataset("moons")
    points, labels = memorisation.user_training_set(dist, 16, own=False)
    np.testing.assert_array_equal(points, memorisation_figures.training_set(dist, 16, memorisation.SEED)[0])
    own = finite_set(torch.tensor([[0.0, 1.0], [1.0, 0.0], [-1.0, -1.0]]), torch.tensor([0, 1, 1]), ("a", "b"), 0.3)
    points, labels = memorisation.user_training_set(own, None, own=True)  # page 8's points; N is their number
    np.testing.assert_array_equal(points, own.means)
    assert labels.tolist() == [0, 1, 1]
    for bad in (1, 2001, 2.5, "many", None, True):
        with pytest.raises(ValueError, match=r"training set size N must be a whole number in 2\.\.2000"):
            memorisation.user_training_set(dist, bad, own=False)


def test_one_training_set_is_sampled_as_the_shipped_ones_are(moons_nets, moons_live):
    dist = get_dataset("moons")
    points, labels = memorisation.user_training_set(dist, SMALL, own=False)
    one = memorisation.compute_one(dist, points, labels, moons_nets[SMALL])
    for key in (f"train_{SMALL}", f"ideal_{SMALL}", f"net_{SMALL}", "true"):
        # the same noise, network and sampler in the same process: the same numbers up to float64 round-off
        np.testing.assert_allclose(one[key], moons_live[key], atol=1e-9, err_msg=key)
    table = memorisation.distance_table(memorisation.distances(one, (SMALL,))[SMALL])
    assert list(table["sampler"]) == list(memorisation_figures.MEMO_NAMES.values())


@pytest.mark.slow  # trains two tiny networks in a background thread (a few seconds)
def test_a_user_job_trains_samples_and_stops():
    from ui import memorisation_live

    dist = get_dataset("moons")
    points, labels = memorisation.user_training_set(dist, 8, own=False)
    job = memorisation_live.MemoJob(dist, "moons", "moons", points, labels,
                                    {**memorisation.USER_RECIPE, "steps": 30}).start()
    job.join(120)
    pr = job.progress()
    assert (pr["state"], pr["step"], pr["total"], job.error) == ("done", 30, 30, "") and pr["seconds"] > 0
    assert set(job.arrays) == {"train_8", "ideal_8", "net_8", "true"}
    assert job.arrays["net_8"].shape == (memorisation.N_GEN, 2) and np.isfinite(job.arrays["net_8"]).all()
    fig, spec, table, text = memorisation_live.job_view(job)
    assert memorisation_live.job_view(job)[0] is fig and len(table) == 3  # built once
    long = memorisation_live.MemoJob(dist, "moons", "moons", points, labels,
                                     {**memorisation.USER_RECIPE, "steps": 100_000}).start()
    long.request_stop()
    long.join(60)
    assert long.progress()["state"] == "stopped" and long.arrays is None and long.error == ""


def test_verdict_reads_one_training_set_by_the_switch_rule():
    ideal, true = np.full(5, 0.008), np.full(5, 0.1)
    assert "copies its training points" in memorisation.verdict(16, {"ideal": ideal, "net": ideal * 1.4, "true": true})
    assert "generalises" in memorisation.verdict(16, {"ideal": ideal, "net": true * 0.8, "true": true})
    assert "in between" in memorisation.verdict(16, {"ideal": ideal, "net": true * 0.3, "true": true})
    assert "median distance 30% of theirs" in memorisation.verdict(16, {"ideal": ideal, "net": true * 0.3, "true": true})
    assert "cannot be told apart" in memorisation.verdict(9, {"ideal": ideal, "net": ideal, "true": ideal})
