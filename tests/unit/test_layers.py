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
            "_redis_server",
        )
    },
    **{m: (1, "tracker") for m in ("tracker", "dispatch")},
    **{m: (2, "client") for m in ("engine",)},
    **{m: (2, "worker") for m in ("worker", "message_filter", "hooks")},
    **{m: (3, "surface") for m in ("install", "_display", "_graphs", "cli", "demo", "__init__", "web")},
}


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def _layer_key(module: str) -> str:
    """A subpackage (``web``) is one layer entry; so is every top-level module."""
    return module.split(".")[0]


def _imports(module: str, path: Path) -> set[str]:
    """Layer keys of the wfcelery modules this file imports (relative or absolute)."""
    package = module.split(".")[:-1]  # where a relative import starts ("web.api" -> ["web"])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if not (node.module or "").startswith("wfcelery"):
                    continue
                parts = (node.module or "").removeprefix("wfcelery").lstrip(".").split(".")
                parts = [p for p in parts if p]
            else:
                parts = package[: len(package) - (node.level - 1)] + (node.module or "").split(".")
                parts = [p for p in parts if p]
            if parts:
                found.add(parts[0])
            else:  # from wfcelery import x / from . import x at the top: a module, or a name of __init__
                found.update(a.name if a.name in LAYERS else "__init__" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(
                a.name.split(".")[1] for a in node.names if a.name.startswith("wfcelery.") and "." in a.name
            )
    return found


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(p)
        graph.setdefault(_layer_key(module), set()).update(_imports(module, p) - {_layer_key(module)})
    return graph


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
    assert {"engine", "compiler", "__init__"} <= graph["web"]  # a subpackage: `from ..engine import Run`
    assert "web" in graph["cli"]  # imported inside the `web` command
