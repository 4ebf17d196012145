"""Opening a page of the app in streamlit.testing.v1.AppTest, the way a shared link would."""

import base64
import json
import pathlib

import numpy as np

from streamlit.testing.v1 import AppTest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def open_page(page: str = "pages/home.py", timeout: int = 180, **query) -> AppTest:
    """AppTest of app.py showing `page`, with the sidebar set through URL query parameters."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    at.query_params.update(query)
    at.run()
    if page != "pages/home.py":
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def decode(a) -> np.ndarray:
    """An array from a figure's JSON: plotly sends numpy arrays base64-encoded as {'dtype', 'bdata', 'shape'}."""
    if isinstance(a, dict):
        shape = [int(n) for n in str(a.get("shape", "-1")).split(",")]
        return np.frombuffer(base64.b64decode(a["bdata"]), dtype=np.dtype(a["dtype"])).reshape(shape).astype(float)
    return np.asarray(a, dtype=float)


def charts(at) -> list[dict]:
    """The plotly figures on the page, as the JSON the browser receives."""
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def plain(obj):
    """A figure's JSON with typed arrays decoded and every number cast to float32, so two encodings of one
    figure compare equal. Plotly writes a numpy array as base64 from a Figure but as a list from a plain dict
    (NaN there as null); a float32 value comes back as its exact double from the one (7.423049851675092e-23)
    and as its shortest decimal from the other (7.42305e-23). Both are the same float32, and casting back to
    float32 recovers it exactly, whereas rounding both to decimal digits splits them whenever the value lies
    near a rounding boundary, which depends on the machine's last-bit round-off."""
    if isinstance(obj, dict):
        if "bdata" in obj and "dtype" in obj:
            return plain(decode(obj).tolist())
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    if isinstance(obj, float):
        return None if obj != obj else float(np.float32(obj))  # NaN is a gap, which JSON writes as null
    return obj
