"""The tracker's Lua implements rules.py: random DAGs, trigger rules, conditions, failures and schedules,
driven through the real worker-side code (``WorkerSide.node_succeeded`` / ``node_failed``, the real Lua
scripts on a real Redis), in lockstep with the pure-Python simulated tracker of tests/unit/test_rules.py.
After every step both agree on which nodes are queued or running; at the end on every node's status and
the reason of every skip. No Celery worker: the test plays the worker's part, so it can pick the order.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_properties import Dag, dags
from tests.unit.test_rules import Scenario, Tracker, check
from wfcelery import Workflow
from wfcelery.definition.rules import TRIGGER_RULES, Cascade, Graph
from wfcelery.tracker.outcomes import FailMode
from wfcelery.tracker.states import NodeStatus

LIVE = (NodeStatus.QUEUED, NodeStatus.RUNNING)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    dag: Dag = draw(dags(max_nodes=9))
    n = dag.size
    return Scenario(
        dag,
        draw(st.sampled_from(["fail_fast", "continue"])),
        draw(st.lists(st.sampled_from(TRIGGER_RULES), min_size=n, max_size=n)),
        draw(st.lists(st.booleans() | st.just(True), min_size=n, max_size=n)),
        [None] * n,
        [None] * n,
        {(i, -1) for i in draw(st.sets(st.integers(0, n - 1), max_size=3))},
    )


def workflow(sc: Scenario) -> Workflow:
    wf = Workflow("lockstep", on_failure=sc.policy)
    for i, parents in enumerate(sc.dag.parents):
        when = None if sc.when[i] else "`false`"
        wf.add(f"n{i}", "proj.noop", after=[f"n{p}" for p in parents], trigger=sc.rules[i], when=when)
    return wf


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sc=scenarios(), pick=st.data())
def test_lua_and_rules_py_agree_step_by_step(
    app: Any, engine: Any, sc: Scenario, pick: st.DataObject
) -> None:
    side = app._wfcelery_worker
    sim = Tracker(sc, Cascade(Graph(sc.dag.parents, sc.rules)))
    sim.release(sim.cascade.start())
    run = engine.submit(workflow(sc))
    plan = engine.plans.get(engine.tracker.run_record(run.id).plan)
    while True:
        nodes = run.state().nodes
        live = {int(name[1:]): n for name, n in nodes.items() if n.status in LIVE}
        assert set(live) == {u[0] for u in sim.queued + sim.running}, "queued/running differ"
        if not live:
            break
        index = sorted(live)[pick.draw(st.integers(0, len(live) - 1))]
        node, parsed = live[index], (run.id, index, live[index].epoch)
        if node.status is NodeStatus.QUEUED:
            assert side.start(parsed, "sim").run
            sim.queued.remove((index, -1))
            sim.started.add((index, -1))
            sim.running.append((index, -1))
            sim.status[index] = NodeStatus.RUNNING
            continue
        sim.running.remove((index, -1))
        sim.finish((index, -1))
        if (index, -1) in sc.fails:
            error = {"type": "ValueError", "message": "boom", "traceback": ""}
            side.node_failed(parsed, plan.digest, error, FailMode.FAILED, node.attempts)
        else:
            side.node_succeeded(parsed, plan.digest, None, "null")
    check(sc, sim)  # the simulation itself follows the rules
    state = run.state()
    assert {f"n{i}": s for i, s in sim.status.items()} == {name: n.status for name, n in state.nodes.items()}
    upstream_failed = {
        name for name, n in state.nodes.items() if (n.error or {}).get("type") == "UpstreamFailed"
    }
    assert upstream_failed == {f"n{i}" for i in sim.upstream_failed}
    assert state.finished
    assert (state.status.value == "FAILED") is any(
        s in (NodeStatus.FAILED, NodeStatus.REVOKED) for s in sim.status.values()
    )
