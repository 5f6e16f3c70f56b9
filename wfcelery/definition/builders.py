"""The builders of nodes with no task, mixed into :class:`~wfcelery.definition.model.Workflow`:
``wait``, ``sleep`` and ``add(name, workflow=...)`` (their meaning: :mod:`wfcelery.definition.waits`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from wfcelery.definition.checks import as_mapping, coerce_options
from wfcelery.definition.limits import DEPTH_CEILING, check_depth, json_size
from wfcelery.definition.node import Node, node_name
from wfcelery.definition.waits import NodeKind, check_until, parse_duration
from wfcelery.errors import DuplicateNodeError, SchemaError

#: What a node name (and a sub-workflow's name) may be made of.
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$")

#: Options of ``Workflow.add`` that only a task node has.
TASK_OPTIONS = (
    *("args", "kwargs", "type", "queue", "retries", "immutable", "gather"),
    *("time_limit", "soft_time_limit", "priority", "pool", "map", "max_map"),
)


class SpecialNodes:
    """``Workflow.wait``, ``Workflow.sleep`` and the sub-workflow case of ``Workflow.add``."""

    name: str
    nodes: dict[str, Node]
    defaults: dict[str, Any]

    def wait(
        self,
        name: str,
        *,
        after: Iterable[str | Node] | str | Node = (),
        timeout: float | str | None = None,
        when: str | None = None,
        trigger: str | None = None,
    ) -> Node:
        """Add a node that waits for a signal: WAITING (no worker, no message) until
        ``run.signal(name, payload)``; the payload is its result, which its children get as any result.

        Args:
            name: The node's name.
            after: Parent nodes (or their names).
            timeout: How long to wait, from when the node is reached (seconds or ``"2h"``); past it the
                node FAILS ("no signal within 2h") and the failure policy applies. None: no timeout.
            when: A condition, as for :meth:`add`.
            trigger: A trigger rule, as for :meth:`add`.
        """
        if timeout is not None:
            parse_duration(timeout, f"node {name!r}: timeout")
        return self._add_special(name, NodeKind.WAIT, after, when, trigger, timeout=timeout)

    def sleep(
        self,
        name: str,
        duration: float | str | None = None,
        *,
        after: Iterable[str | Node] | str | Node = (),
        until: float | str | None = None,
        when: str | None = None,
        trigger: str | None = None,
    ) -> Node:
        """Add a durable sleep: the node SUCCEEDS (result None) ``duration`` after it was reached, or at
        ``until``. The timer lives in Redis: it holds no worker and no message, and survives restarts.

        Args:
            name: The node's name.
            duration: How long (seconds, or ``"10m"``, ``"1h30m"``).
            after: Parent nodes (or their names).
            until: Instead of ``duration``, a time: ISO 8601 text (UTC without an offset), Unix seconds,
                or a param's value, ``"${params.release_at}"``. A time past is no wait at all.
            when: A condition, as for :meth:`add`.
            trigger: A trigger rule, as for :meth:`add`.
        """
        if (duration is None) == (until is None):
            raise SchemaError(f"node {name!r}: a sleep takes a duration or until=..., exactly one of them")
        if duration is not None:
            parse_duration(duration, f"node {name!r}: sleep")
        else:
            check_until(until, f"node {name!r}: until")
        return self._add_special(name, NodeKind.SLEEP, after, when, trigger, sleep=duration, until=until)

    def _add_workflow(
        self,
        name: str,
        task: Any,
        workflow: str | None,
        params: Any,
        after: Iterable[str | Node] | str | Node,
        given: Mapping[str, Any],
    ) -> Node:
        """``add(name, workflow=..., params=...)``; ``given``: the other options ``add`` was passed."""
        task_only = [k for k in TASK_OPTIONS if given.get(k) is not None]
        if task is not None or task_only:
            what = "a task" if task is not None else task_only[0]
            raise SchemaError(f"node {name!r}: a workflow node runs a child run: it takes no {what}")
        if not isinstance(workflow, str) or not NAME.match(workflow):
            raise SchemaError(f"node {name!r}: workflow must be a workflow's name, got {workflow!r}")
        params = as_mapping(params, f"node {name!r}: params")
        check_depth(params, DEPTH_CEILING, f"node {name!r}", "params")
        json_size(params, f"node {name!r}", "params")
        when, trigger = given.get("when"), given.get("trigger")
        return self._add_special(
            name, NodeKind.WORKFLOW, after, when, trigger, subworkflow=workflow, params=params
        )

    def _add_special(
        self,
        name: str,
        kind: NodeKind,
        after: Iterable[str | Node] | str | Node,
        when: str | None,
        trigger: str | None,
        **fields: Any,
    ) -> Node:
        """A node with no task (definition/waits.py); of the defaults only ``trigger`` applies to it."""
        self._check_name(name)
        options = coerce_options(
            {"when": when, "trigger": trigger if trigger is not None else self.defaults.get("trigger")}, name
        )
        if isinstance(after, str | Node):
            after = [after]
        parents = list(dict.fromkeys(node_name(p) for p in after))
        workflow: Any = self  # the Workflow this is mixed into
        node = Node(workflow, name, "", after=parents, kind=kind, **options, **fields)
        self.nodes[name] = node
        return node

    def _check_name(self, name: str) -> None:
        if not isinstance(name, str) or not NAME.match(name):
            raise SchemaError(f"node name {name!r} is not a valid name (letters, digits, _ . : -)")
        if name in self.nodes:
            raise DuplicateNodeError(f"duplicate node name {name!r} in workflow {self.name!r}")
