"""Workflow definitions: the Python builder, the dict schema, validation and params.

A :class:`Workflow` is a DAG of :class:`Node` s. Each node names a Celery task (registered name or task
object), its own args/kwargs, its ``type`` (which picks the queue) and per-node options. Edges come from
``after=[...]``, from ``a >> b`` (lists fan out / fan in), or from :meth:`Workflow.stages`.

Nodes keep insertion order; a node's index in that order is its id inside a run (task ids, Redis fields).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from wfcelery.definition.builders import NAME, SpecialNodes
from wfcelery.definition.checks import (
    as_mapping,
    check_keys,
    coerce_options,
    find_cycle,
    map_source,
    task_name_of,
)
from wfcelery.definition.executor import Executor
from wfcelery.definition.limits import DEPTH_CEILING, Limits, check_depth, json_size
from wfcelery.definition.node import Node, check_dynamic, node_name
from wfcelery.definition.params import BUILTIN_PARAMS, collect_placeholders, param_problem, substitute
from wfcelery.definition.registry import did_you_mean, task_names
from wfcelery.definition.rules import condition_params
from wfcelery.definition.runlimits import RunLimits
from wfcelery.definition.schedule import ScheduleSpec
from wfcelery.definition.waits import (
    SPECIAL_KEYS,
    NodeKind,
    builder_args,
    kind_of,
    names_in,
    until_placeholders,
)
from wfcelery.errors import (
    CycleError,
    EmptyWorkflowError,
    NestingError,
    ParamError,
    ScheduleError,
    SchemaError,
    UnknownParentError,
    UnknownTaskError,
)

#: Failure policies a workflow may name.
FAILURE_POLICIES = ("fail_fast", "continue")

#: Keys a node may carry in a definition (:meth:`Workflow.add` takes the same as keyword arguments).
NODE_KEYS = frozenset(
    {
        "name",
        "task",
        "args",
        "kwargs",
        "type",
        "queue",
        "retries",
        "immutable",
        "gather",
        "after",
        "time_limit",
        "soft_time_limit",
        "priority",
        "pool",
        *("map", "max_map", "when", "trigger"),  # dynamic options (rules.py)
        *(key for keys in SPECIAL_KEYS.values() for key in keys),  # nodes with no task (waits.py)
    }
)
#: Keys ``defaults`` may set for every node (a map source or a condition belongs to one node).
DEFAULT_KEYS = (
    NODE_KEYS
    - {"name", "task", "after", "map", "when"}
    - {key for keys in SPECIAL_KEYS.values() for key in keys}
)
#: Top-level keys of a definition.
WORKFLOW_KEYS = frozenset(
    {"name", "on_failure", "defaults", "tasks", "stages", "params", "executor", "schedule"}
    | {"max_active_runs", "concurrency_key", "deadline"}  # run limits (runlimits.py)
)

_NAME = NAME


def check_executor(value: Any, where: str) -> Executor | None:
    """The :class:`Executor` ``value`` names (None for None); else a :class:`SchemaError` naming it."""
    if value is None:
        return None
    try:
        return Executor(value)
    except ValueError:
        choices = ", ".join(e.value for e in Executor)
        raise SchemaError(f"{where}: unknown executor {value!r}; choose one of {choices}") from None


class Workflow(SpecialNodes):
    """A named DAG of tasks.

    Example:
        >>> wf = Workflow("etl")
        >>> e = wf.add("extract", "shop.extract", args=["${day}"], type="io")
        >>> t = wf.add("transform", "shop.transform", type="cpu")
        >>> e >> t  # doctest: +ELLIPSIS
        Node(name='transform', ...)
    """

    def __init__(
        self,
        name: str,
        on_failure: str = "fail_fast",
        defaults: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        executor: Executor | str | None = None,
        schedule: ScheduleSpec | None = None,
        max_active_runs: int | None = None,
        concurrency_key: str | None = None,
        deadline: str | float | None = None,
    ) -> None:
        """A workflow named ``name``; ``max_active_runs`` (runs of it RUNNING at once; more wait QUEUED),
        ``concurrency_key`` (a JMESPath expression over ``{"params": ...}``: one limit per value) and
        ``deadline`` (a duration like ``"30m"``: a run not ended by then FAILS, "deadline exceeded") are
        its run limits (docs: operations, runs). Raises SchemaError naming a bad one."""
        if on_failure not in FAILURE_POLICIES:
            raise SchemaError(f"on_failure must be one of {', '.join(FAILURE_POLICIES)}, not {on_failure!r}")
        #: The executor this definition asks for (None: ``submit(executor=)`` or ``wfcelery_executor``).
        self.executor = check_executor(executor, "executor")
        self.name = name
        self.on_failure = on_failure
        self.defaults: dict[str, Any] = check_keys(dict(defaults or {}), DEFAULT_KEYS, "defaults")
        self.params: dict[str, Any] = dict(params or {})
        check_depth(self.params, DEPTH_CEILING, f"workflow {name!r}", "params")
        self.nodes: dict[str, Node] = {}
        #: A definition file's top-level ``schedule:`` (the ``wfcelery_definitions`` folder schedules it).
        self.schedule = schedule
        #: Limits on this workflow's runs (max_active_runs, concurrency_key, deadline).
        self.limits = RunLimits.check(max_active_runs, concurrency_key, deadline, f"workflow {name!r}")

    def __repr__(self) -> str:
        return f"<Workflow {self.name!r} nodes={len(self.nodes)}>"

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def add(
        self,
        name: str,
        task: Any = None,
        *,
        workflow: str | None = None,
        params: Mapping[str, Any] | None = None,
        after: Iterable[str | Node] | str | Node = (),
        args: list[Any] | tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        type: str | None = None,
        queue: str | None = None,
        retries: int | None = None,
        immutable: bool | None = None,
        gather: bool | None = None,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
        priority: int | None = None,
        pool: str | None = None,
        map: str | Node | None = None,
        max_map: int | None = None,
        when: str | None = None,
        trigger: str | None = None,
    ) -> Node:
        """Add a node running ``task`` and return it.

        Every option left at ``None`` takes the workflow's ``defaults`` (then the built-in default).
        Values are checked here, so a bad definition fails where it is written, not at submit.

        Args:
            name: The node's name, unique in the workflow (letters, digits, ``_ . : -``).
            task: A Celery task object or a registered task name.
            workflow: Instead of a task, the name of a registered workflow (``engine.register()`` or the
                ``wfcelery_definitions`` folder) to run as a child run: the node SUCCEEDS with the child's
                results (a dict by node name) or FAILS with its error summary (docs: waiting).
            params: With ``workflow``: the child run's params; ``${name}`` placeholders are filled from this
                run's params.
            after: Parent nodes (or their names); one node or name is one parent.
            args: Positional arguments (JSON data; ``"${param}"`` placeholders are filled at submit).
            kwargs: Keyword arguments (JSON data, string keys; placeholders as for ``args``).
            type: The node's type; routes it to the queue of that name unless ``queue`` is given.
            queue: The queue to send the node to; overrides ``type``.
            retries: How many times a failed attempt is retried (``>= 0``; default 0).
            immutable: True: the node does not receive its parent's result as first argument.
            gather: True: the node always receives one list of its parents' results, also with one
                parent (as a chord body does); excludes ``immutable``.
            time_limit: Hard time limit in seconds (Celery's ``time_limit``).
            soft_time_limit: Soft time limit in seconds (Celery's ``soft_time_limit``).
            priority: Message priority (Celery's ``priority``); among nodes waiting for the same pool, a
                higher priority is released first.
            pool: A pool of ``wfcelery_pools`` (or ``engine.set_pool``): at most its slots RUNNING at
                once across every worker and run, and at most its rate of starts (docs: pools and rate
                limits). An unknown pool is refused at submit.
            map: A parent (or its name) whose result is a list: one instance of this node runs per
                element, getting it as first argument (docs: dynamic workflows); the edge is added.
            max_map: Most elements ``map`` may fan out to (default 10,000, capped by ``wfcelery_max_map``).
            when: A JMESPath condition over ``{"params": ..., "results": {parent: result}}``; false: the
                node is SKIPPED.
            trigger: When the node runs once its parents are done: ``all_success`` (default),
                ``all_done``, ``all_failed``, ``one_failed``, ``one_success`` or ``none_failed``.

        Raises:
            SchemaError: A bad name or option value (wrong type, negative retries, args not JSON, a
                JMESPath syntax error, an unknown trigger rule).
            LimitError: args or kwargs nested deeper than :data:`~wfcelery.definition.limits.DEPTH_CEILING`
                (the configured ``wfcelery_max_depth`` and sizes are checked by :meth:`validate`).
            DuplicateNodeError: The workflow already has a node of that name.
        """
        self._check_name(name)
        options = {
            "args": args,
            "kwargs": kwargs,
            "type": type,
            "queue": queue,
            "retries": retries,
            "immutable": immutable,
            "gather": gather,
            "time_limit": time_limit,
            "soft_time_limit": soft_time_limit,
            "priority": priority,
            "pool": pool,
            "map": map.name if isinstance(map, Node) else map,
            "max_map": max_map,
            "when": when,
            "trigger": trigger,
        }
        if workflow is not None or params is not None:
            return self._add_workflow(name, task, workflow, params, after, options)
        if task is None:
            raise SchemaError(f"node {name!r}: give a task (or workflow=... to run a registered workflow)")
        merged = {**self.defaults, **{k: v for k, v in options.items() if v is not None}}
        if isinstance(after, str | Node):  # after="load" is one parent, not four
            after = [after]
        # a parent listed twice is one edge; a map source is a parent (added last when not listed)
        parents = list(dict.fromkeys([*(node_name(p) for p in after), *map_source(merged)]))
        node = Node(self, name, task_name_of(task, name), after=parents, **coerce_options(merged, name))
        self.nodes[name] = node
        return node

    def stages(self, *stages: Sequence[str | Node] | str | Node) -> list[list[Node]]:
        """Chain stages: every node of a stage waits for every node of the previous stage.

        Items are nodes or node names; a name with no node yet adds a node running the task of that name.
        """
        resolved: list[list[Node]] = []
        for stage in stages:
            items = [stage] if isinstance(stage, str | Node) else list(stage)
            nodes = [
                item if isinstance(item, Node) else self.nodes.get(item) or self.add(item, item)
                for item in items
            ]
            if resolved:
                for node in nodes:
                    resolved[-1] >> node
            resolved.append(nodes)
        return resolved

    # -- validation -------------------------------------------------------------------------------------

    def validate(self, app: Any = None, limits: Limits | None = None) -> Workflow:
        """Check the DAG (and, given a Celery app, that every task is registered) and that every node's
        args and kwargs are within ``limits`` (default: :class:`~wfcelery.definition.limits.Limits` ()).
        Returns ``self``."""
        if not self.nodes:
            raise EmptyWorkflowError(f"workflow {self.name!r} has no tasks")
        for node in self.nodes.values():
            for parent in node.after:
                if parent not in self.nodes:
                    what = "maps over unknown node" if parent == node.map else "lists unknown parent"
                    hint = did_you_mean(parent, set(self.nodes) - {node.name})
                    raise UnknownParentError(f"node {node.name!r} {what} {parent!r}{hint}")
        cycle = find_cycle({n.name: n.after for n in self.nodes.values()})
        if cycle:
            raise CycleError(cycle)
        for node in self.nodes.values():
            check_dynamic(node)
            if node.subworkflow == self.name:
                raise NestingError(f"workflow {self.name!r} runs itself: node {node.name!r}")
        if app is not None:
            registered = task_names(app)  # the app's task modules imported, as its workers do
            for node in self.nodes.values():
                if node.kind is NodeKind.TASK and node.task not in registered and node.task not in app.tasks:
                    raise UnknownTaskError(
                        f"node {node.name!r} names task {node.task!r}, which is not registered in app "
                        f"{app.main!r}{did_you_mean(node.task, registered)}"
                    )
        limits = limits or Limits()
        for node in self.nodes.values():
            limits.check_message(f"node {node.name!r}", node.args, node.kwargs)
        check_depth(self.params, limits.max_depth, f"workflow {self.name!r}", "params")
        return self

    def placeholders(self) -> set[str]:
        """Names of every ``${name}`` placeholder: in the nodes' args and kwargs, a sleep's ``until`` and
        a child workflow's ``params``."""
        return {name for node in self.nodes.values() for name in _node_placeholders(node)}

    def placeholder_users(self) -> dict[str, list[str]]:
        """Each ``${name}`` placeholder -> the nodes that use it, in definition order."""
        users: dict[str, list[str]] = {}
        for node in self.nodes.values():
            for name in sorted(_node_placeholders(node)):
                users.setdefault(name, []).append(node.name)
        return users

    def param_names(self) -> set[str]:
        """Every param this workflow knows: its placeholders, the params it declares defaults for and the
        params its ``when`` conditions and its ``concurrency_key`` read (``params.<name>``; optional: a
        missing one is null)."""
        read = {name for node in self.nodes.values() if node.when for name in condition_params(node.when)}
        if self.limits.concurrency_key:
            read |= condition_params(self.limits.concurrency_key)
        return self.placeholders() | self.params.keys() | read

    def missing_params(self, params: Mapping[str, Any] | None = None) -> list[str]:
        """Placeholders that neither ``params`` nor the workflow's own defaults give a value, sorted."""
        return sorted(self.placeholders() - self.params.keys() - (params or {}).keys())

    def resolve_params(
        self, params: Mapping[str, Any] | None, limits: Limits | None = None
    ) -> dict[str, Any]:
        """Merge run params over the workflow's defaults and check them: every placeholder has a value,
        and each node's args and kwargs, params filled in, are still within ``limits``.

        Raises:
            ParamError: a param the workflow does not know (a typo: ``chanel`` for ``channel``), or a
                placeholder left without a value (a misspelled ``${dya}`` next to ``day`` is named as such).
            LimitError: params, or a node's args and kwargs with them, over ``limits``.
        """
        given = dict(params or {})
        own = [name for name in given if name not in BUILTIN_PARAMS]  # run_key, scheduled_at: always known
        missing = self.missing_params(given)
        problem = param_problem(self.name, self.param_names(), own, missing, self.placeholder_users())
        if problem:
            raise ParamError(problem)
        merged = {**self.params, **given}
        limits = limits or Limits()
        check_depth(merged, limits.max_depth, f"workflow {self.name!r}", "params")
        json_size(merged, f"workflow {self.name!r}", "params")
        for node in self.nodes.values():
            found: set[str] = set()
            collect_placeholders([node.args, node.kwargs], found)
            if found:
                args, kwargs = substitute(node.args, merged), substitute(node.kwargs, merged)
                limits.check_message(f"node {node.name!r} (params filled in)", args, kwargs)
        return merged

    def to_canvas(self, app: Any, params: Mapping[str, Any] | None = None, exact: bool = True) -> Any:
        """The workflow as one native Celery signature: chains of tasks and flat chords, each task routed
        to its queue, params filled in, limits and priority set, every task id fixed up front.

        Runs on any Celery worker of ``app`` (wfcelery not needed there) and embeds in other canvas:
        ``chain(prep.s(), wf.to_canvas(app), notify.s())``. Its result is the last node's result, or the
        list of the last branches' results. Raises :class:`~wfcelery.errors.NotSeriesParallel` where
        chains and chords cannot express the DAG exactly; ``exact=False`` adds barriers instead and warns
        (``FalseDependencyWarning``) naming the waits it added. Nodes with ``retries`` get a
        ``RetriesNotCarriedWarning``: only the tracker retries them. See :mod:`wfcelery.plan.canvas`.
        """
        # The translator builds on the compiler, which builds on this module: it is imported when
        # called, so importing the model never loads Celery's canvas machinery.
        from wfcelery.plan.canvas import to_canvas

        return to_canvas(self, app, params, exact)

    # -- dict schema ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """This workflow in the definition schema; ``Workflow.from_dict(wf.to_dict())`` rebuilds it."""
        d: dict[str, Any] = {
            "name": self.name,
            "on_failure": self.on_failure,
            "tasks": [n.to_dict() for n in self.nodes.values()],
        }
        if self.params:
            d["params"] = dict(self.params)
        if self.executor:
            d["executor"] = self.executor.value
        if self.schedule is not None:
            d["schedule"] = self.schedule.to_dict()
        d.update(self.limits.to_dict())
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "definition") -> Workflow:
        """Build a workflow from a YAML/JSON definition (docs: defining workflows). Raises SchemaError."""
        if not isinstance(data, Mapping):
            raise SchemaError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
        # "$schema" names the JSON Schema an editor validates the file with (``wfcelery schema``)
        check_keys({k: v for k, v in data.items() if k != "$schema"}, WORKFLOW_KEYS, source)
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise SchemaError(f"{source}: 'name' is required and must be a string")
        wf = cls(
            name,
            on_failure=data.get("on_failure", "fail_fast"),
            defaults=as_mapping(data.get("defaults"), f"{source}: defaults"),
            params=as_mapping(data.get("params"), f"{source}: params"),
            executor=check_executor(data.get("executor"), f"{source}: executor"),
            schedule=_schedule(data.get("schedule"), source),
            **_limits(data, source),
        )
        tasks = data.get("tasks") or []
        if not isinstance(tasks, list):
            raise SchemaError(f"{source}: 'tasks' must be a list")
        for i, spec in enumerate(tasks):
            where = f"{source}: tasks[{i}]"
            if not isinstance(spec, Mapping):
                raise SchemaError(f"{where}: expected a mapping, got {spec!r}")
            spec = dict(spec)
            check_keys(spec, NODE_KEYS, where)
            if not spec.get("name") and not spec.get("task"):
                raise SchemaError(f"{where}: needs 'name' or 'task'")
            kind = kind_of(spec, where)
            node_name = spec.pop("name", None) or spec["task"]
            after = spec.pop("after", [])
            if isinstance(after, str):
                after = [after]
            if not isinstance(after, list):
                raise SchemaError(f"{where}: 'after' must be a list of node names")
            if kind is NodeKind.TASK:
                wf.add(node_name, spec.pop("task", node_name), after=after, **spec)
            elif kind is NodeKind.WORKFLOW:
                wf.add(node_name, after=after, **builder_args(kind, spec, where))
            else:
                builder = wf.wait if kind is NodeKind.WAIT else wf.sleep
                builder(node_name, after=after, **builder_args(kind, spec, where))
        stages = data.get("stages")
        if stages is not None:
            if not isinstance(stages, list):
                raise SchemaError(f"{source}: 'stages' must be a list of lists of task names")
            wf.stages(*stages)
        return wf


def _limits(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The run limits a definition sets, checked (a SchemaError names the file and the key)."""
    limits = RunLimits.check(
        data.get("max_active_runs"), data.get("concurrency_key"), data.get("deadline"), source
    )
    return {
        "max_active_runs": limits.max_active_runs,
        "concurrency_key": limits.concurrency_key,
        "deadline": limits.deadline,
    }


def _schedule(data: Any, source: str) -> ScheduleSpec | None:
    if data is None:
        return None
    try:
        return ScheduleSpec.from_dict(data)
    except ScheduleError as e:
        field = e.field if e.field.startswith("schedule") else f"schedule.{e.field}"
        raise ScheduleError(field, e.detail, where=source) from None


# -- dynamic options: map, max_map, when, trigger (their meaning lives in rules.py) ----------------------


def _node_placeholders(node: Node) -> set[str]:
    found: set[str] = set()
    collect_placeholders([node.args, node.kwargs], found)
    return found | until_placeholders(node.until) | names_in((node.params or {}).values())
