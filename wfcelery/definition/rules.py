"""The semantics of dynamic workflows: trigger rules, skip propagation, fail_fast, conditions and maps.

This module is the specification the tracker implements (its Lua scripts mirror :func:`decide` and
:class:`Cascade`); it is pure Python, so the rules are tested on their own against a simulated tracker
(tests/unit/test_rules.py) for random DAGs, outcomes and rules.

**Trigger rules** (Airflow's names and meaning) decide whether a node runs once its parents are terminal:

============  =================================================  ==========================================
rule          runs when its parents are all terminal and ...      otherwise the node becomes SKIPPED as
============  =================================================  ==========================================
all_success   every parent succeeded (the default)                upstream-failed if one failed, else skipped
all_done      always (a notify or cleanup node)                   --
all_failed    every parent failed                                 skipped
one_failed    at least one parent failed                          skipped
one_success   at least one parent succeeded                       skipped if all were skipped, else
                                                                  upstream-failed
none_failed   no parent failed (they succeeded or were skipped)   upstream-failed
============  =================================================  ==========================================

A parent *failed* when it is FAILED, REVOKED, or SKIPPED *because* something upstream failed
("upstream-failed", Airflow's ``upstream_failed``); a parent skipped by a false ``when`` or by a rule that
was not met (nothing failed) is *skipped*. wfcelery shows both as SKIPPED; the reason is in the node's error.

Decisions are exact and timing-free: a node runs only once every parent is terminal (unlike Airflow, where
``one_success``/``one_failed`` fire at the first such parent: here a node always gets all its parents'
results), and a node is skipped before that only when no later parent could change the outcome
(``all_success``/``none_failed`` at the first failed parent, ``all_failed`` at the first success or skip).
So every node ends in one state, a function of its parents' final states: none is left PENDING. A root
(no parents) always runs, whatever its rule.

**fail_fast** gives up on success at the first failure: every node that has not started is REVOKED, except
the failure handlers -- nodes whose rule runs after failures (all_done, all_failed, one_failed) and the
nodes whose parents are all such survivors (a handler's own follow-up). Those are decided by the rules as
usual, and the run ends FAILED once they are done. **continue** revokes nothing: the rules decide every node.
A run ends FAILED when a node FAILED or was REVOKED; SKIPPED nodes alone do not fail it.

**when** is a JMESPath expression (https://jmespath.org; no Python eval) over
``{"params": <run params>, "results": {<parent>: <result>}}``, evaluated once the trigger rule says run.
Truthiness is JMESPath's: false, null, "", [] and {} are false; everything else (0 included) is true.
False -> the node is SKIPPED (skipped, not upstream-failed).

**map** runs one instance of a node per element of one parent's list result (``node[0]``, ``node[1]``...),
each getting its element as the first argument. The node is terminal when every instance is: SUCCEEDED
with the list of instance results in element order (``[]`` for an empty list) when all succeeded, else
FAILED. A result that is not a list, or longer than the node's limit, fails the node.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import jmespath
import jmespath.exceptions
import jmespath.functions

from wfcelery.settings import DEFAULT_MAX_MAP
from wfcelery.tracker.states import NodeStatus, RunStatus


class TriggerRule(str, Enum):
    ALL_SUCCESS = "all_success"
    ALL_DONE = "all_done"
    ALL_FAILED = "all_failed"
    ONE_FAILED = "one_failed"
    ONE_SUCCESS = "one_success"
    NONE_FAILED = "none_failed"

    def __str__(self) -> str:
        return self.value


#: Every trigger rule name, the default first.
TRIGGER_RULES: tuple[str, ...] = tuple(rule.value for rule in TriggerRule)
#: Rules that can run after a failure: fail_fast does not revoke these nodes.
FAILURE_HANDLERS = frozenset({TriggerRule.ALL_DONE, TriggerRule.ALL_FAILED, TriggerRule.ONE_FAILED})


class Outcome(str, Enum):
    """What a terminal node means to its children."""

    SUCCESS = "success"  # SUCCEEDED
    FAILED = "failed"  # FAILED, REVOKED, or SKIPPED because something upstream failed
    SKIPPED = "skipped"  # SKIPPED by a false condition or an unmet rule, with nothing failed


class Verdict(str, Enum):
    """A trigger rule's decision for one node."""

    WAIT = "wait"  # a parent is not terminal yet and could still change the outcome
    RUN = "run"
    SKIP = "skip"  # SKIPPED, outcome skipped
    UPSTREAM_FAILED = "upstream_failed"  # SKIPPED, outcome failed

    @property
    def outcome(self) -> Outcome:
        return Outcome.FAILED if self is Verdict.UPSTREAM_FAILED else Outcome.SKIPPED


