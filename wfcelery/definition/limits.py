"""Bounds on what a definition, a run and a result may hold: poison input is refused before a worker sees it.

Why bounds at all: a message is pickled for the prefork pool and encoded by Celery's JSON; args nested
~900 deep raise RecursionError in the worker's *main* process, which dies, and acks_late redelivers the
message to the next worker (a crash loop that starves the queue). A YAML alias bomb of 472 bytes expands
to gigabytes. A 50 MB definition becomes a 50 MB plan every worker loads. Each bound below turns one of
those into a :class:`~wfcelery.errors.LimitError` (a ``DefinitionError``) that names the node and the
limit, raised before Redis or the broker is touched.

Depth counts containers: ``[1]`` is 1 deep, ``{"a": [1]}`` 2; a node's ``args`` list is itself a level.
Every bound is a setting (``wfcelery_max_depth`` ...); :data:`DEPTH_CEILING` is the one hard limit, checked
as soon as data enters a :class:`~wfcelery.definition.model.Workflow`, so that no deeper value ever reaches
code that
recurses (``json.dumps``, pickle, the YAML composer).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wfcelery.errors import ConfigurationError, LimitError, SchemaError

#: Containers a value of args, kwargs, params or a result may nest (a node's args list counts as one).
DEFAULT_MAX_DEPTH = 64
#: Bytes of one node's args and kwargs as JSON, after params are filled in (the message's payload).
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
#: Bytes of a compiled plan (the whole definition as JSON), which the tracker stores and workers load.
DEFAULT_MAX_PLAN_BYTES = 16 * 1024 * 1024
#: Bytes of one node's result as JSON; a larger result fails its node.
DEFAULT_MAX_RESULT_BYTES = 1024 * 1024
#: Values a YAML document may hold once its aliases (``*name``) are expanded: an alias bomb stops here.
MAX_YAML_EXPANSION = 1_000_000
#: Nesting no setting can raise: pickle and ``json.dumps`` recurse, and fail near 900-1000 levels.
DEPTH_CEILING = 200


@dataclass(frozen=True)
class Limits:
    """The bounds in force; read from app.conf by :class:`~wfcelery.settings.Settings`."""

    max_depth: int = DEFAULT_MAX_DEPTH
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_plan_bytes: int = DEFAULT_MAX_PLAN_BYTES
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES

    def __post_init__(self) -> None:
        if not 1 <= self.max_depth <= DEPTH_CEILING:
            raise ConfigurationError(
                f"wfcelery_max_depth must be between 1 and {DEPTH_CEILING}, not {self.max_depth}"
            )
        for name in ("max_message_bytes", "max_plan_bytes", "max_result_bytes"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"wfcelery_{name} must be a positive number of bytes")

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> Limits:
        """``wfcelery_max_depth``, ``wfcelery_max_message_bytes``, ``wfcelery_max_plan_bytes``,
        ``wfcelery_max_result_bytes`` from a Celery app's configuration."""
        return cls(
            max_depth=int(conf.get("wfcelery_max_depth") or DEFAULT_MAX_DEPTH),
            max_message_bytes=int(conf.get("wfcelery_max_message_bytes") or DEFAULT_MAX_MESSAGE_BYTES),
            max_plan_bytes=int(conf.get("wfcelery_max_plan_bytes") or DEFAULT_MAX_PLAN_BYTES),
            max_result_bytes=int(conf.get("wfcelery_max_result_bytes") or DEFAULT_MAX_RESULT_BYTES),
        )

    def check_message(self, where: str, args: Any, kwargs: Any) -> None:
        """Refuse a node's args / kwargs nested deeper than ``max_depth`` or, together, larger than
        ``max_message_bytes`` as JSON. ``where`` names the node (``node 'load'``)."""
        check_depth(args, self.max_depth, where, "args")
        check_depth(kwargs, self.max_depth, where, "kwargs")
        size = json_size([args, kwargs], where, "args and kwargs") - 3  # less "[", "," and "]"
        if size > self.max_message_bytes:
            raise LimitError(
                f"{where}: args and kwargs are {size:,} bytes as JSON, over the limit of "
                f"{self.max_message_bytes:,} (wfcelery_max_message_bytes)"
            )

    def check_plan(self, where: str, size: int) -> None:
        if size > self.max_plan_bytes:
            raise LimitError(
                f"{where} is {size:,} bytes as JSON, over the limit of {self.max_plan_bytes:,} "
                "(wfcelery_max_plan_bytes)"
            )


def depth(value: Any, stop: int | None = None) -> int:
    """Nesting depth of lists, tuples and dicts in ``value`` (0 for a scalar), without recursion.

    Stops counting past ``stop``: a hostile value is never walked further than needed to refuse it.
    """
    if not isinstance(value, _CONTAINERS):
        return 0
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if level > deepest:
            deepest = level
            if stop is not None and deepest > stop:
                return deepest
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, level + 1) for child in children if isinstance(child, _CONTAINERS))
    return deepest


_CONTAINERS = (list, tuple, dict)


def check_depth(value: Any, limit: int, where: str, what: str) -> None:
    if depth(value, stop=limit) > limit:
        setting = "" if limit == DEPTH_CEILING else " (wfcelery_max_depth)"
        raise LimitError(f"{where}: {what} is nested more than {limit} levels deep{setting}")


def json_size(value: Any, where: str, what: str) -> int:
    """Bytes of ``value`` as compact JSON; a value JSON cannot carry is a :class:`SchemaError`."""
    try:
        return len(json.dumps(value, separators=(",", ":")))  # ASCII (escaped): characters are bytes
    except (TypeError, ValueError, RecursionError) as e:
        raise SchemaError(
            f"{where}: {what} must be JSON data (str, number, bool, None, list, dict): {e}"
        ) from e
