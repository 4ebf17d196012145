"""8 · Your own data: the CSV parser, the exact ground truth of your points, and the page's flow."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import numpy as np
import plotly.io as pio
import pytest
import torch
from streamlit.testing.v1 import AppTest

from ui.your_data import (MAX_ROWS, build_dist, canvas_range, compact, data_key, parse_csv, preset, rule_of_thumb,
                          standardise, to_csv)

ROOT = Path(__file__).resolve().parent.parent


# --- the parser --------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, points, labels, names", [
    (b"x,y\n1,2\n3,4\n", [[1, 2], [3, 4]], [0, 0], ("all",)),
    (b"1,2\n3,4\n", [[1, 2], [3, 4]], [0, 0], ("all",)),  # no header
    (b"\xef\xbb\xbfX;Y\n1.5;-2e1\n\n3;4\n", [[1.5, -20], [3, 4]], [0, 0], ("all",)),  # BOM, semicolons, blank line
    (b"label,y,x\ncat,2,1\ndog,4,3\ncat,6,5\n", [[1, 2], [3, 4], [5, 6]], [0, 1, 0], ("cat", "dog")),  # by name
    (b"1,2,10\n3,4,2\n5,6,2.0\n", [[1, 2], [3, 4], [5, 6]], [1, 0, 0], ("2", "10")),  # numeric labels in order
    (b"x\ty\tclass\n0\t0\ta\n1\t1\tb\n", [[0, 0], [1, 1]], [0, 1], ("a", "b")),  # tabs
])
def test_parse_good_files(text, points, labels, names):
    p, lab, n = parse_csv(text)
    assert np.allclose(p, points) and lab.tolist() == labels and n == names


@pytest.mark.parametrize("text, message", [
    (b"", "the file is empty"),
    (b"x,y\n", "header but no data rows"),
    (b"x,y,label\n1,2,a\n3,abc,b\n", "row 3, column y: 'abc' is not a number"),
    (b"1,2\n3,inf\n", "row 2, column y: 'inf' is not a finite number"),
    (b"1,2,3,4\n5,6,7,8\n", "row 1 has 4 columns; expected 2 (x, y) or 3 (x, y, label)"),
    (b"1,2\n3,4,5\n", "row 2 has 3 columns; expected 2"),
    (b"x,z\n1,2\n", "unknown column 'z'"),
    (b"label,x\na,1\n", "must name an x and a y column"),
    (b"1,2,a\n3,4,\n", "row 2, column label: the label is empty"),
    (b"1,1\n1,1\n", "all the points are at the same place"),
    (b"1,2\n", "at least 2 points are needed"),
    (b"\xff\xfe\x00\x01", "not a text CSV file"),
    ("".join(f"{i},{i}\n" for i in range(MAX_ROWS + 1)).encode(),
     f"has {MAX_ROWS + 1:,} points; the maximum is {MAX_ROWS:,}"),
    ("".join(f"{i},{i},c{i}\n" for i in range(9)).encode(), "9 different labels; the maximum is 8"),
])
def test_parse_bad_files(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_csv(text)


def test_csv_round_trip_and_limits():
    p, lab, names = preset("moons", 40)
    p2, lab2, names2 = parse_csv(to_csv(p, lab, names).encode())
    assert np.allclose(p, p2, atol=1e-5) and [names[i] for i in lab] == [names2[i] for i in lab2]
    assert parse_csv(b"1,2\n3,4\n5,6\n", max_rows=3)[0].shape == (3, 2)


# --- the ground truth ---------------------------------------------------------------------------------

def test_ground_truth_is_standardised_and_exact():
    points = np.array([[10.0, 0.0], [12.0, 0.0], [10.0, 4.0], [14.0, 4.0]])
    z, centre, scale = standardise(points)
    assert np.allclose(z.mean(0), 0) and np.isclose((z**2).sum(1).mean() / 2, 1)
    dist = build_dist(points, [0, 0, 2, 2], ("a", "unused", "b"), 0.2)
    assert dist.label_names == ("a", "b") and dist.labels.tolist() == [0, 0, 1, 1]  # the empty class is dropped
    assert np.allclose(dist.means.numpy(), z) and torch.allclose(dist.stds, torch.full((4,), 0.2, dtype=torch.float64))
    # the exact density of the mixture at a point, by hand: (1/N) sum N(x; z_i, h^2 I)
    x = torch.tensor([[0.1, -0.2]], dtype=torch.float64)
    want = np.mean([np.exp(-((x.numpy()[0] - zi) ** 2).sum() / (2 * 0.04)) / (2 * np.pi * 0.04) for zi in z])
    assert np.isclose(dist.log_prob(x).exp().item(), want)
    with pytest.raises(ValueError, match=r"bandwidth must be in \[0.05, 1.0\]"):
        build_dist(points, [0, 0, 0, 0], ("all",), 0.0)
    assert compact(np.array([3, 1, 3]), ("a", "b", "c", "d")) [1] == ("b", "d")


def test_separable_density_grid_is_the_exact_density():
    from ui.figures import density_grid
    from ui.your_data import separable_density_grid

    dist = build_dist(*preset("spiral", 120), 0.15)
    xs, ys, p = separable_density_grid(dist, n=40)
    xs2, ys2, p2 = density_grid(dist, 1.0, 0.0, n=40)
    assert np.allclose(xs, xs2) and np.allclose(p, p2, rtol=1e-9, atol=1e-12)


def test_keys_and_rule_of_thumb():
    p, lab, names = preset("circles", 50)
    assert data_key(p, lab, names, 0.2) != data_key(p, lab, names, 0.3)
    assert data_key(p, lab, names, 0.2) != data_key(p[::-1], lab, names, 0.2)
    assert data_key(p, lab, names, 0.2) == data_key(p.copy(), lab.copy(), tuple(names), 0.2)
    assert rule_of_thumb(64) == pytest.approx(0.5 * 64 ** (-1 / 6), abs=0.005)  # 0.25
    assert rule_of_thumb(1) == 0.5 and rule_of_thumb(10**9) == 0.05  # clipped to the slider
    assert canvas_range(np.zeros((0, 2))) == (-3.0, 3.0, -3.0, 3.0)
    x0, x1, y0, y1 = canvas_range(np.array([[0.0, 0.0], [10.0, 2.0]]))
    assert x0 < 0 and x1 > 10 and np.isclose(x1 - x0, y1 - y0)


# --- the page -----------------------------------------------------------------------------------------

def _page():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.switch_page("pages/your_data.py").run()
    assert not at.exception
    return at


def _arr(v) -> np.ndarray:
    """A plotly array from figure JSON (plotly writes numeric arrays as base64 'bdata', with a shape)."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return a.reshape([int(n) for n in str(v["shape"]).split(",")]) if "shape" in v else a
    return np.asarray(v, dtype=float)


