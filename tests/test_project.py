"""The README contract: its test command is what CI runs; the core stays free of Streamlit."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    quick = text[text.index("## Quick start"):text.index("### GPU")]
    return re.findall(r"```bash\n(.+?)\n```", quick, flags=re.S)


def test_readme_has_the_two_quick_start_commands():
    start, test = _readme_commands()
    assert "pip install -r requirements.txt" in start and start.rstrip().endswith("streamlit run app.py")
    assert "requirements-test.txt" in test and "pytest" in test


def test_ci_runs_the_readme_test_command_verbatim():
    _, test = _readme_commands()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test.strip() in [line.strip() for line in ci_lines]


def test_core_never_imports_streamlit_or_prints():
    for pkg in ("diffusion", "toy_data"):
        for path in (ROOT / pkg).rglob("*.py"):
            src = path.read_text()
            assert not re.search(r"^\s*(import|from)\s+streamlit", src, flags=re.M), path
            if path.stem not in ("sample", "train", "evaluate", "cli"):  # CLI faces may print
                assert not re.search(r"^\s*print\(", src, flags=re.M), path


def test_torch_is_pinned():
    reqs = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^torch==2\.13\.0$", reqs, flags=re.M)


def test_server_config_keeps_what_the_load_figures_rest_on():
    """Loopback by default, no file watching, and no gc.collect() after every script run (README, "Serving
    a class": that collection was most of the server's time under 20 sessions)."""
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1" and config["server"]["fileWatcherType"] == "none"
    assert config["runner"]["postScriptGC"] is False
    assert config["client"]["showSidebarNavigation"] is False  # app.py turns it on for the titled navigation
