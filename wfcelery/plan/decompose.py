"""Series-parallel decomposition of a plan's DAG: the tree of series and parallel units that Celery's
chains and chords can express, or the "N" (a cross edge) that shows they cannot."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from wfcelery.errors import NotSeriesParallel
from wfcelery.plan.compiler import Plan


@dataclass(frozen=True)
class Vertex:
    """A node of the plan, or a pass-through carrying ``node``'s result to ``target``."""

    node: int
    target: int = -1

    @property
    def is_pass(self) -> bool:
        return self.target >= 0


class Graph:
    """The plan's DAG, transitive edges dropped, result-carrying ones replaced by pass-throughs,
    plus ``order`` edges (exact=False). Vertices are numbered in a topological order, and ``anc[v]`` is
    the bitset of ``v``'s ancestors in that numbering."""

    def __init__(self, plan: Plan, order: set[tuple[int, int]], carry_results: bool = True) -> None:
        self.plan = plan
        n = len(plan.nodes)
        waits = [list(node.parents) for node in plan.nodes]
        for a, b in sorted(order):
            if a not in waits[b]:
                waits[b].append(a)
        reach = ancestors(waits)  # over plan indexes: what each node waits for, transitively
        raw_parents: dict[Vertex, list[Vertex]] = {Vertex(i): [] for i in range(n)}
        for v in range(n):
            # u -> v is transitive when u is an ancestor of another parent of v (never of u itself)
            beyond = 0
            for w in waits[v]:
                beyond |= reach[w]
            for u in waits[v]:
                transitive = bool(beyond >> u & 1)
                if not transitive:
                    raw_parents[Vertex(v)].append(Vertex(u))
                elif carry_results and u in plan.nodes[v].parents and plan.nodes[v].takes_list():
                    hop = Vertex(u, v)
                    raw_parents[hop] = [Vertex(u)]
                    raw_parents[Vertex(v)].append(hop)
        self.vertices = topological(raw_parents)
        pos = {vx: i for i, vx in enumerate(self.vertices)}
        self.parents = [sorted(pos[p] for p in raw_parents[vx]) for vx in self.vertices]
        self.children: list[list[int]] = [[] for _ in self.vertices]
        for v, ps in enumerate(self.parents):
            for p in ps:
                self.children[p].append(v)
        self.anc = ancestors(self.parents)

    def edge_names(self, u: int, v: int) -> tuple[str, str]:
        """The plan edge a graph edge stands for (a pass-through stands for its source -> target)."""
        a, b = self.vertices[u], self.vertices[v]
        names = self.plan.nodes
        if b.is_pass:
            return names[b.node].name, names[b.target].name
        return names[a.node].name, names[b.node].name


def ancestors(parents: Sequence[Sequence[int]]) -> list[int]:
    """Bitsets of ancestors, for parent lists indexed in any order (iterative: chains of 10k nodes)."""
    anc: list[int | None] = [None] * len(parents)
    for start in range(len(parents)):
        stack = [start]
        while stack:
            v = stack[-1]
            todo = [p for p in parents[v] if anc[p] is None]
            if todo:
                stack.extend(todo)
                continue
            stack.pop()
            if anc[v] is None:
                bits = 0
                for p in parents[v]:
                    bits |= (anc[p] or 0) | (1 << p)
                anc[v] = bits
    return [a or 0 for a in anc]


def topological(parents: Mapping[Vertex, list[Vertex]]) -> list[Vertex]:
    """Kahn's order, ties broken by plan index (a pass-through right before its target)."""
    import heapq

    def key(vx: Vertex) -> tuple[int, int, int]:
        return (vx.target, 0, vx.node) if vx.is_pass else (vx.node, 1, 0)

    pending = {vx: len(ps) for vx, ps in parents.items()}
    children: dict[Vertex, list[Vertex]] = {vx: [] for vx in parents}
    for vx, ps in parents.items():
        for p in ps:
            children[p].append(vx)
    ready = [(key(vx), vx) for vx, count in pending.items() if not count]
    heapq.heapify(ready)
    out: list[Vertex] = []
    while ready:
        _, vx = heapq.heappop(ready)
        out.append(vx)
        for c in children[vx]:
            pending[c] -= 1
            if not pending[c]:
                heapq.heappush(ready, (key(c), c))
    return out


@dataclass
class Leaf:
    v: int


@dataclass
class Series:
    parts: list[Leaf | Parallel]


@dataclass
class Parallel:
    parts: list[Leaf | Series]


Unit = Leaf | Series | Parallel


class Cut(Exception):
    """exact=False: order these (plan index) pairs and start again."""

    def __init__(self, edges: set[tuple[int, int]]) -> None:
        self.edges = edges


