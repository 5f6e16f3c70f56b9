"""The rules of dynamic workflows (wfcelery/rules.py): trigger rules, skip propagation, fail_fast, conditions,
maps. No Redis, no worker: a simulated tracker drives :class:`~wfcelery.definition.rules.Cascade` the way
the Lua
scripts do, and an independent oracle (written from Airflow's documented table) checks the end state.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_properties import Dag, dags
from wfcelery.definition.rules import (
    TRIGGER_RULES,
    Cascade,
    Graph,
    Outcome,
    Step,
    Tally,
    TriggerRule,
    Verdict,
    aggregate,
    compile_condition,
    condition_holds,
    condition_params,
    condition_scope,
    decide,
    expand,
    map_limit,
    outcome_of,
    run_status,
    topological_order,
)
from wfcelery.tracker.keys import instance_name, parse_instance
from wfcelery.tracker.states import NodeStatus, RunStatus

S, F, K = Outcome.SUCCESS, Outcome.FAILED, Outcome.SKIPPED


# -- the oracle: Airflow's table, evaluated once every parent is terminal ------------------------------


def expected_verdict(rule: str, parents: list[Outcome]) -> Verdict:
    """What the rule decides over final parent outcomes, written out case by case (no shared code)."""
    ok, bad, skip, n = parents.count(S), parents.count(F), parents.count(K), len(parents)
    if n == 0:
        return Verdict.RUN  # a root runs whatever its rule
    run = {
        "all_success": ok == n,
        "all_done": True,
        "all_failed": bad == n,
        "one_failed": bad > 0,
        "one_success": ok > 0,
        "none_failed": bad == 0,
    }[rule]
    if run:
        return Verdict.RUN
    upstream_failed = {
        "all_success": bad > 0,
        "all_failed": False,
        "one_failed": False,
        "one_success": skip < n,
        "none_failed": True,
    }[rule]
    return Verdict.UPSTREAM_FAILED if upstream_failed else Verdict.SKIP


@pytest.mark.parametrize("rule", TRIGGER_RULES)
@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_decide_over_final_outcomes_is_airflows_table(rule: str, n: int) -> None:
    for parents in itertools.product([S, F, K], repeat=n):
        assert decide(rule, Tally.of(list(parents))) is expected_verdict(rule, list(parents)), parents


@pytest.mark.parametrize("rule", TRIGGER_RULES)
def test_an_early_verdict_never_changes_when_the_other_parents_end(rule: str) -> None:
    """decide() may settle a node before all its parents are terminal only when no parent could change it;
    it never runs a node early."""
    for known in itertools.product([S, F, K, None], repeat=3):
        verdict = decide(rule, Tally.of(list(known)))
        if verdict is Verdict.WAIT:
            continue
        assert verdict is not Verdict.RUN or None not in known, "ran before every parent was terminal"
        for rest in itertools.product([S, F, K], repeat=known.count(None)):
            it = iter(rest)
            final = [o if o is not None else next(it) for o in known]
            assert expected_verdict(rule, final) is verdict, (known, final)


def test_outcomes_and_run_status() -> None:
    assert outcome_of(NodeStatus.SUCCEEDED) is S
    assert outcome_of(NodeStatus.FAILED) is F
    assert outcome_of(NodeStatus.REVOKED) is F
    assert outcome_of(NodeStatus.SKIPPED) is K
    assert outcome_of(NodeStatus.SKIPPED, upstream_failed=True) is F
    with pytest.raises(ValueError, match="not a terminal"):
        outcome_of(NodeStatus.RUNNING)
    ok, skipped, failed = NodeStatus.SUCCEEDED, NodeStatus.SKIPPED, NodeStatus.FAILED
    assert run_status([ok, skipped]) is RunStatus.SUCCEEDED  # a false `when` does not fail a run
    assert run_status([ok, failed, ok]) is RunStatus.FAILED  # an all_done node that succeeded after
    assert run_status([ok, NodeStatus.REVOKED]) is RunStatus.FAILED
    assert run_status([ok, NodeStatus.PENDING]) is None


def test_fail_fast_survivors_are_handlers_and_what_depends_only_on_them() -> None:
    # 0 -> 1 -> 2(all_done) -> 3 ; 2 -> 4 <- 1 ; 5 (root, one_failed is meaningless but allowed)
    graph = Graph(
        [[], [0], [1], [2], [2, 1], []],
        ["all_success", "all_success", "all_done", "all_success", "all_success", "one_failed"],
    )
    assert graph.survivors == {2, 3, 5}
    assert topological_order(graph.parents)[:2] == [0, 5]


# -- conditions -----------------------------------------------------------------------------------------


def test_conditions_see_params_and_parent_results() -> None:
    scope = condition_scope({"notify": True, "min": 2}, ["check", "skipped"], [{"rows": 3}, None])
    assert scope == {"params": {"notify": True, "min": 2}, "results": {"check": {"rows": 3}, "skipped": None}}
    assert condition_holds("params.notify", scope)
    assert condition_holds("results.check.rows > params.min", scope)
    assert not condition_holds("results.check.rows > `5`", scope)
    assert not condition_holds("results.skipped", scope)  # a skipped parent is null
    assert not condition_holds("params.missing", scope)


def test_the_params_a_condition_reads() -> None:
    assert condition_params("params.notify && results.a.n > params.min") == {"notify", "min"}
    assert condition_params("params.cfg.deep || length(results.x) > `1`") == {"cfg"}
    assert condition_params("results.params.x") == set()


@pytest.mark.parametrize(
    ("value", "truth"),
    [
        (False, False),
        (None, False),
        ("", False),
        ([], False),
        ({}, False),
        (0, True),
        ("x", True),
        ([0], True),
    ],
)
def test_condition_truthiness_is_jmespaths(value: object, truth: bool) -> None:
    assert condition_holds("results.p", {"params": {}, "results": {"p": value}}) is truth


@pytest.mark.parametrize(
    ("expression", "problem"),
    [("results.a ==", "Incomplete expression"), ("nope(results)", "unknown function nope()"), ("`{", "")],
)
def test_bad_conditions_are_refused_when_compiled(expression: str, problem: str) -> None:
    with pytest.raises(ValueError, match="invalid JMESPath expression") as err:
        compile_condition(expression)
    assert problem in str(err.value)


def test_a_type_error_at_run_time_is_a_value_error_naming_the_expression() -> None:
    with pytest.raises(ValueError, match=r"when 'length\(params.n\)'.*invalid type"):
        condition_holds("length(params.n)", {"params": {"n": 3}, "results": {}})


# -- maps -----------------------------------------------------------------------------------------------


def test_map_limits_instances_and_errors() -> None:
    assert map_limit(None) == 10_000
    assert map_limit(50) == 50
    assert map_limit(20_000, cap=10_000) == 10_000
    assert map_limit(None, cap=100) == 100
    assert expand([], 3, "resize", "files") == []
    assert expand([1, 2, 3], 3, "resize", "files") == [1, 2, 3]
    with pytest.raises(ValueError, match=r"'resize' maps over 4 elements of 'files', more than max_map=3"):
        expand([1, 2, 3, 4], 3, "resize", "files")
    for value, kind in [({"a": 1}, "an object"), ("abc", "a string"), (None, "null"), (3, "a number")]:
        with pytest.raises(ValueError, match=f"result of 'files', which is {kind}, not a list"):
            expand(value, 10, "resize", "files")
    assert instance_name("resize", 12) == "resize[12]"
    assert parse_instance("resize[12]") == ("resize", 12)
    assert parse_instance("a[1][2]") == ("a[1]", 2)
    assert parse_instance("resize") is None


def test_a_mapped_node_aggregates_its_instances() -> None:
    ok, bad, gone = NodeStatus.SUCCEEDED, NodeStatus.FAILED, NodeStatus.REVOKED
    assert aggregate([]) is ok
    assert aggregate([ok, ok]) is ok
    assert aggregate([ok, NodeStatus.RUNNING]) is NodeStatus.RUNNING
    assert aggregate([ok, gone, bad]) is bad
    assert aggregate([ok, gone]) is gone


# -- a simulated tracker: random DAGs, rules, conditions, maps, outcomes and schedules -------------------


@dataclass
class Scenario:
    dag: Dag
    policy: str
    rules: list[str]
    when: list[bool]  # the condition's value, for nodes that get that far
    maps: list[int | None]  # the map source, a parent index
    lengths: list[int | None]  # length of each node's list result when mapped over (None: not a list)
    fails: set[tuple[int, int]]  # (node, instance) units whose task fails for good (-1: not mapped)
    limit: int = 3


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    dag = draw(dags(max_nodes=14))
    n = dag.size
    rules = draw(st.lists(st.sampled_from(TRIGGER_RULES), min_size=n, max_size=n))
    maps = [draw(st.none() | st.sampled_from(p)) if p else None for p in dag.parents]
    units = [(i, j) for i in range(n) for j in ([-1] if maps[i] is None else range(4))]
    fails = draw(st.sets(st.sampled_from(units), max_size=4)) if units else set()
    return Scenario(
        dag,
        draw(st.sampled_from(["fail_fast", "continue"])),
        rules,
        draw(st.lists(st.booleans() | st.just(True), min_size=n, max_size=n)),
        maps,
        draw(st.lists(st.none() | st.integers(0, 4), min_size=n, max_size=n)),
        fails,
    )


@dataclass
class Tracker:
    """The tracker's bookkeeping around Cascade (what the Lua scripts and the worker hook do)."""

    sc: Scenario
    cascade: Cascade
    status: dict[int, NodeStatus] = field(default_factory=dict)
    upstream_failed: set[int] = field(default_factory=set)
    instances: dict[int, list[NodeStatus]] = field(default_factory=dict)
    queued: list[tuple[int, int]] = field(default_factory=list)  # (node, instance) units with a message
    running: list[tuple[int, int]] = field(default_factory=list)
    started: set[tuple[int, int]] = field(default_factory=set)
    decided_at: dict[int, int] = field(default_factory=dict)  # clock when released or settled
    ended_at: dict[int, int] = field(default_factory=dict)  # clock when terminal
    first_failure: int | None = None
    clock: int = 0

    def tick(self) -> int:
        self.clock += 1
        return self.clock

    def release(self, nodes: list[int]) -> None:
        """The succeed script marks released children QUEUED; then the worker publishes each."""
        for node in nodes:
            assert node not in self.decided_at, f"n{node} decided twice"
            self.decided_at[node] = self.tick()
            self.status[node] = NodeStatus.QUEUED
        for node in nodes:
            if self.status[node] is NodeStatus.QUEUED:  # not revoked by a failure in the meantime
                self.publish(node)

    def publish(self, node: int) -> None:
        if not self.sc.when[node]:  # the worker hook evaluates `when` before publishing
            return self.settle(node, NodeStatus.SKIPPED)
        source = self.sc.maps[node]
        if source is None:
            self.queued.append((node, -1))
            return None
        # a map of a map: the source's result is the list of its instances' results
        length = len(self.instances[source]) if source in self.instances else self.sc.lengths[source]
        if length is None or length > self.sc.limit:  # not a list, or over max_map: the node fails
            return self.settle(node, NodeStatus.FAILED)
        self.instances[node] = [NodeStatus.QUEUED] * length
        if not length:
            return self.settle(node, NodeStatus.SUCCEEDED)
        self.status[node] = NodeStatus.RUNNING
        self.queued.extend((node, i) for i in range(length))
        return None

    def settle(self, node: int, status: NodeStatus) -> None:
        self.status[node] = status
        self.decided_at.setdefault(node, self.tick())
        self.ended_at[node] = self.tick()
        if status is NodeStatus.FAILED:
            self.failed()
        self.apply(self.cascade.settle(node, outcome_of(status)))

    def apply(self, step: Step) -> None:
        for child, verdict in step.skipped:
            self.status[child] = NodeStatus.SKIPPED
            self.decided_at[child] = self.ended_at[child] = self.tick()
            if verdict is Verdict.UPSTREAM_FAILED:
                self.upstream_failed.add(child)
        self.release(step.released)

    def failed(self) -> None:
        """A unit failed for good: under fail_fast, revoke every unstarted non-survivor in one batch."""
        if self.first_failure is None:
            self.first_failure = self.tick()
        if self.sc.policy != "fail_fast":
            return
        survivors = self.cascade.graph.survivors
        revoked = [u for u in self.queued if u[0] not in survivors]
        self.queued = [u for u in self.queued if u not in revoked]
        nodes = [
            n
            for n in range(self.sc.dag.size)
            if n not in survivors and (n not in self.decided_at or self.status[n] is NodeStatus.QUEUED)
        ]
        for node in nodes:
            self.status[node] = NodeStatus.REVOKED
            self.decided_at.setdefault(node, self.tick())
            self.ended_at[node] = self.tick()
        for node, i in revoked:
            if i >= 0:
                self.instances[node][i] = NodeStatus.REVOKED
        self.apply(self.cascade.settle_all(nodes, Outcome.FAILED))
        for node in {n for n, i in revoked if i >= 0}:
            self.maybe_end_map(node)

    def maybe_end_map(self, node: int) -> None:
        status = aggregate(self.instances[node])
        if status.terminal and not self.status[node].terminal:
            self.settle(node, status)

    def finish(self, unit: tuple[int, int]) -> None:
        node, i = unit
        status = NodeStatus.FAILED if unit in self.sc.fails else NodeStatus.SUCCEEDED
        if i < 0:
            return self.settle(node, status)
        self.instances[node][i] = status
        if status is NodeStatus.FAILED:
            self.failed()
        return self.maybe_end_map(node)


