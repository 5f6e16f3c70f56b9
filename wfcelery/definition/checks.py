"""Checks of definition data: allowed keys, option types, JSON-able values, task names, cycles."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from wfcelery.definition.limits import DEPTH_CEILING, check_depth, json_size
from wfcelery.definition.pools import check_pool_name
from wfcelery.definition.registry import did_you_mean
from wfcelery.definition.rules import TRIGGER_RULES, compile_condition
from wfcelery.errors import (
    SchemaError,
)


def find_cycle(parents: Mapping[str, Sequence[str]]) -> list[str] | None:
    """Return one cycle (first node repeated at the end) in a parent map, or None. Iterative DFS."""
    color: dict[str, int] = {}  # 1 = on the stack, 2 = done
    for start in parents:
        if color.get(start):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(parents.get(start, ())))]
        path = [start]
        color[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                color[node] = 2
                stack.pop()
                path.pop()
            elif color.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                return list(reversed(cycle))  # parent lists run backwards: show edges forwards
            elif not color.get(nxt) and nxt in parents:
                color[nxt] = 1
                stack.append((nxt, iter(parents[nxt])))
                path.append(nxt)
    return None


def check_keys(d: dict[str, Any], allowed: frozenset[str], where: str) -> dict[str, Any]:
    unknown = sorted(set(d) - allowed, key=str)  # key=str: a YAML key may be a number
    if unknown:
        first = unknown[0]
        hint = did_you_mean(first, allowed) if isinstance(first, str) else ""
        raise SchemaError(f"{where}: unknown key {first!r}{hint} (allowed: {', '.join(sorted(allowed))})")
    return d


def as_mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SchemaError(f"{where} must be a mapping, got {value!r}")
    return dict(value)


def task_name_of(task: Any, node: str) -> str:
    name = task if isinstance(task, str) else getattr(task, "name", None)
    if not isinstance(name, str) or not name:
        raise SchemaError(
            f"node {node!r}: task must be a Celery task or a registered task name, got {task!r}"
        )
    return name


_FLAGS = frozenset({"immutable", "gather"})


def is_type(value: Any, key: str) -> bool:
    # bool is an int subclass: refuse retries=True and friends
    return isinstance(value, OPTION_TYPES[key]) and (key in _FLAGS or not isinstance(value, bool))


def coerce_options(options: dict[str, Any], node: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in options.items():
        if value is None:
            continue
        if not is_type(value, key):
            raise SchemaError(f"node {node!r}: {key} must be {OPTION_TYPES[key][0].__name__}, got {value!r}")
        if key == "retries" and value < 0:
            raise SchemaError(f"node {node!r}: retries must be >= 0, got {value}")
        if key in ("max_map", "when", "trigger"):
            check_option(node, key, value)
        if key == "pool":
            check_pool_name(value, f"node {node!r}: pool")
        if key in ("args", "kwargs"):
            check_json(value, node, key)
        out[key] = list(value) if key == "args" else value
    if out.get("gather") and out.get("immutable"):
        raise SchemaError(
            f"node {node!r}: gather and immutable exclude each other (immutable takes no results)"
        )
    return out


def check_json(value: Any, node: str, key: str) -> None:
    # Args travel as JSON (the stored plan, Celery's json serializer): refuse now what would fail at submit.
    # The depth check comes first and never recurses: json.dumps would hit RecursionError near 1000 levels.
    check_depth(value, DEPTH_CEILING, f"node {node!r}", key)
    json_size(value, f"node {node!r}", key)
    if key == "kwargs" and not all(isinstance(k, str) for k in value):
        raise SchemaError(f"node {node!r}: kwargs keys must be strings, got {list(value)!r}")


def check_option(node: str, key: str, value: Any) -> None:
    """Refuse a bad ``max_map``, ``when`` or ``trigger`` value, naming the node."""
    if key == "max_map" and value < 1:
        raise SchemaError(f"node {node!r}: max_map must be >= 1, got {value}")
    if key == "trigger" and value not in TRIGGER_RULES:
        raise SchemaError(
            f"node {node!r}: unknown trigger rule {value!r}{did_you_mean(value, TRIGGER_RULES)} "
            f"(one of: {', '.join(TRIGGER_RULES)})"
        )
    if key == "when":
        try:
            compile_condition(value)
        except ValueError as e:
            raise SchemaError(f"node {node!r}: when: {e}") from e


def map_source(options: Mapping[str, Any]) -> list[str]:
    source = options.get("map")
    return [source] if isinstance(source, str) else []


OPTION_TYPES: dict[str, tuple[type, ...]] = {
    "args": (list, tuple),
    "kwargs": (dict,),
    "type": (str,),
    "queue": (str,),
    "retries": (int,),
    "immutable": (bool,),
    "gather": (bool,),
    "time_limit": (int, float),
    "soft_time_limit": (int, float),
    "priority": (int,),
    "pool": (str,),
    "map": (str,),
    "max_map": (int,),
    "when": (str,),
    "trigger": (str,),
}