@dataclass(frozen=True)
class Tally:
    """How many of a node's ``total`` parents ended in each outcome so far."""

    total: int
    success: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def done(self) -> int:
        return self.success + self.failed + self.skipped

    def add(self, outcome: Outcome) -> Tally:
        return Tally(
            self.total,
            self.success + (outcome is Outcome.SUCCESS),
            self.failed + (outcome is Outcome.FAILED),
            self.skipped + (outcome is Outcome.SKIPPED),
        )

    @classmethod
    def of(cls, outcomes: Sequence[Outcome | None]) -> Tally:
        """Tally of a node whose parents' outcomes are ``outcomes`` (None: not terminal yet)."""
        tally = cls(len(outcomes))
        for outcome in outcomes:
            if outcome is not None:
                tally = tally.add(outcome)
        return tally


def decide(rule: TriggerRule | str, tally: Tally) -> Verdict:
    """Apply a trigger rule to the parents' outcomes so far (see the module docstring's table)."""
    rule = TriggerRule(rule)
    if not tally.total:
        return Verdict.RUN  # a root always runs (as in Airflow: no upstream, nothing to check)
    if rule in (TriggerRule.ALL_SUCCESS, TriggerRule.NONE_FAILED) and tally.failed:
        return Verdict.UPSTREAM_FAILED
    if rule is TriggerRule.ALL_FAILED and (tally.success or tally.skipped):
        return Verdict.SKIP
    if tally.done < tally.total:
        return Verdict.WAIT
    if rule is TriggerRule.ALL_SUCCESS and tally.skipped:
        return Verdict.SKIP
    if rule is TriggerRule.ONE_FAILED and not tally.failed:
        return Verdict.SKIP
    if rule is TriggerRule.ONE_SUCCESS and not tally.success:
        return Verdict.SKIP if tally.skipped == tally.total else Verdict.UPSTREAM_FAILED
    return Verdict.RUN


def outcome_of(status: NodeStatus, upstream_failed: bool = False) -> Outcome:
    """A terminal status as its children see it (``upstream_failed``: why a SKIPPED node was skipped)."""
    if status is NodeStatus.SUCCEEDED:
        return Outcome.SUCCESS
    if status is NodeStatus.SKIPPED and not upstream_failed:
        return Outcome.SKIPPED
    if status.terminal:
        return Outcome.FAILED
    raise ValueError(f"{status} is not a terminal status")


def run_status(statuses: Iterable[NodeStatus]) -> RunStatus | None:
    """The status a run ends with once every node is terminal (None while one is not)."""
    statuses = list(statuses)
    if not all(s.terminal for s in statuses):
        return None
    bad = any(s in (NodeStatus.FAILED, NodeStatus.REVOKED) for s in statuses)
    return RunStatus.FAILED if bad else RunStatus.SUCCEEDED


# -- propagation: what the tracker does when a node becomes terminal --------------------------------------