def simulate(sc: Scenario, pick: st.DataObject) -> Tracker:
    graph = Graph(sc.dag.parents, sc.rules, sc.maps)
    tracker = Tracker(sc, Cascade(graph))
    tracker.release(tracker.cascade.start())
    while tracker.queued or tracker.running:
        units = tracker.queued + tracker.running
        unit = units[pick.draw(st.integers(0, len(units) - 1))]
        if unit in tracker.queued:
            tracker.queued.remove(unit)
            assert unit not in tracker.started, f"{unit} started twice"
            tracker.started.add(unit)
            tracker.running.append(unit)
            if unit[1] < 0:
                tracker.status[unit[0]] = NodeStatus.RUNNING
        else:
            tracker.running.remove(unit)
            tracker.finish(unit)
    return tracker


def fail_fast_survivors(sc: Scenario) -> set[int]:
    survivors: set[int] = set()
    for i in topological_order(sc.dag.parents):
        ps = sc.dag.parents[i]
        if sc.rules[i] in ("all_done", "all_failed", "one_failed") or (ps and survivors.issuperset(ps)):
            survivors.add(i)
    return survivors


def check(sc: Scenario, t: Tracker) -> None:
    """Every node ends in exactly the state the rules define for its parents' final states."""
    n = sc.dag.size
    assert sorted(t.status) == list(range(n)), "a node was never decided"
    final = [t.status[i] for i in range(n)]
    assert all(s.terminal for s in final), f"left unfinished: {final}"

    def seen(i: int) -> Outcome:
        if final[i] is NodeStatus.SUCCEEDED:
            return S
        return K if final[i] is NodeStatus.SKIPPED and i not in t.upstream_failed else F

    survivors = fail_fast_survivors(sc)
    failure = t.first_failure
    for i in range(n):
        ps = sc.dag.parents[i]
        if sc.policy == "fail_fast" and failure is not None and i not in survivors:
            if final[i] is NodeStatus.REVOKED:
                assert (i, -1) not in t.started, f"n{i} revoked after it started"
                continue
            assert t.decided_at[i] < failure, f"n{i} ({final[i]}) was decided after the failure, not revoked"
        assert final[i] is not NodeStatus.REVOKED, f"n{i} revoked, but fail_fast did not stop it"
        verdict = expected_verdict(sc.rules[i], [seen(p) for p in ps])
        if verdict is Verdict.RUN and sc.maps[i] is not None:
            source = seen(sc.maps[i])  # type: ignore[index]
            if source is not S:
                verdict = Verdict.UPSTREAM_FAILED if source is F else Verdict.SKIP
        if verdict is not Verdict.RUN:
            assert final[i] is NodeStatus.SKIPPED, f"n{i}: rule {sc.rules[i]} says {verdict}, got {final[i]}"
            assert (i in t.upstream_failed) is (verdict is Verdict.UPSTREAM_FAILED), f"n{i} skip reason"
            continue
        assert all(t.ended_at[p] < t.decided_at[i] for p in ps), f"n{i} ran before its parents ended"
        if not sc.when[i]:
            assert final[i] is NodeStatus.SKIPPED
            assert i not in t.upstream_failed
        elif sc.maps[i] is None:
            assert final[i] is (NodeStatus.FAILED if (i, -1) in sc.fails else NodeStatus.SUCCEEDED)
        else:
            check_map(sc, t, i, failure)


