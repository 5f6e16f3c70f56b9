"""The JSON Schema of definition files, generated from the model's own key sets and option types (one
source of truth: :data:`~wfcelery.definition.model.NODE_KEYS`, ``DEFAULT_KEYS``, ``WORKFLOW_KEYS``,
:data:`~wfcelery.definition.checks.OPTION_TYPES`, the trigger rules, failure policies and executors).

``wfcelery schema`` prints it, for editors (the YAML language server, VS Code, JetBrains: documented in
the docs); :func:`check_definition` validates a parsed file with it (`jsonschema
<https://python-jsonschema.readthedocs.io>`_, a maintained validator) and turns the first problem, in
document order, into one :class:`~wfcelery.errors.SchemaError` naming where it is in the file
(``flow.yaml: tasks[1]: node 'load': retries must be int, got '3'``) and, for a misspelled key or rule,
the closest valid one. What a schema cannot say (a cycle, an unknown parent, args too deep) is checked by
the model afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from wfcelery.definition.checks import OPTION_TYPES
from wfcelery.definition.executor import Executor
from wfcelery.definition.model import (
    _NAME,
    DEFAULT_KEYS,
    FAILURE_POLICIES,
    NODE_KEYS,
    WORKFLOW_KEYS,
)
from wfcelery.definition.pools import POOL_NAME
from wfcelery.definition.registry import did_you_mean
from wfcelery.definition.rules import TRIGGER_RULES
from wfcelery.definition.runlimits import RunLimits
from wfcelery.definition.schedule import SCHEDULE_KEYS
from wfcelery.errors import SchemaError

#: The executors a definition may name (the Executor enum's values).
EXECUTORS = tuple(e.value for e in Executor)

#: The ``$id`` of the schema (a name, not a download location: ``wfcelery schema`` prints it).
SCHEMA_ID = "https://wfcelery.dev/schemas/definition.json"

_JSON_TYPES = {list: "array", tuple: "array", dict: "object", str: "string", bool: "boolean", int: "integer"}

#: What each option means, shown by editors as the key's description.
_DESCRIPTIONS = {
    "name": "The node's name, unique in the workflow (letters, digits, _ . : -); default: the task name.",
    "task": "The registered Celery task name; default: the node's name.",
    "args": "Positional arguments (JSON); ${param} placeholders are filled at submit.",
    "kwargs": "Keyword arguments (JSON); ${param} placeholders are filled at submit.",
    "type": "The node's type: routes it to the queue of that name (or wfcelery_routes[type]).",
    "queue": "The queue to send the node to (overrides type).",
    "retries": "How many times a failed attempt is retried (a retry of the run gives them again).",
    "immutable": "true: the node does not receive its parent's result as first argument.",
    "gather": "true: always one list of the parents' results, also with one parent.",
    "after": "Parent node names (one name, or a list).",
    "time_limit": "Hard time limit in seconds (Celery's time_limit).",
    "soft_time_limit": "Soft time limit in seconds (Celery's soft_time_limit).",
    "priority": "Message priority (Celery's priority); among waiters of one pool, higher goes first.",
    "pool": "A pool (wfcelery_pools): at most its slots RUNNING at once, at most its rate of starts.",
    "map": "A parent whose result is a list: one instance of this node per element.",
    "max_map": "Most elements map may fan out to.",
    "when": "A JMESPath condition over {params, results}; false: the node is SKIPPED.",
    "trigger": "When the node runs once its parents are done (Airflow's trigger rules).",
    "wait": "signal: a node with no task, WAITING until run.signal() (the payload is its result).",
    "timeout": "A wait's timeout, from when it is reached (seconds, or 90s, 10m, 2h): then it FAILS.",
    "sleep": "A durable sleep (seconds, or 90s, 10m, 2h): the node SUCCEEDS that long after it is reached.",
    "until": "A durable sleep until a time: ISO 8601 (UTC without an offset), Unix seconds or ${param}.",
    "workflow": "A registered workflow to run as a child run; its results (by node) are the result.",
    "params": "With workflow: the child run's params (${param} placeholders: this run's params).",
}

#: Schemas of the options of nodes with no task (definition/waits.py).
_DURATION = {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}]}
_SPECIAL_OPTIONS: dict[str, dict[str, Any]] = {
    "wait": {"enum": ["signal"]},
    "timeout": _DURATION,
    "sleep": _DURATION,
    "until": {"anyOf": [{"type": "number"}, {"type": "string"}]},
    "workflow": {"type": "string", "pattern": _NAME.pattern},
    "params": {"type": "object"},
}


def _option(key: str) -> dict[str, Any]:
    """The schema of one node option, from its Python type(s) and the model's own bounds."""
    types = OPTION_TYPES.get(key)
    schema: dict[str, Any]
    if key == "name":
        schema = {"type": "string", "pattern": _NAME.pattern}
    elif key == "task":
        schema = {"type": "string", "minLength": 1}
    elif key == "after":
        schema = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
    elif key == "trigger":
        schema = {"enum": list(TRIGGER_RULES)}
    elif key in _SPECIAL_OPTIONS:
        schema = dict(_SPECIAL_OPTIONS[key])
    elif types == (int, float):
        schema = {"type": "number"}
    else:
        assert types is not None, f"no type for node option {key!r} (checks.OPTION_TYPES)"
        schema = {"type": _JSON_TYPES[types[0]]}
    if key == "retries":
        schema["minimum"] = 0
    if key == "max_map":
        schema["minimum"] = 1
    if key == "pool":
        schema["pattern"] = POOL_NAME.pattern
    return {**schema, "description": _DESCRIPTIONS.get(key, "")}


