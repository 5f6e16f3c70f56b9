"""Property tests: for random DAGs, the compiled plan and the tracker's release rule reproduce the DAG.

The release rule simulated here is the one in ``lua/succeed.lua``: when a node succeeds, each child counts
it; a child is released when its count reaches its number of parents (a one-parent child at once), with
its parents' results in parent order.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from wfcelery.definition.checks import find_cycle
from wfcelery.definition.model import Workflow
from wfcelery.errors import CycleError
from wfcelery.plan.compiler import Plan, compile_workflow, plan_from_blob

RUN = "0123456789abcdef0123456789abcdef"
PROPERTY = settings(max_examples=150, deadline=None)


@dataclass
class Dag:
    """``parents[i]``: node i's parents, in the order they were declared. Node i is named ``n<i>``."""

    parents: list[list[int]]
    use_rshift: bool

    @property
    def size(self) -> int:
        return len(self.parents)

    def workflow(self) -> Workflow:
        """Edges by ``>>`` once all nodes exist, or by ``after=`` (parents may be added later)."""
        wf = Workflow("random")
        if not self.use_rshift:
            for i, parents in enumerate(self.parents):
                wf.add(f"n{i}", "t.work", args=[i], after=[f"n{p}" for p in parents])
            return wf
        nodes = [wf.add(f"n{i}", "t.work", args=[i]) for i in range(self.size)]
        for child, parents in enumerate(self.parents):
            for p in parents:
                nodes[p] >> nodes[child]
        return wf

    def children(self, node: int) -> list[int]:
        return [c for c in range(self.size) if node in self.parents[c]]

    def reaches(self, src: int, dst: int) -> bool:
        stack, seen = [src], set()
        while stack:
            n = stack.pop()
            if n == dst:
                return True
            if n not in seen:
                seen.add(n)
                stack.extend(self.children(n))
        return False


@st.composite
def dags(draw: st.DrawFn, max_nodes: int = 24) -> Dag:
    """A random DAG whose topological order is a random permutation of the insertion order, so plans
    are also tested where a node's index says nothing about its depth."""
    n = draw(st.integers(1, max_nodes))
    topo = draw(st.permutations(range(n)))
    parents: list[list[int]] = [[] for _ in range(n)]
    for pos, node in enumerate(topo):
        if pos:
            earlier = st.sampled_from(topo[:pos])
            parents[node] = draw(st.lists(earlier, unique=True, max_size=min(pos, 4)))
    return Dag(parents, draw(st.booleans()))


@PROPERTY
@given(dags())
def test_plan_edges_are_exactly_the_dag_edges(dag: Dag) -> None:
    plan = compile_workflow(dag.workflow().validate())
    assert [n.name for n in plan.nodes] == [f"n{i}" for i in range(dag.size)]
    for i, node in enumerate(plan.nodes):
        assert list(node.parents) == dag.parents[i]  # parent order is the declared order
        assert sorted(node.children) == dag.children(i)
        assert len(set(node.children)) == len(node.children)
    assert list(plan.roots) == [i for i in range(dag.size) if not dag.parents[i]]
    assert plan_from_blob(plan.blob) == plan


def simulate(dag: Dag, plan: Plan, pick: st.DataObject) -> list[int]:
    """Run the plan with the tracker's counting rule, finishing ready nodes in a random order.

    Returns the order nodes were released in; asserts each release is exact as it happens.
    """
    results = {}
    done: set[int] = set()
    released: list[int] = list(plan.roots)
    ready = list(plan.roots)
    counts: dict[int, int] = {}
    while ready:
        node = ready.pop(pick.draw(st.integers(0, len(ready) - 1)))
        results[node] = f"result of n{node}"
        done.add(node)
        for child in plan.nodes[node].children:
            parents = plan.nodes[child].parents
            counts[child] = counts.get(child, 0) + 1
            if counts[child] == len(parents):
                assert child not in released, f"n{child} released twice"
                assert set(parents) <= done, f"n{child} released before all its parents"
                # the tracker hands back the results of the plan's parents, in the plan's order
                sent = plan.message(RUN, child, 0, {}, [results[p] for p in parents])["args"]
                declared = [results[p] for p in dag.parents[child]]
                assert sent == [declared[0] if len(declared) == 1 else declared, child]
                released.append(child)
                ready.append(child)
            else:
                assert counts[child] < len(parents)
    return released


@PROPERTY
@given(dags(), st.data())
def test_release_by_counting_runs_every_node_once_after_all_its_parents(
    dag: Dag, pick: st.DataObject
) -> None:
    plan = compile_workflow(dag.workflow().validate())
    released = simulate(dag, plan, pick)
    assert sorted(released) == list(range(dag.size))
    position = {node: i for i, node in enumerate(released)}
    for child in range(dag.size):
        for parent in dag.parents[child]:
            assert position[parent] < position[child]


@PROPERTY
@given(dags(), st.data())
def test_a_back_edge_is_always_found_as_a_cycle(dag: Dag, pick: st.DataObject) -> None:
    wf = dag.workflow()
    assert find_cycle({n.name: n.after for n in wf.nodes.values()}) is None
    # u -> ... -> v exists (or u == v); the edge v -> u closes a cycle
    u = pick.draw(st.integers(0, dag.size - 1))
    v = pick.draw(st.sampled_from([d for d in range(dag.size) if dag.reaches(u, d)]))
    wf[f"n{v}"] >> wf[f"n{u}"]
    try:
        wf.validate()
    except CycleError as err:
        cycle = err.cycle
    else:
        raise AssertionError(f"no cycle found after adding n{v} -> n{u}")
    assert cycle[0] == cycle[-1]
    assert len(set(cycle[:-1])) == len(cycle) - 1, "a reported cycle visits each node once"
    for parent, child in itertools.pairwise(cycle):
        assert parent in wf[child].after, f"{parent} -> {child} is not an edge"