def check_map(sc: Scenario, t: Tracker, node: int, failure: int | None) -> None:
    source = sc.maps[node]
    assert source is not None
    length = len(t.instances[source]) if sc.maps[source] is not None else sc.lengths[source]
    if length is None or length > sc.limit:
        assert t.status[node] is NodeStatus.FAILED
        assert node not in t.instances
        return
    instances = t.instances[node]
    assert len(instances) == length
    for i, status in enumerate(instances):
        if status is NodeStatus.REVOKED:
            assert sc.policy == "fail_fast"
            assert failure is not None
            assert (node, i) not in t.started
        else:
            assert status is (NodeStatus.FAILED if (node, i) in sc.fails else NodeStatus.SUCCEEDED)
    assert t.status[node] is aggregate(instances)


@settings(max_examples=250, deadline=None)
@given(scenarios(), st.data())
def test_every_node_ends_in_the_state_the_rules_define(sc: Scenario, pick: st.DataObject) -> None:
    tracker = simulate(sc, pick)
    check(sc, tracker)
    final = [tracker.status[i] for i in range(sc.dag.size)]
    failed = any(s is NodeStatus.FAILED for s in final)
    assert (run_status(final) is RunStatus.FAILED) is (failed or NodeStatus.REVOKED in final)
    if sc.policy == "continue":
        assert NodeStatus.REVOKED not in final  # continue never revokes: every node is decided by the rules


