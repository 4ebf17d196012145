"""Every st.cache_data / st.cache_resource function of the pages and ui/ takes what it reads as arguments.

A cached function is keyed on its arguments only. When its body reads a variable of the page (the view
`v`, a dataset, a grid computed above it), a run with another value of that variable gets the answer
computed for the old one. The check below reads the source: a cached function, and every function of
the same module it calls, may read builtins, imports, the module's functions and classes, and its
constants, but no other module-level name and nothing of an enclosing function.

A constant is an UPPER_CASE name of two or more characters, bound once, by a plain `NAME = ...` at the top
level of the module, whose value reads no module-level variable (`SPEC = v.schedule.spec()` is not one).
"""

from __future__ import annotations

import ast
import pathlib
import re
import symtable
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = sorted([*ROOT.glob("pages/*.py"), *ROOT.glob("ui/*.py")])
UPPER = re.compile(r"^_?[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")


def _is_cached(fn: ast.AST) -> bool:
    for d in getattr(fn, "decorator_list", []):
        f = d.func if isinstance(d, ast.Call) else d
        if isinstance(f, ast.Attribute) and f.attr in ("cache_data", "cache_resource"):
            return True
    return False


def _bound_names(tree: ast.Module) -> dict[str, int]:
    """How often each name is bound at module level by anything but def, class and import."""
    counts: dict[str, int] = {}

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                continue  # their own scopes (a comprehension's targets are its own too, but harmless here)
            if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
                counts[child.id] = counts.get(child.id, 0) + 1
            visit(child)

    visit(tree)
    return counts


def _variables(tree: ast.Module) -> set[str]:
    """The module-level names bound by assignment that are not constants."""
    counts = _bound_names(tree)
    candidates = {}
    for stmt in tree.body:
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for t in targets:
                if (isinstance(t, ast.Name) and len(t.id.strip("_")) > 1 and UPPER.match(t.id)
                        and counts[t.id] == 1):
                    candidates[t.id] = {n.id for n in ast.walk(stmt.value) if isinstance(n, ast.Name)}
    variables = set(counts) - set(candidates)
    changed = True
    while changed:  # a would-be constant computed from a variable is a variable
        changed = False
        for name, reads in list(candidates.items()):
            if reads & variables:
                variables.add(name)
                del candidates[name]
                changed = True
    return variables


def _tables(table):
    yield table
    for child in table.get_children():
        yield from _tables(child)


def stale_reads(source: str, filename: str = "<source>") -> dict[str, set[str]]:
    """{cached function: the names it (or a module function it calls) reads that are not its inputs}."""
    tree = ast.parse(source)
    variables = _variables(tree)
    functions = {(t.get_name(), t.get_lineno()): t
                 for t in _tables(symtable.symtable(source, filename, "exec")) if t.get_type() == "function"}
    top = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}

    def reads(fn, seen) -> set[str]:
        table = functions[(fn.name, fn.lineno)]
        out = {f"{s.get_name()} (of an enclosing function)" for s in table.get_symbols() if s.is_free()}
        for t in _tables(table):
            for s in t.get_symbols():
                name = s.get_name()
                if not s.is_global():
                    continue
                if name in variables:
                    out.add(name)
                elif name in top and name not in seen and not _is_cached(top[name]):
                    seen.add(name)
                    out |= {f"{r} (through {name})" for r in reads(top[name], seen)}
        return out

    found = {}
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_cached(fn):
            if bad := reads(fn, {fn.name}):
                found[f"{fn.name} (line {fn.lineno})"] = bad
    return found


def unkeyed(source: str) -> list[str]:
    """Cached functions with unhashed (_name) arguments and no hashed one: nothing tells their inputs apart."""
    out = []
    for fn in ast.walk(ast.parse(source)):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_cached(fn):
            names = [a.arg for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs]
            if names and all(n.startswith("_") for n in names):
                out.append(f"{fn.name} (line {fn.lineno})")
    return out


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_cached_functions_read_only_their_arguments(path):
    source = path.read_text(encoding="utf-8")
    assert stale_reads(source, str(path)) == {}
    assert unkeyed(source) == []


def test_the_sources_have_cached_functions():
    """The check above is not vacuous: the pages do cache (and the decorator is recognised)."""
    assert sum(_is_cached(n) for p in SOURCES for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))) > 40


EXAMPLE = textwrap.dedent('''
    import streamlit as st
    from ui.state import view
    from ui import energy

    GRID = 40
    v = view()
    SPEC = v.schedule.spec()
    xs, E = energy.grid(v.dist)
    alpha = 0.5

    def helper(n):
        return v.dist, n

    @st.cache_data
    def fine(data_key, n, _dist):
        return energy.exact(_dist, n * GRID, [i for i in range(n)], lambda p: p + n)

    @st.cache_data(max_entries=8)
    def reads_view(data_key):
        return v.dist

    @st.cache_resource
    def reads_unpacked(key):
        return energy.fig(xs, E)

    @st.cache_data()
    def reads_in_a_lambda(key):
        return energy.z(lambda p: p * alpha)

    @st.cache_data
    def reads_a_derived_upper(key):
        return SPEC

    @st.cache_data
    def reads_through_a_helper(n):
        return helper(n)

    def page_section():
        local = 3

        @st.cache_data
        def reads_a_closure(key):
            return local

    @st.cache_resource
    def only_unhashed(_x):
        return _x
''')


def test_the_check_finds_each_kind_of_hidden_input():
    found = {k.split(" ")[0]: v for k, v in stale_reads(EXAMPLE).items()}
    assert found == {
        "reads_view": {"v"},
        "reads_unpacked": {"xs", "E"},
        "reads_in_a_lambda": {"alpha"},
        "reads_a_derived_upper": {"SPEC"},
        "reads_through_a_helper": {"v (through helper)"},
        "reads_a_closure": {"local (of an enclosing function)"},
    }
    assert [k.split(" ")[0] for k in unkeyed(EXAMPLE)] == ["only_unhashed"]
