"""Workflow -> :class:`Plan`: one Celery task message per node, and the edges the tracker releases.

Every node compiles to a single, fully-formed Celery task message (task name, args,
kwargs, queue, limits, priority, a task id derived from run id, node index and run epoch). Edges are held
by the tracker: when a node succeeds, one Lua call counts it into each child and hands back the children
whose parents have all succeeded, with their parents' results, and the worker publishes them.

Why not Celery's own chain / chord here (docs: design decisions):
  * a chain message carries the rest of the chain (quadratic in its length) and a chord header carries
    its body; a chord costs ~2x a plain task and a worker that publishes chords subscribes to every
    header result and never unsubscribes (CELERY-NOTES);
  * chain/chord express only series-parallel graphs; the counter expresses every DAG exactly;
  * pause/resume/retry must re-plan any subset of nodes under fresh ids; one mechanism (the counter)
    stays correct where Celery's chain continuation would publish stale steps.
A one-parent edge is a chain link (the parent's result is the first argument); a several-parent edge is a
flat chord (one list of results in parent order) -- the same result semantics, one reliable shape.

A Plan is built from the definition only (no params), so every run of the same definition shares it:
workers cache plans by digest and the tracker stores each definition once.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from wfcelery.definition.executor import Executor
from wfcelery.definition.limits import Limits
from wfcelery.definition.model import Workflow
from wfcelery.definition.params import substitute
from wfcelery.definition.rules import Graph
from wfcelery.definition.waits import NodeKind, format_duration, parse_duration
from wfcelery.tracker.keys import Slot, instance_name, split_slot, task_id
from wfcelery.tracker.records import kwargs_repr, message_headers

#: Plans kept in memory per process (workers look a plan up on every task).
PLAN_CACHE_SIZE = 512


@dataclass(frozen=True)
class PlanNode:
    index: int
    name: str
    task: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    queue: str | None
    retries: int
    immutable: bool
    parents: tuple[int, ...]
    children: tuple[int, ...]
    options: Mapping[str, Any] = field(default_factory=dict)  # time limits, priority
    # dynamic options (rules.py): map source (a parent's index), its limit, condition, trigger rule
    map: int | None = None
    max_map: int | None = None
    when: str | None = None
    trigger: str = "all_success"
    gather: bool = False  # one list of parent results, also with one parent
    pool: str | None = None  # the pool its starts are counted in (ops/pools.py)
    # a node with no task (definition/waits.py): what it is, and what it waits for
    kind: NodeKind = NodeKind.TASK
    timeout: float | None = None  # wait: seconds before it fails (None: no timeout)
    sleep: float | None = None  # sleep: seconds
    until: float | str | None = None  # sleep: a time, or text with params placeholders
    subworkflow: str | None = None  # workflow: the child workflow's name
    params: Mapping[str, Any] | None = None  # workflow: the child run's params (placeholders unfilled)

    @property
    def has_task(self) -> bool:
        """False for a wait, a sleep or a sub-workflow node (no Celery message is ever sent for it)."""
        return self.kind is NodeKind.TASK

    def describe(self) -> str:
        """The task's name, or what a node with no task does: ``wait for a signal (timeout 2h)``."""
        if self.kind is NodeKind.WAIT:
            return "wait for a signal" + (
                f" (timeout {format_duration(self.timeout)})" if self.timeout else ""
            )
        if self.kind is NodeKind.SLEEP:
            return (
                f"sleep {format_duration(self.sleep)}"
                if self.sleep is not None
                else f"sleep until {self.until}"
            )
        if self.kind is NodeKind.WORKFLOW:
            return f"workflow {self.subworkflow}"
        return self.task

    def takes_list(self) -> bool:
        """Whether the node receives its parents' results as one list (several parents, or ``gather``)."""
        return not self.immutable and (len(self.parents) > 1 or (self.gather and bool(self.parents)))


#: Fan-in children of at most this many parents get their inputs from the succeed script (Plan.fetch).
FETCH_MAX = 32