@dataclass(frozen=True)
class Graph:
    """The part of a plan the rules need: per node index, its parents (in ``after`` order), children,
    trigger rule and map source (a parent index, or None)."""

    parents: Sequence[Sequence[int]]
    rules: Sequence[TriggerRule | str]
    maps: Sequence[int | None] = ()
    children: Sequence[Sequence[int]] = field(init=False)

    def __post_init__(self) -> None:
        children: list[list[int]] = [[] for _ in self.parents]
        for child, parents in enumerate(self.parents):
            for parent in parents:
                children[parent].append(child)
        object.__setattr__(self, "children", children)
        if not self.maps:
            object.__setattr__(self, "maps", [None] * len(self.parents))

    @functools.cached_property
    def survivors(self) -> frozenset[int]:
        """Nodes fail_fast does not revoke: failure handlers, and nodes whose parents all survive."""
        kept: set[int] = set()
        for node in topological_order(self.parents):
            parents = self.parents[node]
            if TriggerRule(self.rules[node]) in FAILURE_HANDLERS or (parents and kept.issuperset(parents)):
                kept.add(node)
        return frozenset(kept)


def topological_order(parents: Sequence[Sequence[int]]) -> list[int]:
    """Node indexes, every node after its parents (Kahn; the graph is known to be acyclic)."""
    waiting = [len(p) for p in parents]
    children: list[list[int]] = [[] for _ in parents]
    for child, ps in enumerate(parents):
        for parent in ps:
            children[parent].append(child)
    order = [n for n, count in enumerate(waiting) if not count]
    for node in order:  # appended to while iterating: a queue
        for child in children[node]:
            waiting[child] -= 1
            if not waiting[child]:
                order.append(child)
    return order


@dataclass
class Step:
    """What one terminal transition caused: nodes to publish, and nodes settled SKIPPED with their reason."""

    released: list[int] = field(default_factory=list)
    skipped: list[tuple[int, Verdict]] = field(default_factory=list)