@settings(max_examples=60, deadline=None)
@given(dags(max_nodes=14), st.data())
def test_all_success_everywhere_is_the_plain_dag(dag: Dag, pick: st.DataObject) -> None:
    """With default rules and no failure every node runs, each after all its parents."""
    sc = Scenario(
        dag,
        "fail_fast",
        ["all_success"] * dag.size,
        [True] * dag.size,
        [None] * dag.size,
        [None] * dag.size,
        set(),
    )
    tracker = simulate(sc, pick)
    assert all(tracker.status[i] is NodeStatus.SUCCEEDED for i in range(dag.size))


def test_a_notify_node_runs_after_a_failure_under_both_policies() -> None:
    # extract -> transform -> load -> notify(all_done); transform fails
    graph = Graph([[], [0], [1], [2]], ["all_success", "all_success", "all_success", "all_done"])
    for policy in ("fail_fast", "continue"):
        sc = Scenario(
            Dag(list(map(list, graph.parents)), False),
            policy,
            list(map(str, graph.rules)),
            [True] * 4,
            [None] * 4,
            [None] * 4,
            {(1, -1)},
        )
        tracker = Tracker(sc, Cascade(graph))
        tracker.release(tracker.cascade.start())
        for unit in [(0, -1), (1, -1)]:
            tracker.queued.remove(unit)
            tracker.finish(unit)
        load = NodeStatus.REVOKED if policy == "fail_fast" else NodeStatus.SKIPPED
        assert [tracker.status[i] for i in range(3)] == [NodeStatus.SUCCEEDED, NodeStatus.FAILED, load]
        assert tracker.queued == [(3, -1)], "notify is released"
        tracker.queued.clear()
        tracker.finish((3, -1))
        assert run_status(tracker.status.values()) is RunStatus.FAILED


def test_rule_names_are_airflows() -> None:
    assert TRIGGER_RULES == (
        "all_success",
        "all_done",
        "all_failed",
        "one_failed",
        "one_success",
        "none_failed",
    )
    assert str(TriggerRule.ALL_DONE) == "all_done"