def _density(at):
    return next(pio.from_json(c.proto.spec) for c in at.get("plotly_chart")
                if "Exact density" in c.proto.spec)


def test_upload_good_and_bad_files():
    at = _page()
    assert any("No points yet" in i.value for i in at.info)
    at.file_uploader(key="yours.upload").set_value(("bad.csv", b"x,y\n1,2\n3,oops\n", "text/csv")).run()
    assert not at.exception
    assert any("row 3, column y: 'oops' is not a number" in e.value for e in at.error)
    assert "custom_dist" not in at.session_state
    good = b"x,y,label\n" + b"".join(f"{np.cos(i)},{np.sin(i)},{'ab'[i % 2]}\n".encode() for i in range(30))
    at.file_uploader(key="yours.upload").set_value(("good.csv", good, "text/csv")).run()
    assert not at.exception and not at.error
    dist = at.session_state["custom_dist"]
    assert dist.means.shape == (30, 2) and dist.label_names == ("a", "b")
    assert at.slider(key="yours.bandwidth").value == rule_of_thumb(30)
    at.run()  # the sidebar now offers "yours", and the page says which file it came from
    assert "yours" in at.sidebar.selectbox(key="dataset").options
    assert any("30 points from file good.csv" in c.value for c in at.caption)


def test_preset_bandwidth_use_and_clear():
    at = _page()
    at.selectbox(key="yours.preset").set_value("8gaussians")
    at.slider(key="yours.preset_n").set_value(40)
    at.button(key="yours.load_preset").click().run()
    assert not at.exception
    key1, dist = at.session_state["custom_key"], at.session_state["custom_dist"]
    assert dist.means.shape == (40, 2) and dist.num_classes == len(set(dist.labels.tolist()))
    fig1 = _density(at)
    at.slider(key="yours.bandwidth").set_value(0.6).run()
    assert at.session_state["custom_key"] != key1 and float(at.session_state["custom_dist"].stds[0]) == 0.6
    fig2 = _density(at)
    z1, z2 = _arr(fig1.data[0].z), _arr(fig2.data[0].z)
    assert z1.shape == z2.shape == (110, 110)
    assert z2.max() < z1.max()  # a wider bandwidth spreads the density: a lower peak
    at.button(key="yours.use").click().run()
    assert not at.exception and at.sidebar.selectbox(key="dataset").value == "yours"
    assert any("Every page is showing your data" in s.value for s in at.success)
    at.button(key="yours.undo").click().run()
    assert at.session_state["custom_dist"].means.shape == (39, 2)
    at.button(key="yours.clear").click().run()
    assert not at.exception and "custom_dist" not in at.session_state
    assert "yours" not in at.sidebar.selectbox(key="dataset").options  # the sidebar went back to the built-in sets


def test_train_on_it_now_trains_on_your_points():
    at = _page()
    at.slider(key="yours.preset_n").set_value(30)
    at.button(key="yours.load_preset").click().run()
    key = at.session_state["custom_key"]
    at.button(key="yours.train").click().run()  # to the Train page, with "yours" chosen in the sidebar
    assert not at.exception and [t.value for t in at.title] == ["5 · Train a model"]
    assert at.session_state["dataset"] == "yours"
    at.switch_page("pages/train.py").run()  # AppTest itself stays on the page it was switched to: follow
    at.number_input(key="train.steps").set_value(20)
    at.select_slider(key="train.batch").set_value(64)
    at.button(key="train.start").click().run()
    for _ in range(200):
        at.run()
        job = at.session_state["_train_job"]
        if not job.active and job.collected:
            break
        time.sleep(0.3)
    at.run()
    assert not at.exception and job.state == "done"
    model, info = at.session_state["trained"]["yours"]
    assert info["train"]["data_key"] == f"yours:{key}" and model.num_classes == 2
    assert at.sidebar.radio(key="model").value == "session"


def test_train_on_it_now_keeps_the_sidebar_settings_in_the_url():
    """With sidebar settings in the URL (bound to widgets), the jump to the Train page keeps them instead of
    failing to clear them, and the URL then names your data."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update(t="0.5", schedule="linear")
    at.run()
    at.switch_page("pages/your_data.py").run()
    at.slider(key="yours.preset_n").set_value(30)
    at.button(key="yours.load_preset").click().run()
    at.button(key="yours.train").click().run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["5 · Train a model"]
    assert at.query_params["t"] == "0.5" and at.query_params["schedule"] == "linear"
    assert at.query_params["dataset"] == "yours"