@dataclass(frozen=True)
class Plan:
    name: str
    on_failure: str
    nodes: tuple[PlanNode, ...]
    definition: Mapping[str, Any]
    digest: str
    blob: str = field(repr=False)  # what the tracker stores: definition + routes, JSON in written order
    #: "counters" or "canvas" (segments.py): part of the blob, so a worker knows it from the plan alone
    executor: Executor = Executor.COUNTERS
    #: Sub-workflow node index -> the digest of the child's plan (stored beside this one at submit)
    subplans: Mapping[int, str] = field(default_factory=dict)

    @cached_property
    def by_name(self) -> dict[str, PlanNode]:
        return {n.name: n for n in self.nodes}

    @cached_property
    def pools(self) -> frozenset[str]:
        """The pools its nodes are in (empty for most plans: their release path skips the pools)."""
        return frozenset(n.pool for n in self.nodes if n.pool is not None)

    @cached_property
    def releases(self) -> tuple[tuple[tuple[int, int], ...], ...]:
        """Per node: (child, number of the child's parents) -- what the succeed script counts."""
        return tuple(tuple((c, len(self.nodes[c].parents)) for c in n.children) for n in self.nodes)

    @cached_property
    def fetch(self) -> tuple[tuple[int, ...], ...]:
        """Per node: the other parents of its fan-in children (of up to :data:`FETCH_MAX` parents), whose
        results the succeed script returns when it releases one, so that publishing the child needs no
        read of its own. A wider join's parents are read once, when it is released (worker.py)."""
        out = []
        for n in self.nodes:
            wanted = {
                p
                for c in n.children
                if 1 < len(self.nodes[c].parents) <= FETCH_MAX
                for p in self.nodes[c].parents
                if p != n.index
            }
            out.append(tuple(sorted(wanted)))
        return tuple(out)

    @cached_property
    def parents(self) -> tuple[tuple[int, ...], ...]:
        """Per node: its parents' indexes (what resume and retry re-plan from)."""
        return tuple(n.parents for n in self.nodes)

    @cached_property
    def graph(self) -> Graph:
        """Parents, trigger rules and map sources: what the rules (rules.py) decide on."""
        return Graph(
            [n.parents for n in self.nodes], [n.trigger for n in self.nodes], [n.map for n in self.nodes]
        )

    @cached_property
    def dynamic(self) -> bool:
        """Whether any node maps, has a condition or a trigger rule other than all_success."""
        return any(n.map is not None or n.when is not None or n.trigger != "all_success" for n in self.nodes)

    @cached_property
    def rule_spec(self) -> str:
        """The trigger-rule graph the Lua scripts decide on (``lua/_common.lua``), or '' for a plan with
        only all_success nodes and no condition (the scripts' plain counters then suffice)."""
        if not self.dynamic:
            return ""
        letters = {"all_success": "s", "all_done": "d", "all_failed": "a", "one_failed": "f"}
        letters |= {"one_success": "o", "none_failed": "n"}
        survivors = self.graph.survivors
        spec = {
            "r": "".join(letters[n.trigger] for n in self.nodes),
            "p": [len(n.parents) for n in self.nodes],
            "c": [list(n.children) for n in self.nodes],
            "v": "".join("1" if n.index in survivors else "0" for n in self.nodes),
            "m": [-1 if n.map is None else n.map for n in self.nodes],
        }
        return json.dumps(spec, separators=(",", ":"))

    @cached_property
    def roots(self) -> tuple[int, ...]:
        return tuple(n.index for n in self.nodes if not n.parents)

    @cached_property
    def has_placeholders(self) -> bool:
        return "${" in json.dumps([[n.args, n.kwargs] for n in self.nodes])

    def descendants(self, indexes: Iterable[int]) -> list[int]:
        """Every node reachable from ``indexes`` (excluded), in index order."""
        seen: set[int] = set()
        stack = list(indexes)
        while stack:
            for child in self.nodes[stack.pop()].children:
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        return sorted(seen)

    def message(
        self,
        run_id: str,
        index: Slot,
        epoch: int,
        params: Mapping[str, Any],
        parent_results: Sequence[Any] = (),
    ) -> dict[str, Any]:
        """Keyword arguments for ``app.send_task`` that publish node ``index`` of a run.

        ``parent_results`` are the parents' results in parent order: one parent -> first positional
        argument (like a chain), several (or ``gather``) -> one list (like a chord), ``immutable`` -> none.
        An instance of a mapped node (``index`` ``"<node>:<i>"``) gets its element instead:
        ``parent_results`` is ``[element]``; it is named ``node[i]`` in its headers and in Flower.
        """
        node_index, instance = split_slot(index)
        node = self.nodes[node_index]
        name = node.name if instance is None else instance_name(node.name, instance)
        args = list(node.args)
        kwargs = dict(node.kwargs)
        if params and self.has_placeholders:
            args, kwargs = substitute(args, params), substitute(kwargs, params)
        if instance is not None:
            args.insert(0, parent_results[0])
        elif node.parents and not node.immutable:
            args.insert(0, list(parent_results) if node.takes_list() else parent_results[0])
        msg: dict[str, Any] = {
            "args": args,
            "kwargs": kwargs,
            "task_id": task_id(run_id, index, epoch),
            # Flower shows and indexes kwargsrepr: `kwargs:wf_run=<id>` finds every task of a run.
            "kwargsrepr": kwargs_repr(kwargs, run_id, name, params),
            "headers": message_headers(run_id, name, self.digest),
            **node.options,
        }
        if node.queue:
            msg["queue"] = node.queue
        return msg

    def release_rules(self) -> list[dict[str, str]]:
        """What the compiler produced, for ``wfcelery graph``: per node, one task message, when the
        tracker releases it (``released``) and what it gets from its parents (``receives``)."""
        return [
            {
                "node": n.name,
                "task": n.describe(),
                "queue": n.queue or "(default)",
                "released": self._released(n),
                "receives": self._receives(n),
            }
            for n in self.nodes
        ]

    def _released(self, node: PlanNode) -> str:
        names = [self.nodes[p].name for p in node.parents]
        condition = f", if {node.when}" if node.when else ""
        if not names:
            return "at submit" + condition
        if node.trigger != "all_success":
            return f"when {', '.join(names)} are done, by rule {node.trigger}{condition}"
        if len(names) == 1:
            return f"when {names[0]} succeeds{condition}"
        return f"when {', '.join(names)} have all succeeded (counter){condition}"

    def _receives(self, node: PlanNode) -> str:
        if node.kind is NodeKind.WAIT:
            return "nothing: the signal's payload is its result"
        if node.kind is NodeKind.SLEEP:
            return "nothing: its result is null"
        if node.kind is NodeKind.WORKFLOW:
            return "nothing: its child run's results (by node) are its result"
        if node.map is not None:
            return f"one instance per element of {self.nodes[node.map].name}'s list, element first (map)"
        if not node.parents or node.immutable:
            return "its own args"
        if not node.takes_list():
            return "parent's result first (chain)"
        return "parents' results as one list (chord)" + (" (gather)" if len(node.parents) == 1 else "")


