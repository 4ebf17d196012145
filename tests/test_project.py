"""The README contract: its test command is what CI runs, it stays short and names every page, and the docs'
links resolve; the layers (pages -> ui -> diffusion -> toy_data) import downwards only, without cycles, and the
core stays free of Streamlit."""

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
README_MAX_LINES = 150  # a newcomer reads it in two minutes; measurements and detail live in docs/
LAYERS = ("pages", "ui", "diffusion", "toy_data")  # each may import only the layers after it
MAX_LINES = 400  # a file in ui/ or pages/ that grows past this is doing more than one job


def _readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def _readme_commands():
    return re.findall(r"```bash\n(.+?)\n```", _readme_section("Quick start"), flags=re.S)


def test_readme_has_the_two_quick_start_commands():
    start, test = _readme_commands()
    assert "pip install -r requirements.txt" in start and start.rstrip().endswith("streamlit run app.py")
    assert "requirements-test.txt" in test and "pytest" in test


def test_ci_runs_the_readme_test_command_verbatim():
    _, test = _readme_commands()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test.strip() in [line.strip() for line in ci_lines]


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines, at most {README_MAX_LINES}"


def test_readme_page_map_names_every_numbered_page_of_the_app():
    """One row per page of app.py's navigation, under the page's own title, in the order of the app."""
    titles = re.findall(r'st\.Page\("pages/\w+\.py",\s*title="(\d+ · [^"]+)"', (ROOT / "app.py").read_text())
    assert len(titles) == 12, titles
    rows = re.findall(r"^\| (\d+ · [^|]+?) \|", _readme_section("The pages"), flags=re.M)
    assert rows == titles


def test_readme_and_docs_links_point_to_files_that_exist():
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a web address or an anchor in the same file
            path = (doc.parent / target.split("#")[0]).resolve()
            assert path.exists(), f"{doc.relative_to(ROOT)} links to missing {target}"


def test_readme_and_docs_state_what_is_not_how_it_came_to_be():
    """No references to the project's issues or its past: the docs describe the lab as it is."""
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        for pattern in (r"\bissues? #?\d", r"\bbefore the (last|change)", r"\bwhat the changes did\b"):
            assert not re.search(pattern, text, flags=re.I), f"{doc.relative_to(ROOT)}: {pattern}"


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
    """Loopback by default, no file watching, and no gc.collect() after every script run (docs/classroom.md,
    "Serving a class on the local network"; docs/measurements.md: that collection was most of the server's
    time under 20 sessions)."""
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1" and config["server"]["fileWatcherType"] == "none"
    assert config["runner"]["postScriptGC"] is False
    assert config["client"]["showSidebarNavigation"] is False  # app.py turns it on for the titled navigation


def _project_imports():
    """{module: [(imported module, names)]} for every module of the four layers (pages as 'pages.<name>')."""
    found = {}
    for layer in LAYERS:
        for path in sorted((ROOT / layer).glob("*.py")):
            module = f"{layer}.{path.stem}"
            edges = []
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    edges += [(a.name, ()) for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:  # relative: from . import x / from .x import y, inside the module's package
                        base = ".".join([layer] + ([base] if base else []))
                    names = tuple(a.name for a in node.names)
                    edges.append((base, names))
                    if base in LAYERS:  # from ui import forward: the submodules themselves
                        edges += [(f"{base}.{n}", ()) for n in names if (ROOT / base / f"{n}.py").exists()]
            found[module] = [(m, names) for m, names in edges if m.split(".")[0] in LAYERS]
    return found


_CACHE = {}


def _project_imports_cache():
    if "imports" not in _CACHE:
        _CACHE["imports"] = _project_imports()
    return _CACHE["imports"]


def test_layers_import_downwards_only():
    for module, edges in _project_imports_cache().items():
        rank = LAYERS.index(module.split(".")[0])
        for target, _ in edges:
            assert LAYERS.index(target.split(".")[0]) >= rank, f"{module} imports {target}, a layer above it"


def test_no_import_cycles():
    graph = {m: {t for t, _ in edges if t in _project_imports_cache() and t != m}
             for m, edges in _project_imports_cache().items()}
    state = {}

    def visit(m, path):
        state[m] = "open"
        for t in graph[m]:
            assert state.get(t) != "open", "import cycle: " + " -> ".join(path + [t])
            if t not in state:
                visit(t, path + [t])
        state[m] = "done"

    for m in graph:
        if m not in state:
            visit(m, [m])



def test_no_private_name_is_imported_from_another_module():
    for module, edges in _project_imports_cache().items():
        for target, names in edges:
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            assert not private, f"{module} imports {private} from {target}"


def test_ui_and_pages_files_stay_under_the_line_limit():
    for layer in ("ui", "pages"):
        for path in (ROOT / layer).glob("*.py"):
            n = len(path.read_text().splitlines())
            assert n <= MAX_LINES, f"{path.relative_to(ROOT)} has {n} lines (at most {MAX_LINES})"
