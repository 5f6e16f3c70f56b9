"""Nodes with no task: a wait for a signal, a durable sleep, a child workflow (docs: waiting for the world).

What they are and how a definition spells them, checked where they enter:

* ``wf.wait(name, after=..., timeout="2h")`` -- YAML ``{name: approve, wait: signal, timeout: 2h}``: WAITING
  until ``run.signal(name, payload)``; the payload is its result. Past ``timeout`` it FAILS ("no signal within
  2h") and the failure policy applies.
* ``wf.sleep(name, "10m", after=...)`` -- YAML ``{name: cool_down, sleep: 10m}``: SUCCEEDS (result null) that
  long after it was reached; ``wf.sleep(name, until="${params.release_at}")`` -- YAML ``{name: hold, until:
  "${params.release_at}"}``: at that time (ISO 8601, UTC when no offset is given, or Unix seconds).
* ``wf.add(name, workflow="etl", params={...})`` -- YAML ``{name: daily, workflow: etl, params: {...}}``: runs
  the registered workflow ``etl`` as a child run; SUCCEEDS with its results (a dict by node name) or FAILS
  with its error summary. Its params' ``${name}`` placeholders are filled from the parent run's params.

Durations are seconds (a number) or text: ``90s``, ``10m``, ``2h``, ``1d``, ``1h30m``, ``500ms``.
Sub-workflows may not run themselves, directly or through others, and nest at most ``wfcelery_max_nesting``
deep (:func:`check_nesting`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from wfcelery.definition.params import collect_placeholders, substitute
from wfcelery.errors import NestingError, SchemaError

if TYPE_CHECKING:
    from wfcelery.definition.model import Workflow

#: Levels of sub-workflows a run may nest (a child run is one level): ``wfcelery_max_nesting``.
DEFAULT_MAX_NESTING = 4
#: Longest sleep or wait timeout: a year (a longer one is almost surely a unit mistake).
MAX_DURATION = 366 * 86400.0


class NodeKind(str, Enum):
    """What a node is: a Celery task (the default), or one of the nodes with no task."""

    TASK = "task"
    WAIT = "wait"  # waits for a signal
    SLEEP = "sleep"  # a durable timer
    WORKFLOW = "workflow"  # a child run of a registered workflow

    def __str__(self) -> str:
        return self.value


#: Keys a definition may give each kind of node with no task (besides its name and its parents).
SPECIAL_KEYS: dict[NodeKind, frozenset[str]] = {
    NodeKind.WAIT: frozenset({"wait", "timeout"}),
    NodeKind.SLEEP: frozenset({"sleep", "until"}),
    NodeKind.WORKFLOW: frozenset({"workflow", "params"}),
}
#: Keys every node may have, whatever its kind.
COMMON_KEYS = frozenset({"name", "after", "when", "trigger"})

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: Any, where: str) -> float:
    """Seconds of a duration: a number of seconds, or text like ``90s``, ``10m``, ``1h30m``. Raises
    :class:`SchemaError` naming ``where`` for anything else, for a negative one or one over a year."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        elif text and re.fullmatch(f"(?:{_PART.pattern})+", text):
            seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
    if seconds is None or not math.isfinite(seconds):
        raise SchemaError(f"{where}: {value!r} is not a duration (seconds, or like 90s, 10m, 2h, 1h30m)")
    if seconds < 0 or seconds > MAX_DURATION:
        raise SchemaError(f"{where}: {value!r} is out of range (0 to 366 days)")
    return seconds


def format_duration(seconds: float) -> str:
    """``7200`` -> ``2h``; ``5400`` -> ``1h30m``; ``1.5`` -> ``1.5s`` (what error messages say)."""
    if seconds != int(seconds) or seconds < 60:
        return f"{seconds:g}s"
    out, rest = "", int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out


# -- until: a point in time, often from a param ----------------------------------------------------------

_PARAMS_PREFIX = re.compile(r"\$\{params\.")


def _plain(spec: str) -> str:
    """``${params.release_at}`` and ``${release_at}`` both name the param ``release_at``."""
    return _PARAMS_PREFIX.sub("${", spec)


