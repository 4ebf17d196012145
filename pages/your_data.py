"""8 · Your own data: upload or click 2-D points; their exact ground truth then drives every page."""

import numpy as np
import streamlit as st

from toy_data import finite_set
from ui import models as model_store
from ui.page import downloads, show_source
from ui.present import chart
from ui.state import CUSTOM, request, view
from ui.your_data import (MAX_BANDWIDTH, MAX_CLASSES, MAX_ROWS, MIN_BANDWIDTH, PRESETS, build_dist, canvas_figure,
                          canvas_range, data_key, density_figure, parse_csv, preset, rule_of_thumb, standardise,
                          to_csv)

v = view()

DATA = "_yours"  # {"points" [N, 2], "labels" [N], "names" tuple, "source" str}: the raw points, as given
EMPTY = {"points": np.zeros((0, 2)), "labels": np.zeros(0, dtype=np.int64), "names": (), "source": ""}


def set_points(points, labels, names, source: str, new_set: bool = False) -> None:
    """Replace your points (and reset the bandwidth to the rule of thumb for their number)."""
    st.session_state[DATA] = {"points": np.asarray(points, dtype=float).reshape(-1, 2),
                              "labels": np.asarray(labels, dtype=np.int64), "names": tuple(names), "source": source}
    st.session_state["yours.bandwidth"] = rule_of_thumb(len(points))
    if new_set:  # a fresh label selector (its own key), so new clicks default to the first class of the new set
        st.session_state["yours.set_n"] = st.session_state.get("yours.set_n", 0) + 1


@st.cache_data(show_spinner=False, max_entries=16)
def _density_figure(key: str, _dist):
    return density_figure(_dist)


def forget_custom() -> None:
    """No usable points: the other pages stop offering "yours" (rerun once if the sidebar still showed it)."""
    had = st.session_state.pop("custom_dist", None) is not None
    st.session_state.pop("custom_key", None)
    if had and v.dataset == CUSTOM:
        st.rerun()


def show_upload_error(message: str) -> None:
    """How a bad file is reported (the parser's message names the row, the column and what is allowed)."""
    st.error(f"This file cannot be used: {message}.", icon=":material/error:")
    st.caption(f"Expected: a CSV with columns x, y and optionally label (text or whole numbers), one point per "
               f"row, a header line optional, at most {MAX_ROWS:,} rows.")


def load_upload(file) -> None:
    """Read an uploaded file once (a rerun with the same file does nothing)."""
    if st.session_state.get("yours.upload_id") == file.file_id:
        return
    try:
        points, labels, names = parse_csv(file.getvalue())
    except ValueError as e:
        st.session_state["yours.upload_error"] = str(e)
        return
    st.session_state["yours.upload_id"], st.session_state["yours.upload_error"] = file.file_id, ""
    set_points(points, labels, names, f"file {file.name}", new_set=True)


def add_clicks(selection, bounds, name: str) -> bool:
    """Add the grid dots a click selected, with the label chosen for new points. True when something was added."""
    pts = [(p["x"], p["y"]) for p in selection.get("points", []) if p.get("curve_number", 0) == 0]
    if not pts:
        return False
    data = st.session_state.get(DATA, EMPTY)
    names = list(data["names"])
    if name not in names:
        names.append(name)
    labels = np.concatenate([data["labels"], np.full(len(pts), names.index(name), dtype=np.int64)])
    set_points(np.concatenate([data["points"], np.asarray(pts, dtype=float)]), labels, names, "clicked points")
    return True


st.title("8 · Your own data")
st.markdown(
    """
Bring your own 2-D points: upload a CSV, click them into place, or start from a preset shape and edit it.
The lab turns them into an **exact** ground truth: each point becomes a small round Gaussian of width $h$
(the bandwidth), and the data distribution is their average. Because that is again a Gaussian mixture, the
noisy densities, the score and the ideal denoiser of every page are exact for your data too, and you can
train a model on it and compare. The points are first centred and scaled (mean 0, average variance 1), like
the built-in sets, so the noise schedules suit them.
"""
)
st.latex(r"p(x) = \frac{1}{N}\sum_{i=1}^{N} \mathcal{N}\big(x;\, z_i,\, h^2 I\big), \qquad "
         r"p_t(x) = \frac{1}{N}\sum_{i=1}^{N} "
         r"\mathcal{N}\big(x;\, \alpha_t z_i,\, (\alpha_t^2 h^2 + \sigma_t^2) I\big)")
st.caption("z_i are your points after standardising. With h = 0 this would be the set itself, and its ideal "
           "denoiser could only give back training points (memorisation); h > 0 fills in between them.")

upload_tab, click_tab, preset_tab = st.tabs(["Upload a CSV", "Click to place points", "Start from a preset"])

with upload_tab:
    file = st.file_uploader("CSV of 2-D points: columns x, y and optionally label", type=["csv", "txt"],
                            key="yours.upload", max_upload_size=1)
    if file is not None:
        load_upload(file)
        if st.session_state.get("yours.upload_error"):
            show_upload_error(st.session_state["yours.upload_error"])
    else:
        st.session_state.pop("yours.upload_id", None)
        st.session_state.pop("yours.upload_error", None)
    st.caption(f"A header line is optional (x, y, label). Labels may be words or whole numbers, at most "
               f"{MAX_CLASSES} different ones; at most {MAX_ROWS:,} points.")

