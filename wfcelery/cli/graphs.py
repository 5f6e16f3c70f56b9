"""Graphs of a definition for ``wfcelery graph`` and the demo: text (the DAG by depth and what the compiler
emits for each node), Graphviz dot and Mermaid, and the native canvas ``to_canvas`` emits.
"""

from __future__ import annotations

import json
from typing import Any

from celery.canvas import _chain, chord, group

from wfcelery.cli.display import Cell, table
from wfcelery.plan.canvas import ACCUMULATE, Canvas
from wfcelery.plan.compiler import Plan
from wfcelery.plan.segments import segments


def levels(plan: Plan) -> list[list[int]]:
    """Nodes grouped by depth (longest path from a root)."""
    depth: dict[int, int] = {}
    pending = {n.index: len(n.parents) for n in plan.nodes}
    ready = [i for i, left in pending.items() if not left]
    while ready:
        i = ready.pop()
        depth[i] = max((depth[p] + 1 for p in plan.nodes[i].parents), default=0)
        for child in plan.nodes[i].children:
            pending[child] -= 1
            if not pending[child]:
                ready.append(child)
    grouped: list[list[int]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for i in sorted(depth):
        grouped[depth[i]].append(i)
    return grouped


def dag_lines(plan: Plan) -> list[str]:
    """A title line, then the DAG by depth, one node per line with its queue and parents."""
    nodes = plan.nodes
    edges = sum(len(n.parents) for n in nodes)
    lines = [
        f"workflow {plan.name}: {len(nodes)} nodes, {edges} edges, on_failure={plan.on_failure}",
        "DAG (by depth; a node starts once every node after '<-' has succeeded, or as its trigger says):",
    ]
    for depth, members in enumerate(levels(plan)):
        for i in members:
            n = nodes[i]
            after = f"  <- {', '.join(nodes[p].name for p in n.parents)}" if n.parents else ""
            extra = "".join(f"  {{{note}}}" for note in dynamic_notes(plan, i))
            where = n.queue or "default queue" if n.has_task else n.describe()
            lines.append(f"  {depth:>2}  {n.name} [{where}]{after}{extra}")
    return lines


def messages_lines(plan: Plan) -> list[str]:
    """What the compiler emits: one Celery task message per node, and when the tracker releases it."""
    rules = plan.release_rules()
    rows: list[list[Cell]] = [[r["node"], r["task"], r["queue"], r["released"], r["receives"]] for r in rules]
    header = ("NODE", "TASK", "QUEUE", "RELEASED", "RECEIVES")
    return [
        f"Messages ({len(rules)} per run, one Celery task each, ids frozen at submit; counters executor):",
        *("  " + line for line in table(header, rows)),
    ]


def segments_lines(plan: Plan) -> list[str]:
    """What the canvas executor emits: one native canvas per segment, released by the tracker's counters
    (segments.py)."""
    segs = segments(plan)
    names = [n.name for n in plan.nodes]
    edges = sum(len(plan.nodes[e].parents) for seg in segs for e in seg.entries)
    lines = [
        f"Canvas executor (executor: canvas): {len(segs)} segment(s); the tracker releases the {edges} "
        "edge(s) into them, Celery's chains and chords carry the rest:"
    ]
    if plan.dynamic:
        lines.append(
            "  (maps, conditions or trigger rules: the tracker decides every edge, one message per node)"
        )
    for k, seg in enumerate(segs, 1):
        members = ", ".join(names[i] for i in seg.nodes)
        shape = "native canvas" if seg.canvas else "one message"
        when = (
            "at submit" if not seg.parents else f"when {', '.join(names[p] for p in seg.parents)} succeeded"
        )
        lines.append(f"  {k}. {members}: {shape}, published {when}")
    return lines


def graph_text(plan: Plan) -> list[str]:
    dag = dag_lines(plan)
    return [dag[0], "", *dag[1:], "", *messages_lines(plan), "", *segments_lines(plan)]


def graph_dot(plan: Plan) -> list[str]:
    lines = [f"digraph {json.dumps(plan.name)} {{", "  rankdir=LR;", '  node [shape=box, style="rounded"];']
    for n in plan.nodes:
        queue = [f"queue: {n.queue or 'default'}"] if n.has_task else []
        label = "\\n".join([n.name, n.describe(), *queue, *dynamic_notes(plan, n.index)])
        shape = ", shape=box3d" if n.map is not None else ', style="rounded,dashed"' if n.when else ""
        lines.append(f"  n{n.index} [label={_dot_quote(label)}{shape}];")
    map_edge = ' [label="map", style=bold]'
    lines += [f"  n{p} -> n{n.index}{map_edge if p == n.map else ''};" for n in plan.nodes for p in n.parents]
    return [*lines, "}"]


def _dot_quote(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


def graph_mermaid(plan: Plan) -> list[str]:
    lines = ["flowchart LR"]
    for n in plan.nodes:
        notes = "".join(f"<br/><small>{note}</small>" for note in dynamic_notes(plan, n.index))
        where = f"{n.task} · {n.queue or 'default'}" if n.has_task else n.describe()
        label = f"{n.name}<br/><small>{where}</small>{notes}".replace('"', "#quot;")
        lines.append(f'  n{n.index}["{label}"]')
    lines += [
        f"  n{p} {'==>|map|' if p == n.map else '-->'} n{n.index}" for n in plan.nodes for p in n.parents
    ]
    return lines


def canvas_lines(plan: Plan, built: Canvas) -> list[str]:
    """The native canvas of ``Workflow.to_canvas``, one signature per line, nested as Celery nests them."""
    names = {tid: name for name, tid in built.task_ids.items()}
    extras = [f"{built.barriers} barrier(s)", f"{built.pass_throughs} pass-through(s)"]
    lines = [
        f"Native canvas (Workflow.to_canvas; {len(plan.nodes)} tasks, {', '.join(extras)}; "
        "celery.accumulate is Celery's built-in task):"
    ]
    if built.false_dependencies:
        waits = ", ".join(f"{a} -> {b}" for a, b in built.false_dependencies)
        lines.append(f"  not exact: added waits {waits}")
    _canvas_walk(built.signature, names, "  ", lines)
    return lines


def _canvas_walk(sig: Any, names: dict[str, str], indent: str, out: list[str]) -> None:
    if isinstance(sig, chord):
        members = sig.tasks.tasks if isinstance(sig.tasks, group) else sig.tasks
        out.append(f"{indent}chord of {len(members)}:")
        for member in members:
            _canvas_walk(member, names, indent + "  | ", out)
        out.append(f"{indent}  then:")
        _canvas_walk(sig.body, names, indent + "    ", out)
    elif isinstance(sig, _chain):
        out.append(f"{indent}chain of {len(sig.tasks)}:")
        for step in sig.tasks:
            _canvas_walk(step, names, indent + "  ", out)
    else:
        queue = sig.options.get("queue") or "default queue"
        if sig.task == ACCUMULATE:
            out.append(f"{indent}{ACCUMULATE}(index=0) [{queue}]")
        else:
            marks = ".si" if sig.immutable else ".s"
            out.append(
                f"{indent}{names.get(sig.options.get('task_id', ''), '?')}: {sig.task}{marks} [{queue}]"
            )


def dynamic_notes(plan: Plan, index: int) -> list[str]:
    """What makes a node dynamic, for graph and validate: its map, condition and trigger rule."""
    n = plan.nodes[index]
    notes = []
    if n.map is not None:
        limit = f", max {n.max_map}" if n.max_map else ""
        notes.append(f"map over {plan.nodes[n.map].name}{limit}")
    if n.when:
        notes.append(f"when {n.when}")
    if n.trigger != "all_success":
        notes.append(f"trigger {n.trigger}")
    return notes