def until_placeholders(spec: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(spec, str):
        collect_placeholders(_plain(spec), found)
    return found


def check_until(spec: Any, where: str) -> None:
    """Refuse an ``until`` that is neither a time, nor text with placeholders filled at run time."""
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        resolve_until(spec, {}, where)
        return
    if not isinstance(spec, str) or not spec.strip():
        raise SchemaError(f"{where}: {spec!r} is not a time (ISO 8601 text or Unix seconds)")
    if not until_placeholders(spec):
        resolve_until(spec, {}, where)


def resolve_until(spec: Any, params: Mapping[str, Any], where: str) -> float:
    """The Unix time (seconds) ``spec`` names once ``params`` fill its placeholders. Raises
    :class:`SchemaError` naming the value when it is not a time."""
    value = substitute(_plain(spec), params) if isinstance(spec, str) else spec
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return moment.timestamp()
    raise SchemaError(
        f"{where}: {value!r} is not a time (ISO 8601 like 2026-12-06T10:00:00Z, or Unix seconds)"
    )


# -- definitions: which kind a node spec is, and its builder's arguments ----------------------------------


#: The keys that make a node of each kind (the others of SPECIAL_KEYS are its options).
_MAKERS: dict[NodeKind, frozenset[str]] = {
    NodeKind.WAIT: frozenset({"wait"}),
    NodeKind.SLEEP: frozenset({"sleep", "until"}),
    NodeKind.WORKFLOW: frozenset({"workflow"}),
}


def kind_of(spec: Mapping[str, Any], where: str) -> NodeKind:
    """The kind of node a definition's task entry describes (refusing a mix of kinds, and options of one
    kind given to another)."""
    kinds = [k for k, keys in _MAKERS.items() if keys & spec.keys()]
    if len(kinds) + ("task" in spec) > 1:
        named = sorted({"task"} & spec.keys() | {k.value for k in kinds})
        raise SchemaError(f"{where}: a node is one of a task, a wait, a sleep or a workflow, not {named}")
    if not kinds:
        for kind, keys in SPECIAL_KEYS.items():
            for key in sorted(keys & spec.keys()):
                raise SchemaError(f"{where}: {key!r} is an option of {kind.value} nodes")
        return NodeKind.TASK
    kind = kinds[0]
    extra = sorted(spec.keys() - SPECIAL_KEYS[kind] - COMMON_KEYS, key=str)
    if extra:
        allowed = ", ".join(sorted(SPECIAL_KEYS[kind] | COMMON_KEYS))
        raise SchemaError(f"{where}: a {kind.value} node has no {extra[0]!r} (allowed: {allowed})")
    if not spec.get("name"):
        raise SchemaError(f"{where}: a {kind.value} node needs a 'name'")
    return kind


def builder_args(kind: NodeKind, spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Keyword arguments of ``Workflow.wait`` / ``sleep`` / ``add(workflow=)`` for a definition's entry."""
    options = {k: spec[k] for k in ("when", "trigger") if k in spec}
    if kind is NodeKind.WAIT:
        if spec.get("wait", "signal") != "signal":
            raise SchemaError(f"{where}: wait must be 'signal', got {spec['wait']!r}")
        return {**options, "timeout": spec.get("timeout")}
    if kind is NodeKind.SLEEP:
        return {**options, "duration": spec.get("sleep"), "until": spec.get("until")}
    return {**options, "workflow": spec["workflow"], "params": spec.get("params")}


# -- sub-workflows: recursion and depth --------------------------------------------------------------------


def check_nesting(
    wf: Workflow,
    lookup: Callable[[str], Workflow | None],
    max_nesting: int = DEFAULT_MAX_NESTING,
    strict: bool = True,
) -> None:
    """Every sub-workflow ``wf`` runs is known to ``lookup`` (``strict=False``: an unknown one is not
    looked into), none runs itself (directly or through others), and runs nest at most ``max_nesting``
    levels below ``wf``. Raises :class:`NestingError` (a ``DefinitionError``) naming the path."""

    def visit(current: Workflow, path: list[str]) -> None:
        for node in current.nodes.values():
            if node.kind is not NodeKind.WORKFLOW or node.subworkflow is None:
                continue
            chain = [*path, node.subworkflow]
            if node.subworkflow in path:
                raise NestingError(
                    f"workflow {wf.name!r} runs itself: {' -> '.join(chain)} (node {node.name!r})"
                )
            if len(chain) - 1 > max_nesting:
                raise NestingError(
                    f"workflow {wf.name!r}: sub-workflows nest more than {max_nesting} levels deep "
                    f"({' -> '.join(chain)}; wfcelery_max_nesting)"
                )
            child = lookup(node.subworkflow)
            if child is None and not strict:
                continue
            if child is None:
                raise NestingError(
                    f"node {node.name!r} of workflow {current.name!r} runs workflow {node.subworkflow!r}, "
                    "which is not registered (engine.register() or a file in the wfcelery_definitions folder)"
                )
            visit(child, chain)

    visit(wf, [wf.name])


def names_in(values: Iterable[Any]) -> set[str]:
    """``${name}`` placeholders found in ``values`` (a workflow node's params)."""
    found: set[str] = set()
    for value in values:
        collect_placeholders(value, found)
    return found