with preset_tab:
    p1, p2, p3 = st.columns([2, 2, 1])
    preset_name = p1.selectbox("Shape", list(PRESETS), format_func=PRESETS.get, key="yours.preset")
    n_preset = p2.slider("Points", 10, 400, 80, 10, key="yours.preset_n")
    p3.write("")
    if p3.button("Load", key="yours.load_preset", icon=":material/download:"):
        set_points(*preset(preset_name, n_preset), f"preset {PRESETS[preset_name]}", new_set=True)
        st.rerun()
    st.caption("Draws that many points from the built-in set, with its classes. Then edit them in the next tab.")

data = st.session_state.get(DATA, EMPTY)

with click_tab:
    canvas_col, tools = st.columns([3, 1])
    free = [f"class {i + 1}" for i in range(MAX_CLASSES) if f"class {i + 1}" not in data["names"]]
    new_label = tools.selectbox("Label of new points", list(data["names"]) + free[:MAX_CLASSES - len(data["names"])],
                                key=f"yours.new_label.{st.session_state.get('yours.set_n', 0)}",
                    help="Points you click get this class; pick a new one to start another class.")
    if tools.button("Undo last point", key="yours.undo", icon=":material/undo:", disabled=len(data["points"]) == 0,
                    width="stretch"):
        set_points(data["points"][:-1], data["labels"][:-1], data["names"], data["source"])
        st.rerun()
    if tools.button("Clear all points", key="yours.clear", icon=":material/delete:", disabled=len(data["points"]) == 0,
                    width="stretch"):
        st.session_state[DATA] = EMPTY
        st.rerun()
    tools.caption("Click a grey dot to put a point there (the dots are a 41 × 41 grid). The frame stays put while "
                  "you add points; Clear resets it.")
    n_click = st.session_state.setdefault("yours.canvas_n", 0)
    bounds = st.session_state.get("yours.bounds") if len(data["points"]) else None
    bounds = bounds or canvas_range(data["points"])
    with canvas_col:
        event = chart(canvas_figure(data["points"], data["labels"], data["names"], bounds), width="stretch",
                      theme=None, key=f"yours.canvas.{n_click}", on_select="rerun", selection_mode="points",
                      config={"displayModeBar": False})
    if event and add_clicks(event.get("selection", {}), bounds, new_label):
        st.session_state["yours.canvas_n"] = n_click + 1  # a fresh chart, so the same click is not added twice
        st.session_state["yours.bounds"] = bounds
        st.rerun()
    if not len(data["points"]):
        st.session_state.pop("yours.bounds", None)

st.subheader("The exact distribution of your points")
n = len(data["points"])
if n == 0:
    st.info("No points yet: upload a file, click some points, or load a preset.")
    forget_custom()
else:
    st.session_state.setdefault("yours.bandwidth", rule_of_thumb(n))
    h = st.slider("Bandwidth h (standardised units)", MIN_BANDWIDTH, MAX_BANDWIDTH, step=0.01, key="yours.bandwidth",
                  help=f"The width of the Gaussian around each point. Default: half of Silverman's rule, "
                       f"0.5 n^(-1/6) = {rule_of_thumb(n):.2f} for {n} points. Small h: spiky, close to the points; "
                       "large h: smooth, fills the gaps.")
    try:
        dist = build_dist(data["points"], data["labels"], data["names"], h)
    except ValueError as e:
        st.warning(f"These points cannot be used yet: {e}.")
        forget_custom()
    else:
        key = data_key(data["points"], data["labels"], data["names"], h)
        st.session_state["custom_dist"], st.session_state["custom_key"] = dist, key
        info = model_store.info(CUSTOM, "session") if model_store.has_session(CUSTOM) else None
        if info and info.get("train", {}).get("data_key") != f"{CUSTOM}:{key}":
            st.warning("The model trained in this session on your data was trained on an earlier version of your "
                       "points or bandwidth: train again to compare it with this ground truth.")
        u1, u2, u3, _ = st.columns([1, 1, 1.3, 0.7])
        if v.dataset == CUSTOM:
            u1.success("Every page is showing your data.", icon=":material/check:")
        elif u1.button("Use my data on every page", type="primary", key="yours.use", icon=":material/done_all:"):
            request(dataset=CUSTOM)
            st.rerun()
        if u2.button("Train on it now", key="yours.train", icon=":material/model_training:"):
            request(dataset=CUSTOM)
            # query_params={}: Streamlit refuses to clear the sidebar's URL parameters (they are bound to its
            # widgets), and they need no carrying: the widgets keep their values and write them back.
            st.switch_page("pages/train.py", query_params={})
        if u3.button("Does a network memorise your points?", key="yours.memorise", icon=":material/join_inner:",
                     help="Page 6 trains a network on exactly your points and compares it with the ideal "
                          "denoiser of those points, which can only give them back."):
            request(dataset=CUSTOM)
            st.switch_page("pages/denoise.py", query_params={})
        fig = _density_figure(key, dist)
        chart(fig, width="stretch", theme=None, key="yours.density")
        z, centre, scale = standardise(data["points"])
        st.caption(f"{n} points from {data['source']}, {dist.num_classes} class(es): "
                   f"{', '.join(dist.label_names)}. Standardised as z = (x − ({centre[0]:.3g}, {centre[1]:.3g})) × "
                   f"{scale:.3g}. Left: the exact density of the mixture; right: the points with its contour lines. "
                   f"Dataset key {key}.")
        d1, d2 = st.columns([1, 3])
        d1.download_button("Download your points (CSV)", to_csv(data["points"], data["labels"], data["names"]),
                           "my_points.csv", "text/csv", key="yours.csv", on_click="ignore", icon=":material/table:")
        with d2:
            downloads(fig, "your data density", key="yours.dl")

show_source(parse_csv, build_dist, finite_set)