def compile_workflow(
    wf: Workflow,
    routes: Mapping[str, str] | None = None,
    limits: Limits | None = None,
    executor: Executor | str | None = None,
    subplans: Mapping[str, str] | None = None,
) -> Plan:
    """Compile a validated workflow. Routing (``type`` -> queue, renamed by ``routes``) is resolved here.

    ``subplans``: the plan digest of each sub-workflow node's child workflow, by node name (the client
    compiles and stores them at submit: ``ops.subruns``); part of the stored blob.

    A node's queue: its ``queue`` option, else its ``type`` (mapped through ``routes``), else none (the
    app's own ``task_routes`` / default queue decide, as for any Celery task).

    The stored blob keeps every mapping in the order it was written (kwargs reach non-root nodes as
    written; sorting keys would reorder user data), so the digest -- a hash of the blob -- tells apart
    two definitions that differ only in key order. A plan over ``limits.max_plan_bytes`` is refused.
    """
    routes = dict(routes or {})
    definition = wf.to_dict()
    names = list(wf.nodes)
    index = {name: i for i, name in enumerate(names)}
    children: dict[int, list[int]] = {i: [] for i in range(len(names))}
    for name, node in wf.nodes.items():
        for parent in node.after:
            children[index[parent]].append(index[name])
    nodes = tuple(
        PlanNode(
            index=i,
            name=name,
            task=node.task,
            args=tuple(node.args),
            kwargs=dict(node.kwargs),
            queue=node.queue or (routes.get(node.type, node.type) if node.type else None),
            retries=node.retries,
            immutable=node.immutable,
            gather=node.gather,
            parents=tuple(index[p] for p in node.after),
            children=tuple(children[i]),
            options={
                k: v
                for k in ("time_limit", "soft_time_limit", "priority")
                if (v := getattr(node, k)) is not None
            },
            map=None if node.map is None else index[node.map],
            max_map=node.max_map,
            when=node.when,
            trigger=node.trigger,
            pool=node.pool,
            **_special(node),
        )
        for i, (name, node) in enumerate(wf.nodes.items())
    )
    executor = Executor(executor or wf.executor or Executor.COUNTERS)
    stored: dict[str, Any] = {"definition": definition, "routes": dict(sorted(routes.items()))}
    if executor is not Executor.COUNTERS:  # counters plans keep the digest they always had
        stored["executor"] = executor.value
    if subplans:
        stored["subplans"] = {name: subplans[name] for name in names if name in subplans}
    blob = json.dumps(stored, separators=(",", ":"))
    (limits or Limits()).check_plan(f"workflow {wf.name!r}: the compiled plan", len(blob))
    digest = hashlib.sha1(blob.encode()).hexdigest()
    by_index = {index[name]: d for name, d in (subplans or {}).items() if name in index}
    return Plan(wf.name, wf.on_failure, nodes, definition, digest, blob, executor, by_index)