@dataclass
class Decomposer:
    graph: Graph
    exact: bool

    def unit(self, members: list[int]) -> Unit:
        """Decompose ``members`` (vertex numbers, ascending: a convex set of the DAG)."""
        if len(members) == 1:
            return Leaf(members[0])
        components = self._components(members)
        if len(components) > 1:
            return Parallel([self._branch(c) for c in components])
        cuts = self._series_cuts(members)
        if not cuts:
            raise self._not_series_parallel(members)
        parts: list[Leaf | Parallel] = []
        for lo, hi in zip([0, *cuts], [*cuts, len(members)], strict=True):
            unit = self.unit(members[lo:hi])
            assert not isinstance(unit, Series)  # a part between two adjacent cuts has no cut itself
            parts.append(unit)
        return Series(parts)

    def _branch(self, members: list[int]) -> Leaf | Series:
        unit = self.unit(members)
        assert not isinstance(unit, Parallel)  # a connected component
        return unit

    def _components(self, members: list[int]) -> list[list[int]]:
        inside = set(members)
        root = {v: v for v in members}

        def find(v: int) -> int:
            while root[v] != v:
                root[v] = root[root[v]]
                v = root[v]
            return v

        for v in members:
            for p in self.graph.parents[v]:
                if p in inside:
                    root[find(v)] = find(p)
        groups: dict[int, list[int]] = {}
        for v in members:
            groups.setdefault(find(v), []).append(v)
        return list(groups.values())  # ascending, ordered by their first vertex

    def _series_cuts(self, members: list[int]) -> list[int]:
        """Every i such that ``members[:i]`` all precede ``members[i:]`` (members are topologically sorted,
        so every valid cut is a prefix). One pass: member j is fine with cut i if every member before
        position i is its ancestor, i.e. its first non-ancestor (``lowest[j]``) is at i or later."""
        anc = self.graph.anc
        where = {v: i for i, v in enumerate(members)}
        lowest = []
        before = 0
        for v in members:
            missing = before & ~anc[v]
            lowest.append(where[(missing & -missing).bit_length() - 1] if missing else len(members))
            before |= 1 << v
        cuts, floor = [], len(members)
        for i in range(len(members) - 1, 0, -1):
            floor = min(floor, lowest[i])
            if i <= floor:
                cuts.append(i)
        return sorted(cuts)

    def _not_series_parallel(self, members: list[int]) -> Exception:
        if not self.exact:
            return self._cut(members)
        edges = self._n_edges(members)
        (a, c), (_, d), (b, _) = edges
        return NotSeriesParallel(
            "canvas cannot express this DAG exactly: "
            + ", ".join(f"{x} -> {y}" for x, y in edges)
            + f" form an N ({c!r} follows {a!r} but not {b!r}, {d!r} follows both): Celery chains and "
            "chords only express series-parallel graphs. to_canvas(exact=False) adds a barrier; "
            "engine.submit runs it exactly",
            edges,
        )

    def _n_edges(self, members: list[int]) -> list[tuple[str, str]]:
        a, b, c, d = self._find_n(members)
        g = self.graph
        return [g.edge_names(a, c), g.edge_names(a, d), g.edge_names(b, d)]

    def _find_n(self, members: list[int]) -> tuple[int, int, int, int]:
        """An induced N (a->c, a->d, b->d; no other order among them) in a connected part with no cut."""
        anc, inside = self.graph.anc, set(members)

        def related(x: int, y: int) -> bool:
            return bool(anc[x] >> y & 1 or anc[y] >> x & 1)

        parents = self.graph.parents
        # An N of the order (a<c, a<d, b<d, nothing else among the four), preferably one whose three
        # relations are edges, which names the problem best; then b->d and a->c edges (cheap); then any.
        children = self.graph.children
        for d in members:
            for a, b in itertools.permutations([p for p in parents[d] if p in inside], 2):
                for c in children[a]:
                    if c in inside and not related(a, b) and not related(c, d) and not related(b, c):
                        return a, b, c, d
        for d in members:
            for b in (p for p in parents[d] if p in inside):
                for a in (x for x in members if anc[d] >> x & 1 and not related(x, b)):
                    for c in children[a]:
                        if c in inside and not related(c, d) and not related(b, c):
                            return a, b, c, d
        for a, b, c, d in itertools.permutations(members, 4):  # pragma: no cover - not seen in tests
            ordered = anc[c] >> a & 1 and anc[d] >> a & 1 and anc[d] >> b & 1
            if ordered and not related(a, b) and not related(c, d) and not related(b, c):
                return a, b, c, d
        raise AssertionError("a part with no cut holds an N")  # pragma: no cover

    def _cut(self, members: list[int]) -> Cut:
        """exact=False: the prefix cut of ``members`` that adds the fewest waits and keeps results exact."""
        g = self.graph
        best: tuple[int, int] | None = None
        s1 = 0
        for i in range(1, len(members)):
            s1 |= 1 << members[i - 1]
            if not self._keeps_results(members[:i], members[i:]):
                continue
            added = sum((s1 & ~g.anc[v]).bit_count() for v in members[i:])
            if best is None or added < best[0]:
                best = (added, i)
        if best is None:
            edges = self._n_edges(members)
            raise NotSeriesParallel(
                "canvas cannot express this DAG even with barriers: around "
                + ", ".join(f"{x} -> {y}" for x, y in edges)
                + " every barrier would change what a node receives; mark those nodes immutable",
                edges,
                "results",
            )
        first, second = members[: best[1]], members[best[1] :]
        waits = set()
        for s in self._sinks(first):
            for t in self._sources(second):
                if not g.anc[t] >> s & 1:
                    target = g.vertices[t]
                    waits.add((g.vertices[s].node, target.target if target.is_pass else target.node))
        return Cut(waits)

    def _sinks(self, members: list[int]) -> list[int]:
        inside = set(members)
        return [v for v in members if not any(c in inside for c in self.graph.children[v])]

    def _sources(self, members: list[int]) -> list[int]:
        inside = set(members)
        return [v for v in members if not any(p in inside for p in self.graph.parents[v])]

    def _keeps_results(self, first: list[int], second: list[int]) -> bool:
        """Whether every node the cut starts right after ``first`` expects exactly what it will get:
        nothing (a root or an immutable node), or the results of ``first``'s ends."""
        g = self.graph
        ends = {g.vertices[s].node for s in self._sinks(first) if not g.vertices[s].is_pass}
        if len(ends) != len(self._sinks(first)):
            return False
        for t in self._sources(second):
            vx = g.vertices[t]
            node = g.plan.nodes[vx.node]
            if vx.is_pass:
                if ends != {vx.node}:
                    return False
            elif node.parents and not node.immutable and set(node.parents) != ends:
                return False
        return True
