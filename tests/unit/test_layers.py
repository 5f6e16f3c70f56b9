"""The package's import graph: no circle, and no import from a lower layer to a higher one.

Layers, bottom to top (README "Code map"): the definition and storage formats; the tracker; the client
API beside the worker side (neither imports the other); the surfaces. Imports under ``TYPE_CHECKING``
count too. A new module must be placed in a layer here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import wfcelery

PACKAGE = Path(wfcelery.__file__).parent

#: module -> (rank, side). A module may import modules of a lower rank, or of its own rank and side.
LAYERS: dict[str, tuple[int, str]] = {
    **{
        m: (0, "core")
        for m in (
            "errors",
            "states",
            "settings",
            "keys",
            "records",
            "model",
            "loader",
            "compiler",
            "rules",
            "_redis_server",
        )
    },
    **{m: (1, "tracker") for m in ("tracker", "dispatch", "consumers", "release")},
    **{m: (2, "client") for m in ("engine",)},
    **{m: (2, "worker") for m in ("worker", "message_filter", "hooks", "outage")},
    **{
        m: (3, "surface")
        for m in ("install", "_display", "_graphs", "cli", "demo", "doctor", "testing", "__init__")
    },
}


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def _imports(path: Path) -> set[str]:
    """wfcelery modules imported by this file (relative or absolute)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level == 0 and not base.startswith("wfcelery"):
                continue
            base = base.removeprefix("wfcelery").lstrip(".")
            if base:
                found.add(base.split(".")[0])
            else:  # from . import x
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(
                a.name.split(".")[1] for a in node.names if a.name.startswith("wfcelery.") and "." in a.name
            )
    return found


def import_graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_has_a_layer() -> None:
    assert set(import_graph()) <= set(LAYERS), "place new modules in LAYERS"


def test_no_import_runs_upward_or_across_sides() -> None:
    bad = []
    for module, imported in import_graph().items():
        rank, side = LAYERS[module]
        for target in imported:
            t_rank, t_side = LAYERS[target]
            if t_rank > rank or (t_rank == rank and t_side != side):
                bad.append(f"{module} ({rank}, {side}) imports {target} ({t_rank}, {t_side})")
    assert bad == []


def test_no_import_circle() -> None:
    graph = import_graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import circle: " + " -> ".join([*path[path.index(module) :], module]))
        if module in done:
            return
        for target in sorted(graph.get(module, ())):
            visit(target, [*path, module])
        done.add(module)

    for module in graph:
        visit(module, [])


def test_the_checks_see_imports() -> None:
    """The walk finds relative, absolute and TYPE_CHECKING imports (or the tests above prove nothing)."""
    graph = import_graph()
    assert {"tracker", "compiler", "dispatch", "message_filter"} <= graph["worker"]
    assert "tracker" in graph["message_filter"]  # imported under TYPE_CHECKING only
    assert {"_display", "_graphs", "engine"} <= graph["cli"]  # `from . import _display as display`