def _special(node: Any) -> dict[str, Any]:
    """PlanNode fields of a node with no task (none for a task)."""
    if node.kind is NodeKind.TASK:
        return {}
    where = f"node {node.name!r}"
    return {
        "kind": node.kind,
        "timeout": None if node.timeout is None else parse_duration(node.timeout, where),
        "sleep": None if node.sleep is None else parse_duration(node.sleep, where),
        "until": node.until,
        "subworkflow": node.subworkflow,
        "params": dict(node.params or {}),
    }


def plan_from_blob(blob: str) -> Plan:
    """Rebuild a plan stored by :attr:`Plan.blob` (workers do this once per definition)."""
    data = json.loads(blob)
    # The client checked the plan's size against its own settings when it stored it.
    return compile_workflow(
        Workflow.from_dict(data["definition"]),
        data["routes"],
        Limits(max_plan_bytes=len(blob)),
        Executor(data.get("executor", Executor.COUNTERS.value)),
        data.get("subplans"),
    )


class PlanCache:
    """Plans by digest, decoded once per process and kept most-recently-used first.

    ``load(digest)`` returns a stored :attr:`Plan.blob` (the tracker's ``plan_blob``).
    """

    def __init__(self, load: Callable[[str], str], size: int = PLAN_CACHE_SIZE) -> None:
        self._load = load
        self._size = size
        self._plans: OrderedDict[str, Plan] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: str) -> Plan:
        with self._lock:
            plan = self._plans.get(digest)
            if plan is not None:
                self._plans.move_to_end(digest)
                return plan
        return self.remember(plan_from_blob(self._load(digest)))

    def remember(self, plan: Plan) -> Plan:
        with self._lock:
            self._plans[plan.digest] = plan
            while len(self._plans) > self._size:
                self._plans.popitem(last=False)
        return plan
