"""A node of a workflow: its task, parents and options, and the ``>>`` operators that add edges."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wfcelery.definition.checks import (
    check_option,
)
from wfcelery.definition.waits import NodeKind
from wfcelery.errors import (
    SchemaError,
    UnknownParentError,
)

if TYPE_CHECKING:
    from wfcelery.definition.model import Workflow


@dataclass(eq=False)
class Node:
    """One node of a workflow: a task (:meth:`Workflow.add`), or a node with no task
    (:meth:`Workflow.wait`, :meth:`Workflow.sleep`, ``Workflow.add(name, workflow=...)``)."""

    workflow: Workflow = field(repr=False)
    name: str
    task: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    type: str | None = None
    queue: str | None = None
    retries: int = 0
    immutable: bool = False
    gather: bool = False  # always one list of the parents' results, also with one parent
    after: list[str] = field(default_factory=list)
    time_limit: float | None = None
    soft_time_limit: float | None = None
    priority: int | None = None
    pool: str | None = None  # at most the pool's slots RUNNING at once, its rate of starts (ops/pools.py)
    map: str | None = None  # one instance per element of this parent's list result
    max_map: int | None = None  # most elements that map may fan out to (None: the default, rules.py)
    when: str | None = None  # JMESPath condition over {"params", "results"}; false -> SKIPPED
    trigger: str = "all_success"  # Airflow's trigger rule names (rules.TRIGGER_RULES)
    # nodes with no task (definition/waits.py): ``task`` is "" and ``kind`` says what the node is
    kind: NodeKind = NodeKind.TASK
    timeout: float | str | None = None  # wait: fail when no signal came within it (a duration)
    sleep: float | str | None = None  # sleep: for how long (a duration)
    until: float | str | None = None  # sleep: until when (a time, or "${params.name}")
    subworkflow: str | None = None  # workflow: the registered workflow to run as a child run
    params: dict[str, Any] | None = None  # workflow: the child run's params (placeholders: the parent's)

    def __rshift__(self, other: Node | Sequence[Node]) -> Any:
        """``a >> b`` makes ``a`` a parent of ``b``; ``a >> [b, c]`` fans out. Returns the right side."""
        for child in as_nodes(other):
            child._add_parent(self)
        return other

    def __rrshift__(self, other: Sequence[Node]) -> Node:
        """``[a, b] >> c`` fans in: ``c`` waits for both."""
        self._add_parents(as_nodes(other))
        return self

    def _add_parent(self, parent: Node) -> None:
        self._add_parents([parent])

    def _add_parents(self, parents: list[Node]) -> None:
        known = set(self.after)  # a set: `[10_000 nodes] >> join` must not be quadratic
        for parent in parents:
            if parent.workflow is not self.workflow:
                raise UnknownParentError(
                    f"node {parent.name!r} belongs to another workflow than {self.name!r}"
                )
            if parent.name not in known:
                known.add(parent.name)
                self.after.append(parent.name)

    def to_dict(self) -> dict[str, Any]:
        """This node in the definition schema (only options that differ from the built-in defaults)."""
        if self.kind is not NodeKind.TASK:
            return special_dict(self)
        d: dict[str, Any] = {"name": self.name, "task": self.task}
        for key in ("args", "kwargs", "type", "queue", "time_limit", "soft_time_limit", "priority", "pool"):
            value = getattr(self, key)
            if value not in (None, [], {}):
                d[key] = value
        if self.retries:
            d["retries"] = self.retries
        if self.immutable:
            d["immutable"] = True
        if self.gather:
            d["gather"] = True
        if self.after:
            d["after"] = list(self.after)
        d.update(dynamic_dict(self))
        return d


def as_nodes(value: Node | Sequence[Node]) -> list[Node]:
    items = [value] if isinstance(value, Node) else list(value)
    for item in items:
        if not isinstance(item, Node):
            raise TypeError(f">> expects workflow nodes (or lists of them), got {item!r}")
    return items


def node_name(parent: str | Node) -> str:
    return parent.name if isinstance(parent, Node) else parent


def check_dynamic(node: Node) -> None:
    """The checks that need the whole workflow (run by :meth:`Workflow.validate`)."""
    for key in ("max_map", "when", "trigger"):
        if getattr(node, key) is not None:
            check_option(node.name, key, getattr(node, key))
    if node.map is None:
        return
    if node.map not in node.after:
        raise UnknownParentError(
            f"node {node.name!r} maps over {node.map!r}, which is not one of its parents"
        )
    if node.immutable:
        raise SchemaError(f"node {node.name!r}: map and immutable exclude each other (map passes an element)")


def dynamic_dict(node: Node) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if node.map is not None:
        d["map"] = node.map
        if node.max_map is not None:
            d["max_map"] = node.max_map
    if node.when is not None:
        d["when"] = node.when
    if node.trigger != "all_success":
        d["trigger"] = node.trigger
    return d


def special_dict(node: Node) -> dict[str, Any]:
    """A node with no task in the definition schema."""
    d: dict[str, Any] = {"name": node.name}
    if node.kind is NodeKind.WAIT:
        d["wait"] = "signal"
        if node.timeout is not None:
            d["timeout"] = node.timeout
    elif node.kind is NodeKind.SLEEP:
        d.update({k: v for k in ("sleep", "until") if (v := getattr(node, k)) is not None})
    else:
        d["workflow"] = node.subworkflow
        if node.params:
            d["params"] = dict(node.params)
    if node.after:
        d["after"] = list(node.after)
    d.update(dynamic_dict(node))
    return d