class Cascade:
    """Incremental trigger-rule evaluation, as the tracker does it: each terminal node is counted into its
    children's tallies once; a child is decided the moment its verdict is not WAIT. Skipping a node is
    itself a terminal transition, so skips cascade within the same call."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.tallies = [Tally(len(p)) for p in graph.parents]
        self.outcomes: dict[int, Outcome] = {}
        self.decided: set[int] = set()

    def start(self) -> list[int]:
        """The roots: released at submit."""
        roots = [n for n, parents in enumerate(self.graph.parents) if not parents]
        self.decided.update(roots)
        return roots

    def settle(self, node: int, outcome: Outcome) -> Step:
        """``node`` became terminal with ``outcome``: count it, and decide the children it settles."""
        step = Step()
        stack = [(node, outcome)]
        self.decided.add(node)
        while stack:
            current, result = stack.pop()
            self.outcomes[current] = result
            for child in self.graph.children[current]:
                self.tallies[child] = self.tallies[child].add(result)
                if child in self.decided:
                    continue  # skipped early, or revoked by fail_fast: counted, nothing to decide
                verdict = self.verdict(child)
                if verdict is Verdict.WAIT:
                    continue
                self.decided.add(child)
                if verdict is Verdict.RUN:
                    step.released.append(child)
                else:
                    step.skipped.append((child, verdict))
                    stack.append((child, verdict.outcome))
        return step

    def settle_all(self, nodes: Sequence[int], outcome: Outcome) -> Step:
        """Settle several nodes at once (fail_fast's revocation): none of them is decided by another's
        cascade, so the result does not depend on their order."""
        self.decided.update(nodes)
        step = Step()
        for node in nodes:
            more = self.settle(node, outcome)
            step.released += more.released
            step.skipped += more.skipped
        return step

    def verdict(self, node: int) -> Verdict:
        verdict = decide(self.graph.rules[node], self.tallies[node])
        source = self.graph.maps[node]
        if verdict is Verdict.RUN and source is not None:
            return map_verdict(self.outcomes[source])
        return verdict


def map_verdict(source: Outcome) -> Verdict:
    """A mapped node the rule lets run still needs its map source's list: the source must have succeeded."""
    if source is Outcome.SUCCESS:
        return Verdict.RUN
    return Verdict.UPSTREAM_FAILED if source is Outcome.FAILED else Verdict.SKIP


# -- conditions -----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def compile_condition(expression: str) -> Any:
    """Compile a ``when`` expression. Raises ValueError naming the problem (syntax, unknown function)."""
    try:
        parsed = jmespath.compile(expression)
    except jmespath.exceptions.JMESPathError as e:
        raise ValueError(f"invalid JMESPath expression {expression!r}: {_one_line(e)}") from e
    unknown = sorted(_functions(parsed.parsed) - set(jmespath.functions.Functions.FUNCTION_TABLE))
    if unknown:
        raise ValueError(f"invalid JMESPath expression {expression!r}: unknown function {unknown[0]}()")
    return parsed


def condition_params(expression: str) -> set[str]:
    """The run params a condition reads (``params.<name>``): params a run may pass (never required)."""
    found: set[str] = set()
    stack = [compile_condition(expression).parsed]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            children = node.get("children", [])
            if node.get("type") == "subexpression" and len(children) >= 2:
                head, name = children[:2]
                if (
                    head == {"type": "field", "children": [], "value": "params"}
                    and name.get("type") == "field"
                ):
                    found.add(name["value"])
            stack.extend(children)
        elif isinstance(node, list):
            stack.extend(node)
    return found


def condition_scope(
    params: Mapping[str, Any], parents: Sequence[str], results: Sequence[Any]
) -> dict[str, Any]:
    """What a ``when`` expression sees. A parent that did not succeed has the result null."""
    return {"params": dict(params), "results": dict(zip(parents, results, strict=True))}


def condition_holds(expression: str, scope: Mapping[str, Any]) -> bool:
    """Evaluate ``expression`` over ``scope`` with JMESPath truthiness. Raises ValueError on a type error
    at run time (e.g. ``length(`` a number ``)``)."""
    try:
        value = compile_condition(expression).search(scope)
    except jmespath.exceptions.JMESPathError as e:
        raise ValueError(f"when {expression!r}: {_one_line(e)}") from e
    return truthy(value)


def truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null and empty strings, arrays and objects are false; 0 is true."""
    if value is None or value is False:
        return False
    return not (isinstance(value, str | list | dict) and not value)


def _functions(tree: Any) -> set[str]:
    found: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") == "function_expression":
                found.add(node["value"])
            stack.extend(node.get("children", ()))
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


# -- maps -----------------------------------------------------------------------------------------------


def map_limit(node_max: int | None, cap: int = DEFAULT_MAX_MAP) -> int:
    """How many elements a mapped node may fan out to: its ``max_map`` (default 10,000), at most ``cap``
    (the setting ``wfcelery_max_map``)."""
    return min(node_max or DEFAULT_MAX_MAP, cap)


def expand(value: Any, limit: int, node: str, source: str) -> list[Any]:
    """The elements ``node`` maps over. Raises ValueError saying why the value cannot be mapped."""
    if not isinstance(value, list):
        raise ValueError(
            f"node {node!r} maps over the result of {source!r}, which is {_json_type(value)}, not a list"
        )
    if len(value) > limit:
        raise ValueError(
            f"node {node!r} maps over {len(value)} elements of {source!r}, more than max_map={limit}"
        )
    return value


def aggregate(instances: Sequence[NodeStatus]) -> NodeStatus:
    """The status of an expanded mapped node from its instances': RUNNING until every instance is
    terminal; then FAILED if one failed, else REVOKED if one was revoked, else SUCCEEDED (none: ``[]``)."""
    if not all(s.terminal for s in instances):
        return NodeStatus.RUNNING
    for status in (NodeStatus.FAILED, NodeStatus.REVOKED):
        if status in instances:
            return status
    return NodeStatus.SUCCEEDED


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"
