"""The package's import graph: no circle, and no import from a lower layer to a higher one.

Layers, bottom to top (README "Code map"): the definition and storage formats; the tracker; the client
API beside the worker side (neither imports the other); the surfaces. Imports under ``TYPE_CHECKING``
count too. A new module must be placed in a layer here. A few imports within the rules are ruled out as
well (``FORBIDDEN``: the tracker never imports the compiler).
"""

from __future__ import annotations

import ast
from pathlib import Path

import wfcelery

PACKAGE = Path(wfcelery.__file__).parent

#: module -> (rank, side). A module may import modules of a lower rank, or of its own rank and side.
#: Names are relative to the package ("wfcelery" is its ``__init__``, "web" is ``web/__init__.py``).
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
            "canvas",
            "segments",
            "rules",
            "limits",
            "_redis_server",
        )
    },
    **{m: (1, "tracker") for m in ("tracker", "dispatch", "consumers", "release")},
    **{m: (2, "client") for m in ("engine",)},
    **{m: (2, "worker") for m in ("worker", "message_filter", "hooks", "outage", "outbox", "reconciler")},
    **{
        m: (3, "surface")
        for m in (
            "install",
            "_display",
            "_graphs",
            "cli",
            "demo",
            "doctor",
            "testing",
            "wfcelery",
            "web",
            "web.api",
            "web.pages",
            "web.security",
            "web.stream",
        )
    },
}

#: Imports the layers would allow but the design rules out: (module, imported module, why).
FORBIDDEN: list[tuple[str, str, str]] = [
    ("tracker", "compiler", "the storage layer stores plans, it does not decode them (compiler.PlanCache)"),
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or "wfcelery"


def _package_of(module: str, path: Path) -> list[str]:
    parts = [] if module == "wfcelery" else module.split(".")
    return parts if path.name == "__init__.py" else parts[:-1]


def _known(parts: list[str], modules: set[str]) -> str:
    """The module (or package) these name parts refer to: the longest known prefix."""
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in modules:
            return name
    return "wfcelery"


def _imports(path: Path, modules: set[str]) -> set[str]:
    """wfcelery modules imported by this file (relative or absolute), by their names in LAYERS."""
    package = _package_of(_module_name(path), path)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            names = (node.module or "").split(".") if node.module else []
            if node.level:
                target = package[: len(package) - (node.level - 1)] + names
            elif names[:1] == ["wfcelery"]:
                target = names[1:]
            else:
                continue
            # `from . import x`: x may be a module; else it is a name of the package
            found.update(_known([*target, alias.name], modules) for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "wfcelery":
                    found.add(_known(alias.name.split(".")[1:], modules))
    found.discard(_module_name(path))
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    return {_module_name(p): _imports(p, modules) for p in paths}


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


def test_no_forbidden_import() -> None:
    graph = import_graph()
    bad = [f"{m} imports {target}: {why}" for m, target, why in FORBIDDEN if target in graph[m]]
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
    assert {"engine", "errors", "web.stream"} <= graph["web.api"]  # `from ..engine import ...`
    assert "web" in graph["cli"]  # imported inside the `web` command


#: What the web layer must not import: the tracker's modules and Redis itself (issue 14: "nothing from a
#: request reaches Redis except through the engine").
BEHIND_THE_ENGINE = {"tracker", "dispatch", "consumers", "release", "_redis_server"}


def _third_party_imports(path: Path) -> set[str]:
    """Top-level names of the non-wfcelery packages a file imports (``import redis.asyncio`` -> redis)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found - {"wfcelery"}


def test_the_web_layer_reaches_redis_only_through_the_engine() -> None:
    """The LAYERS rule alone would let the web modules (rank 3) import the tracker (rank 1); they may not,
    nor import redis, nor reach for an engine's ``.tracker``."""
    graph = import_graph()
    web = {_module_name(p): p for p in sorted((PACKAGE / "web").rglob("*.py"))}
    assert {"web", "web.api", "web.stream"} <= set(web)
    bad = []
    for module, path in sorted(web.items()):
        bad += [f"{module} imports {t}" for t in sorted(graph[module] & BEHIND_THE_ENGINE)]
        if "redis" in _third_party_imports(path):
            bad.append(f"{module} imports redis")
        bad += [
            f"{module}:{node.lineno} uses .tracker"
            for node in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(node, ast.Attribute) and node.attr == "tracker"
        ]
    assert bad == []
