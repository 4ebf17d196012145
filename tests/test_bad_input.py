"""Bad input everywhere, generated: garbage query parameters never break the app, garbage options never
get past the command lines (exit code 2, one line naming the option)."""

from __future__ import annotations

import io
import math
from contextlib import redirect_stderr

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apptest import open_page

SIDEBAR_KEYS = ["dataset", "schedule", "t", "label", "w", "sampler", "steps", "model", "device", "cosine.s",
                "linear.beta_min", "linear.beta_max", "sigmoid.start", "sigmoid.end", "sigmoid.tau", "edm.sigma_min",
                "edm.sigma_max", "edm.rho"]
GARBAGE = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["nan", "inf", "-inf", "1e308", "-1", "0", "1e-320", "", " ", "NaN", "None", "null", "[]",
                     "moons", "spiral", "yours", "cosine", "ve", "heun", "session", "cuda", "arm A", "99999999"]),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(min_value=-10**12, max_value=10**12).map(str),
)


@pytest.mark.slow  # hypothesis through AppTest: 120 runs of the home page
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(SIDEBAR_KEYS), GARBAGE, min_size=1, max_size=6))
def test_garbage_query_parameters_never_break_the_app(query):
    at = open_page("pages/home.py", timeout=120, **query)  # asserts that no exception was raised
    v = at.session_state["_view"] if "_view" in at.session_state else None
    assert v is None  # the per-run view was dropped; the widgets hold valid values:
    sb = at.sidebar
    t = sb.slider(key="t").value
    assert 0.0 <= t <= 1.0 and not math.isnan(t)
    assert 1 <= sb.slider(key="steps").value <= 200
    assert 0.0 <= sb.slider(key="w").value <= 8.0
    assert all("nan" not in c.value.lower() for c in sb.caption)  # no NaN drawn in the readouts
    assert at.get("plotly_chart")


def _run_cli(module, argv):
    import importlib

    main = importlib.import_module(f"diffusion.{module}").main
    from diffusion.cli import run

    err = io.StringIO()
    with redirect_stderr(err):
        try:
            code = run(main, f"python -m diffusion.{module}", argv)
        except SystemExit as e:
            code = e.code
    return code, err.getvalue()


BAD_NUMBER = st.one_of(st.sampled_from(["nan", "inf", "-inf", "1e999", "abc", "", "1.5e400", "--", "1e1000", "0x10"]),
                       st.text(alphabet="abcxyz!@#", min_size=1, max_size=6))
OPTIONS = {
    "train": ["--steps", "--batch", "--lr", "--width", "--depth", "--label-dropout", "--ema", "--seed", "--base"],
    "sample": ["--steps", "--eta", "--label", "--guidance", "--n", "--seed"],
}


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([(m, o) for m, opts in OPTIONS.items() for o in opts]), BAD_NUMBER)
def test_garbage_options_exit_2_with_one_line_naming_the_option(tmp_path_factory, module_option, value):
    module, option = module_option
    out = str(tmp_path_factory.mktemp("cli") / "out.safetensors" if module == "train" else
              tmp_path_factory.mktemp("cli") / "out.npy")
    extra = ["--oracle"] if module == "sample" else []
    code, err = _run_cli(module, [*extra, option, value, "--out", out])
    assert code == 2, (module, option, value, err)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert option in lines[0] or option.lstrip("-") in lines[0], (option, lines[0])


@pytest.mark.parametrize("argv", [["--dataset", "mnist", "--data-path", "/nonexistent/mnist.npz"],
                                  ["--dataset", "moons", "--data-path", "x.npz"], ["--dataset", "nonsense"]])
def test_bad_data_options_exit_2(tmp_path, argv):
    code, err = _run_cli("train", [*argv, "--steps", "1", "--out", str(tmp_path / "m.safetensors")])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