@cache
def _schedule() -> dict[str, Any]:
    """A definition file's own schedule (the definitions folder schedules it)."""
    fields: dict[str, Any] = {
        "cron": {"type": "string", "description": "A cron expression (5 fields, or 6 with seconds)."},
        "every": {
            "anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string"}],
            "description": "Seconds between slots, or a duration like 15m.",
        },
        "timezone": {"type": "string", "description": "An IANA time zone (default UTC)."},
        "params": {"type": "object", "description": "Params of every run the schedule fires."},
        "catchup": {"type": "boolean", "description": "Fire the slots missed during downtime."},
        "max_active_runs": {"type": "integer", "minimum": 1, "description": "Live runs at most."},
    }
    assert fields.keys() == SCHEDULE_KEYS, "schedule keys without a schema"
    return {"type": "object", "properties": fields, "additionalProperties": False}


def definition_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a definition file (YAML or JSON)."""
    task = {
        "type": "object",
        "description": "One node: a Celery task with its arguments, parents and options, or a node with "
        "no task (wait, sleep, workflow).",
        "properties": {key: _option(key) for key in sorted(NODE_KEYS)},
        "additionalProperties": False,
        "anyOf": [{"required": ["name"]}, {"required": ["task"]}],
    }
    defaults = {
        "type": "object",
        "description": "Options every node takes unless it sets its own.",
        "properties": {key: _option(key) for key in sorted(DEFAULT_KEYS)},
        "additionalProperties": False,
    }
    top = {
        "name": {"type": "string", "minLength": 1, "description": "The workflow's name."},
        "on_failure": {"enum": list(FAILURE_POLICIES), "description": "What a node failing for good does."},
        "executor": {
            "enum": list(EXECUTORS),
            "description": "How runs are published (default: the setting).",
        },
        "defaults": {"$ref": "#/$defs/defaults"},
        "params": {"type": "object", "description": "Default values of ${param} placeholders."},
        "tasks": {"type": "array", "items": {"$ref": "#/$defs/task"}, "description": "The nodes."},
        "stages": {
            "type": "array",
            "items": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "description": "Sequential stages of parallel tasks (task names).",
        },
        "schedule": _schedule(),
        "max_active_runs": {
            "type": "integer",
            "minimum": 1,
            "description": "Runs RUNNING at once at most (per concurrency_key value); more wait QUEUED.",
        },
        "concurrency_key": {
            "type": "string",
            "minLength": 1,
            "description": "A JMESPath expression over {params: ...}: one max_active_runs limit per value.",
        },
        "deadline": {
            "anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string"}],
            "description": "A run not ended this long after its submit FAILS (seconds, or like 30m, 2h).",
        },
    }
    missing = WORKFLOW_KEYS - top.keys()
    assert not missing, f"top-level keys without a schema: {sorted(missing)}"
    # a JSON definition may name its schema for editors; the model ignores it
    schema_key = {
        "$schema": {"type": "string", "description": "The JSON Schema editors check this file with."}
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "wfcelery workflow definition",
        "type": "object",
        "required": ["name"],
        "properties": {**{key: top[key] for key in sorted(WORKFLOW_KEYS)}, **schema_key},
        "additionalProperties": False,
        "$defs": {"task": task, "defaults": defaults},
    }


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(definition_schema())


def check_definition(data: Any, source: str = "definition") -> None:
    """Validate parsed definition data against :func:`definition_schema`.

    Raises:
        SchemaError: the first problem in document order, naming where it is (``source: tasks[1]: ...``).
    """
    if not isinstance(data, Mapping):
        raise SchemaError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    errors = list(_validator().iter_errors(data))
    if errors:
        first = min(errors, key=lambda e: _position(data, e))
        raise SchemaError(_message(data, first, source))


def _position(data: Any, error: ValidationError) -> tuple[tuple[int, ...], int]:
    """Where an error is, in document order (a key by its place in its mapping); structural problems
    (unknown keys, a missing name) before the values under them."""
    place: list[int] = []
    node = data
    for part in error.absolute_path:
        if isinstance(node, Mapping):
            keys = list(node)
            place.append(keys.index(part) if part in keys else len(keys))
        else:
            place.append(int(part))
        node = node[part]
    return tuple(place), 0 if error.validator in ("additionalProperties", "required", "anyOf") else 1


def _message(data: Any, error: ValidationError, source: str) -> str:
    path = list(error.absolute_path)
    value: Any = error.instance
    if error.validator == "additionalProperties":
        schema: Any = error.schema
        allowed = sorted(schema.get("properties", {}))
        unknown = sorted(set(value) - set(allowed), key=str)[0]
        where = _where(data, path, source, label=False)
        return f"{where}: unknown key {unknown!r}{_hint(unknown, allowed)} (allowed: {', '.join(allowed)})"
    if len(path) <= 1 or path[0] == "stages" or (path[0] == "tasks" and len(path) == 2):
        return _top_message(data, error, path, source)
    key = path[-1]
    where = _where(data, path[:-1], source)
    if key == "after":
        return f"{where}: 'after' must be a list of node names, got {value!r}"
    if key == "task":
        return f"{where}: task must be a Celery task or a registered task name, got {value!r}"
    if key == "name":
        return f"{where}: node name {value!r} is not a valid name (letters, digits, _ . : -)"
    if key == "trigger":
        hint = _hint(value, TRIGGER_RULES)
        return f"{where}: unknown trigger rule {value!r}{hint} (one of: {', '.join(TRIGGER_RULES)})"
    if error.validator == "minimum":
        return f"{where}: {key} must be >= {error.validator_value}, got {value!r}"
    if key in OPTION_TYPES:
        return f"{where}: {key} must be {OPTION_TYPES[key][0].__name__}, got {value!r}"
    return f"{_where(data, path, source)}: {error.message}"  # pragma: no cover - every rule is named above


def _top_message(data: Any, error: ValidationError, path: list[Any], source: str) -> str:
    """An error about a top-level key, or about one item of ``tasks`` or ``stages`` as a whole."""
    value: Any = error.instance
    head = path[0] if path else None
    if head is None or head == "name":
        return f"{source}: 'name' is required and must be a string"
    if head == "on_failure":
        policies = ", ".join(FAILURE_POLICIES)
        return (
            f"{source}: on_failure must be one of {policies}, not {value!r}{_hint(value, FAILURE_POLICIES)}"
        )
    if head == "executor":
        return f"{source}: executor: unknown executor {value!r}{_hint(value, EXECUTORS)}; choose one of " + (
            ", ".join(EXECUTORS)
        )
    if head in ("defaults", "params"):
        return f"{source}: {head} must be a mapping, got {value!r}"
    if head in RUN_LIMIT_KEYS:
        return _limit_message(head, value, source)
    if len(path) == 1:
        what = "a list" if head == "tasks" else "a list of lists of task names"
        return f"{source}: '{head}' must be {what}"
    where = _where(data, path, source, label=False)
    if head == "stages":
        return f"{where}: a stage is a task name or a list of task names, got {value!r}"
    if error.validator == "anyOf":
        return f"{where}: needs 'name' or 'task'"
    return f"{where}: expected a mapping, got {value!r}"


#: Top-level keys of run limits (runlimits.py words their errors).
RUN_LIMIT_KEYS = ("max_active_runs", "concurrency_key", "deadline")


def _limit_message(key: str, value: Any, source: str) -> str:
    given = {"max_active_runs": 1, key: value}  # a key's own error, not "needs max_active_runs"
    try:
        RunLimits.check(**given)
    except SchemaError as e:
        return f"{source}: {e}"
    return f"{source}: {key}: {value!r} is not allowed"  # pragma: no cover - the checks refuse first


def _where(data: Any, path: Sequence[Any], source: str, label: bool = True) -> str:
    """``source: tasks[1]: node 'load'`` (with ``label``, a node is also named by its name),
    ``source: defaults``."""
    parts = [source]
    if path[:1] == ["tasks"] and len(path) >= 2:
        parts.append(f"tasks[{path[1]}]")
        spec = data["tasks"][path[1]]
        name = (spec.get("name") or spec.get("task")) if isinstance(spec, Mapping) else None
        if label and isinstance(name, str) and name:
            parts.append(f"node {name!r}")
    elif path[:1] == ["stages"] and len(path) >= 2:
        parts.append(f"stages[{path[1]}]" + "".join(f"[{p}]" for p in path[2:]))
    elif path:
        parts.append(str(path[0]))
    return ": ".join(parts)


def _hint(word: Any, candidates: Iterable[str]) -> str:
    return did_you_mean(word, candidates) if isinstance(word, str) else ""
