"""The package's import graph: no circle, and no import from a lower layer to a higher one.

Layers, bottom to top (the code map in the README and the design page): the definitions, the plan and the
stored formats; the tracker; the client API beside the worker side (neither imports the other); the
surfaces. A module's layer is its package's. Imports under ``TYPE_CHECKING`` count too. A few imports
within the rules are ruled out as well (``FORBIDDEN``: the tracker never imports the compiler).
"""

from __future__ import annotations

import ast
from pathlib import Path

import wfcelery

PACKAGE = Path(wfcelery.__file__).parent

#: package (or top-level module) -> (rank, side). A module may import modules of a lower rank, or of its own
#: rank and side. A module's layer is its package's: the tree is the architecture drawing.
PACKAGES: dict[str, tuple[int, str]] = {
    "errors": (0, "core"),
    "settings": (0, "core"),
    "definition": (0, "core"),
    "plan": (0, "core"),
    "_redis_server": (0, "core"),
    "tracker": (1, "tracker"),
    "messaging": (1, "tracker"),
    "ops": (1, "tracker"),
    "tracing": (1, "tracker"),
    "metrics": (3, "surface"),
    "client": (2, "client"),
    "worker": (2, "worker"),
    "install": (3, "surface"),
    "testing": (3, "surface"),
    "cli": (3, "surface"),
    "web": (3, "surface"),
    "wfcelery": (3, "surface"),
}


#: Modules placed below their package: the tracker's formats (key names, stored records, states) are what
#: the definitions and the plan are written in; only the store that runs the scripts is the tracker layer.
MODULES: dict[str, tuple[int, str]] = {
    "tracker": (0, "core"),
    "tracker.keys": (0, "core"),
    "tracker.records": (0, "core"),
    "tracker.runlimits": (0, "core"),
    "tracker.states": (0, "core"),
}


def layer(module: str) -> tuple[int, str]:
    """The (rank, side) of a module: its own if placed in MODULES, else that of its top-level package."""
    return MODULES.get(module) or PACKAGES[module.split(".")[0]]


#: Imports the layers would allow but the design rules out: (module, imported module, why).
FORBIDDEN: list[tuple[str, str, str]] = [
    (
        "tracker.store",
        "plan.compiler",
        "the storage layer stores plans, it does not decode them (compiler.PlanCache)",
    ),
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


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _module_level(tree: ast.Module) -> list[ast.AST]:
    """The nodes a module runs when it is loaded: outside function bodies and ``if TYPE_CHECKING:``."""
    found: list[ast.AST] = []
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        found.append(node)
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) and not _type_checking(
            node
        ):
            stack.extend(ast.iter_child_nodes(node))
    return found


def _imports(path: Path, modules: set[str], deferred: bool = True) -> set[str]:
    """wfcelery modules imported by this file (relative or absolute). ``deferred=False`` leaves out the
    imports inside functions, which run only when called."""
    package = _package_of(_module_name(path), path)
    found: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree) if deferred else _module_level(tree):
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


def import_graph(deferred: bool = True) -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    return {_module_name(p): _imports(p, modules, deferred) for p in paths}


def test_every_module_has_a_layer() -> None:
    unplaced = {m for m in import_graph() if m.split(".")[0] not in PACKAGES}
    assert unplaced == set(), "place new packages in PACKAGES"


def test_no_import_runs_upward_or_across_sides() -> None:
    bad = []
    for module, imported in import_graph().items():
        rank, side = layer(module)
        for target in imported:
            t_rank, t_side = layer(target)
            if t_rank > rank or (t_rank == rank and t_side != side):
                bad.append(f"{module} ({rank}, {side}) imports {target} ({t_rank}, {t_side})")
    assert bad == []


def test_no_forbidden_import() -> None:
    graph = import_graph()
    bad = [f"{m} imports {target}: {why}" for m, target, why in FORBIDDEN if target in graph[m]]
    assert bad == []


def test_no_import_circle() -> None:
    """No circle among the imports a module runs when it is loaded. Type annotations may name a class of a
    module that imports this one (``Run`` names its ``Engine``), and a function may import a module of its
    own layer when called (``Workflow.to_canvas`` delegates to :mod:`wfcelery.plan.canvas`)."""
    graph = import_graph(deferred=False)
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
    assert {"tracker.store", "plan.compiler", "messaging.dispatch"} <= graph["worker.base"]
    assert "tracker.store" in graph["worker.message_filter"]  # imported under TYPE_CHECKING only
    assert {"cli.display", "cli.graphs"} <= graph["cli.runs"] | graph["cli.definitions"]
    assert "client.engine" in graph["cli.base"]
    assert {"client.engine", "errors", "web.stream"} <= graph["web.api"]
    assert "web" in graph["cli.service"]  # imported inside the `web` command
    assert "plan.canvas" not in import_graph(deferred=False)["definition.model"]  # only when called


#: What the web layer must not import: the tracker's and messaging's modules and Redis itself (nothing from
#: a request reaches Redis except through the engine).
BEHIND_THE_ENGINE = ("tracker.store", "messaging", "_redis_server")


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
    """The PACKAGES rule alone would let the web modules (rank 3) import the tracker (rank 1); they may not,
    nor import redis, nor reach for an engine's ``.tracker``."""
    graph = import_graph()
    web = {_module_name(p): p for p in sorted((PACKAGE / "web").rglob("*.py"))}
    assert {"web", "web.api", "web.stream"} <= set(web)
    bad = []
    for module, path in sorted(web.items()):
        bad += [
            f"{module} imports {t}"
            for t in sorted(graph[module])
            if t == BEHIND_THE_ENGINE[0] or t.split(".")[0] in BEHIND_THE_ENGINE
        ]
        if "redis" in _third_party_imports(path):
            bad.append(f"{module} imports redis")
        bad += [
            f"{module}:{node.lineno} uses .tracker"
            for node in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(node, ast.Attribute) and node.attr == "tracker"
        ]
    assert bad == []


def test_the_benchmarks_import_no_circle() -> None:
    """The benchmark modules import each other without a circle either (run, scale and fleet share
    ``benchmarks.environment`` instead of importing one another)."""
    root = PACKAGE.parent / "benchmarks"
    names = {p.stem for p in root.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in root.glob("*.py"):
        found: set[str] = set()
        for node in _module_level(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                parts = (node.module or "").split(".")
                if node.level == 1:
                    found.update({parts[0]} if parts[0] else {a.name for a in node.names})
                elif parts[0] == "benchmarks" and len(parts) > 1:
                    found.add(parts[1])
        graph[path.stem] = found & names - {path.stem}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        assert module not in path, "import circle: " + " -> ".join([*path[path.index(module) :], module])
        if module not in done:
            for target in sorted(graph[module]):
                visit(target, [*path, module])
            done.add(module)

    for module in graph:
        visit(module, [])
