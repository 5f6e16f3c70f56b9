"""What the CLI prints about runs: tables, the live progress view, progress bars, per-node timings
(graphs of a definition: ``graphs.py``).

On a terminal everything is drawn by rich: tables fit the terminal's width (long cells wrap or are cut
with an ellipsis), the live view redraws in place (``rich.live``), long work (submitting a large run,
cleaning up many runs) shows a progress bar on stderr. Anywhere else (a pipe, a file, CI) the output is
plain: fixed columns and one line per node transition, so logs stay readable and scripts can parse them.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

import click
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from wfcelery.client.run import Run, RunSummary
from wfcelery.definition.waits import NodeKind
from wfcelery.errors import TrackerUnavailable
from wfcelery.tracker.records import Event
from wfcelery.tracker.states import NodeState, NodeStatus, RunState, RunStatus, WaitKind

#: Colour of each status on a terminal (click strips colours when the output is not one).
COLORS: dict[str, str | None] = {
    "PENDING": None,
    "QUEUED": "blue",
    "RUNNING": "cyan",
    "RETRYING": "yellow",
    "SUCCEEDED": "green",
    "FAILED": "red",
    "SKIPPED": "magenta",
    "REVOKED": "yellow",
    "WAITING": "magenta",
    "PAUSED": "yellow",
    "CANCELLED": "red",
}
#: Width of the bar in the timings' timeline column.
TIMELINE_WIDTH = 24

Cell = str | tuple[str, str | None]


def seconds(value: float | None) -> str:
    """``0.42s``, ``2m05s``, ``1h02m``; ``-`` for no value."""
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.2f}s"
    if value < 3600:
        return f"{int(value // 60)}m{int(value % 60):02d}s"
    return f"{int(value // 3600)}h{int(value % 3600 // 60):02d}m"


def status_cell(status: Any) -> Cell:
    return (str(status), COLORS.get(str(status)))


def table(header: Sequence[str], rows: Sequence[Sequence[Cell]], tty: bool | None = None) -> list[str]:
    """Left-aligned columns, two spaces apart; a cell may be ``(text, colour)``. On a terminal (``tty``,
    default: whether stdout is one) rich draws it to the terminal's width."""
    if sys.stdout.isatty() if tty is None else tty:
        return _rendered(rich_table(header, rows))
    texts = [[c if isinstance(c, str) else c[0] for c in row] for row in rows]
    widths = [max(len(r[i]) for r in [list(header), *texts]) for i in range(len(header))]
    head = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()
    lines = [click.style(head, bold=True)]
    for row, text in zip(rows, texts, strict=True):
        cells = []
        for cell, value, width in zip(row, text, widths, strict=True):
            padded = value.ljust(width)
            color = None if isinstance(cell, str) else cell[1]
            cells.append(click.style(padded, fg=color) if color else padded)
        lines.append("  ".join(cells).rstrip())
    return lines


def rich_table(header: Sequence[str], rows: Sequence[Sequence[Cell]]) -> Table:
    """The same table as rich renders it: fits the console's width (the last columns fold first)."""
    t = Table(box=None, pad_edge=False, header_style="bold", expand=False)
    for i, h in enumerate(header):
        wide = i == len(header) - 1
        t.add_column(h, overflow="fold" if wide else "ellipsis", no_wrap=not wide)
    for row in rows:
        t.add_row(*(Text(c) if isinstance(c, str) else Text(c[0], style=c[1] or "") for c in row))
    return t


def _console(file: TextIO | None = None, tty: bool = True) -> Console:
    return Console(file=file or sys.stdout, force_terminal=tty, highlight=False, soft_wrap=False)


def _rendered(renderable: Any) -> list[str]:
    console = _console()
    with console.capture() as captured:
        console.print(renderable)
    return captured.get().rstrip("\n").split("\n")


@contextmanager
def progress(label: str, total: int, file: TextIO | None = None) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on ``file`` (stderr) when it is a terminal: yields ``update(done, total)``.
    Elsewhere the bar is not drawn (the command's own result line says what was done)."""
    out = file or sys.stderr
    if not out.isatty():
        yield lambda done, total: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=_console(out), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done, total: bar.update(task, completed=done, total=total)


# -- one run ---------------------------------------------------------------------------------------------


def run_origin(state: RunState) -> float:
    """Offsets are from the run's submission, so they include the time spent queued."""
    return state.created_at


def node_duration(node: NodeState, now: float | None = None) -> float | None:
    if node.started_at is None:
        return None
    busy = (NodeStatus.RUNNING, NodeStatus.RETRYING, NodeStatus.WAITING)
    end = node.finished_at or (now if node.status in busy else None)
    return None if end is None else max(0.0, end - node.started_at)


def run_duration(state: RunState, now: float | None = None) -> float:
    end = state.finished_at or (state.paused_at if state.status is RunStatus.PAUSED else None) or now
    return max(0.0, (end or time.time()) - run_origin(state))


def waiting_text(node: NodeState, now: float | None = None) -> str:
    """What a WAITING node waits for: ``a signal, times out in 1h59m``, ``time: 2m10s left``, ``child run
    <id>``; '' for a node that is not waiting."""
    wait = node.waiting
    if wait is None or node.status is not NodeStatus.WAITING:
        return ""
    left = None if wait.until is None else max(0.0, wait.until - (now or time.time()))
    if wait.kind is WaitKind.SIGNAL:
        return "a signal" + ("" if left is None else f", times out in {seconds(left)}")
    if wait.kind is WaitKind.TIME:
        return f"time: {seconds(left)} left"
    if wait.kind is WaitKind.POOL:
        return f"pool {wait.pool}"
    return f"child run {wait.run}"


def error_text(node: NodeState, limit: int = 60) -> str:
    if node.status is NodeStatus.WAITING:
        return "waiting for " + waiting_text(node)
    if node.child_run and not node.error:
        return f"child run {node.child_run}"
    if not node.error:
        return ""
    text = f"{node.error.get('type', 'Error')}: {node.error.get('message', '')}".strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def logged_at(state: RunState, ts: float) -> int:
    """A time as the run's event log writes it: ms since the run was created (Event.at_ms)."""
    return round((ts - state.created_at) * 1000)


def attempt_error(state: RunState, node: NodeState, event: Event, limit: int = 60) -> str:
    """The error of the attempt an event line ended (RETRYING, FAILED...): the node's error history entry
    written with it (same time), so a replay shows each retry's own reason."""
    for entry in node.errors:
        if logged_at(state, float(entry.get("at") or 0)) == event.at_ms:
            text = f"{entry.get('type', 'Error')}: {entry.get('message', '')}".strip()
            return text if len(text) <= limit else text[: limit - 1] + "…"
    return ""


def latest_start(state: RunState, node: NodeState, event: Event) -> bool:
    """The event is the RUNNING line of the node's latest attempt (same time as its start): its worker is
    the node's, also when the line is printed after the node has moved on (a replay; a short body's start
    recorded with its success)."""
    if event.node_status is not NodeStatus.RUNNING or node.started_at is None:
        return False
    return logged_at(state, node.started_at) == event.at_ms


def count_text(counts: dict[str, int]) -> str:
    """``5 succeeded, 1 failed``: the statuses present."""
    return ", ".join(f"{v} {k.lower()}" for k, v in counts.items() if v)


def size_text(state: RunState) -> str:
    """``6 nodes`` or ``6 nodes, 3 instances``: the one way a run is counted (see RunState.counts)."""
    return f"{state.total} nodes" + (f", {state.instances} instances" if state.instances else "")


def summary_line(state: RunState, now: float | None = None, with_id: bool = True) -> str:
    detail = f"{state.done}/{state.total} nodes done: {count_text(state.counts) or 'none'}"
    if state.instances:
        detail += f"; {state.instances} instances: {count_text(state.instance_counts)}"
    head = f"run {state.id}  {state.name}  " if with_id else ""
    return (
        head
        + click.style(state.status.value, fg=COLORS.get(state.status.value))
        + f"  {seconds(run_duration(state, now))}  ({detail})"
    )


def node_rows(state: RunState, now: float | None = None) -> list[list[Cell]]:
    origin = run_origin(state)
    rows: list[list[Cell]] = []
    for node in state.nodes.values():
        start = None if node.started_at is None else node.started_at - origin
        rows.append(
            [
                node.name,
                status_cell(node.status),
                node.queue or ("(default)" if node.kind is NodeKind.TASK else f"({node.kind.value})"),
                node.worker or "-",
                "-" if start is None else f"+{seconds(start)}",
                seconds(node_duration(node, now)),
                str(node.attempts or ""),
                error_text(node),
            ]
        )
    return rows


NODE_HEADER = ("NODE", "STATUS", "QUEUE", "WORKER", "START", "DURATION", "TRIES", "ERROR / WAITING FOR")


def status_lines(state: RunState, now: float | None = None) -> list[str]:
    """The human form of ``wfcelery status``."""
    now = now or time.time()
    head = [
        summary_line(state, now),
        *([f"run key {state.run_key}"] if state.run_key else []),
        f"created {_clock(state.created_at)}, policy {state.policy}, executor {state.executor}"
        + (f", params {json.dumps(state.params)}" if state.params else ""),
    ]
    if state.parent is not None:
        head.append(f"child run of {state.parent[0]} (node {state.parent[1]})")
    head += limit_lines(state)
    return [*head, "", *table(NODE_HEADER, node_rows(state, now)), *history_lines(state)]


def limit_lines(state: RunState) -> list[str]:
    """What a run waits for under max_active_runs, its deadline, and its own error (a deadline's)."""
    lines = []
    if state.status is RunStatus.QUEUED:
        lines.append("queued: waiting for max_active_runs (starts when an earlier run of its key ends)")
    if state.deadline_at is not None and not state.finished:
        lines.append(f"deadline {_clock(state.deadline_at)}")
    if state.error:
        lines.append(click.style(f"error: {state.error.get('type')}: {state.error.get('message')}", fg="red"))
    return lines


def history_lines(state: RunState, limit: int = 100) -> list[str]:
    """Every attempt's error of the nodes that had one, in the order they happened (also of nodes that
    succeeded on a later attempt)."""
    entries = sorted(
        (
            (float(e.get("at") or 0), node.index, node.name, e)
            for node in state.nodes.values()
            for e in node.errors
        ),
        key=lambda item: (item[0], item[1]),
    )
    if not entries:
        return []
    width = max(len(name) for _, _, name, _ in entries)
    lines = ["", click.style("ERRORS BY ATTEMPT", bold=True)]
    for at, _, name, entry in entries:
        text = f"{entry.get('type', 'Error')}: {entry.get('message', '')}".strip()
        text = text if len(text) <= limit else text[: limit - 1] + "…"
        when = f"+{seconds(max(0.0, at - run_origin(state)))}"
        lines.append(f"{name.ljust(width)}  attempt {entry.get('attempt', '?')}  {when:>8}  {text}")
    return lines


def timings_lines(state: RunState) -> list[str]:
    """Per-node timings with a timeline bar: where each node ran and when, relative to the run's start."""
    origin, total = run_origin(state), max(run_duration(state), 1e-6)
    rows: list[list[Cell]] = []
    for node in sorted(state.nodes.values(), key=lambda n: (n.started_at or float("inf"), n.index)):
        start = None if node.started_at is None else node.started_at - origin
        duration = node_duration(node)
        rows.append(
            [
                node.name,
                node.queue or "(default)",
                node.worker or "-",
                "-" if start is None else f"+{seconds(start)}",
                seconds(duration),
                (_bar(start, duration, total), COLORS.get(node.status.value)),
                status_cell(node.status),
            ]
        )
    return table(("NODE", "QUEUE", "WORKER", "START", "DURATION", "TIMELINE", "STATUS"), rows)


def _bar(start: float | None, duration: float | None, total: float) -> str:
    if start is None:
        return " " * TIMELINE_WIDTH
    left = min(TIMELINE_WIDTH - 1, int(start / total * TIMELINE_WIDTH))
    width = max(1, round((duration or 0) / total * TIMELINE_WIDTH))
    width = min(width, TIMELINE_WIDTH - left)
    return "|" + " " * left + "#" * width + " " * (TIMELINE_WIDTH - left - width) + "|"


def results_lines(results: dict[str, Any], limit: int = 200) -> list[str]:
    width = max((len(k) for k in results), default=0)
    lines = []
    for name, value in results.items():
        text = json.dumps(value, default=repr)
        lines.append(f"{name.ljust(width)}  {text if len(text) <= limit else text[: limit - 1] + '…'}")
    return lines


def runs_lines(runs: Sequence[RunSummary]) -> list[str]:
    """The human form of ``wfcelery list``."""
    now = time.time()
    rows: list[list[Cell]] = [
        [
            r.id,
            r.name,
            status_cell(r.status),
            f"{r.done}/{r.total}",
            str(r.instances or ""),
            _clock(r.created_at),
            seconds((r.finished_at or now) - r.created_at),
        ]
        for r in runs
    ]
    return table(("RUN", "NAME", "STATUS", "NODES DONE", "INSTANCES", "CREATED", "AGE/DURATION"), rows)


def _clock(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def clock(ts: float) -> str:
    """A time of today's kind: ``15:02:11``."""
    return time.strftime("%H:%M:%S", time.localtime(ts))


# -- live progress ---------------------------------------------------------------------------------------


class LiveView:
    """Shows a run's progress: a table redrawn in place on a terminal, one line per transition elsewhere."""

    def __init__(self, out: TextIO, tty: bool, quiet: bool = False) -> None:
        self.out = out
        self.tty = tty
        self.quiet = quiet
        self._live: Live | None = None
        self._seen: dict[str, tuple[NodeStatus, int]] = {}
        self._announced = False
        self._idle_shown: set[str] = set()

    def update(self, state: RunState, events: Sequence[Event] | None = None) -> None:
        """Show ``state``; off a terminal, ``events`` (the run's log since the last update) give one line
        per transition in the order they happened, retries included."""
        if self.quiet:
            return
        if self.tty:
            self._redraw(state)
        elif events is not None:
            self._transitions(state, events)
        else:
            self._plain(state)

    def _echo(self, line: str) -> None:
        click.echo(line, file=self.out)

    def _redraw(self, state: RunState) -> None:
        if self._live is None:
            self._live = Live(console=_console(self.out), auto_refresh=False, transient=False)
            self._live.start()
        self._live.update(self._frame(state, self._live.console.size.height), refresh=True)

    def _frame(self, state: RunState, height: int) -> Group:
        rows = node_rows(state, time.time())
        room = max(height - 4 - len(state.idle_queues), 1)
        hidden = 0
        if len(rows) > room:  # keep the view on screen: busy nodes first
            rows, hidden = _busy_first(rows, state, room), len(rows) - room
        parts: list[Any] = [
            Text.from_ansi(_progress_bar(state)),
            rich_table(*_live_columns(state, rows)),
        ]
        if hidden:
            parts.append(Text(f"... {hidden} more nodes", style="dim"))
        parts += [Text(line, style="yellow") for line in idle_lines(state)]
        return Group(*parts)

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _plain(self, state: RunState) -> None:
        if not self._announced:
            self._echo(f"run {state.id} ({state.name}, {size_text(state)}): {state.status.value}")
            self._announced = True
        origin = run_origin(state)
        changed = [
            n
            for n in state.nodes.values()
            if self._seen.get(n.name) != (n.status, n.attempts)
            and not (n.name not in self._seen and n.status is NodeStatus.PENDING)
        ]
        for node in sorted(changed, key=lambda n: (n.finished_at or n.started_at or 0, n.index)):
            self._seen[node.name] = (node.status, node.attempts)
            at = node.finished_at or node.started_at or time.time()  # QUEUED etc.: when we saw it
            when = f"+{seconds(max(0.0, at - origin))}"
            extra = f" in {seconds(node_duration(node))}" if node.finished_at and node.started_at else ""
            worker = f" on {node.worker}" if node.worker else ""
            err = f" ({error_text(node)})" if node.error and node.status is NodeStatus.FAILED else ""
            width = max(len(n) for n in state.nodes)
            self._echo(f"{when:>8}  {node.name.ljust(width)}  {node.status.value}{extra}{worker}{err}")

    def _transitions(self, state: RunState, events: Sequence[Event]) -> None:
        if not self._announced:
            self._echo(f"run {state.id} ({state.name}, {size_text(state)}): {state.status.value}")
            self._announced = True
        # event lines name a node by index, an instance of a mapped node by "<index>:<i>"
        by_index = {
            n.index if n.instance is None else f"{n.index}:{n.instance}": n for n in state.nodes.values()
        }
        width = max((len(n) for n in state.nodes), default=0)
        for event in events:
            node = by_index.get(event.node) if event.node is not None else None
            if node is None:
                continue  # run-level lines: the summary says how the run ended
            status = NodeStatus.from_code(event.status)
            if status is NodeStatus.PENDING:
                continue
            current = node.status is status  # details (worker, duration) are the latest attempt's
            extra = ""
            if current and node.finished_at and node.started_at:
                extra += f" in {seconds(node_duration(node))}"
            # a start names the worker of its own attempt only (the node keeps the latest attempt's)
            ran = latest_start(state, node, event) if status is NodeStatus.RUNNING else current
            if node.worker and status is not NodeStatus.QUEUED and ran:
                extra += f" on {node.worker}"
            if status in (NodeStatus.FAILED, NodeStatus.RETRYING):
                reason = attempt_error(state, node, event) or (error_text(node) if current else "")
                extra += f" ({reason})" if reason else ""
            if current and status is NodeStatus.WAITING:
                extra += f" (waiting for {waiting_text(node)})"
            when = f"+{seconds(event.at_ms / 1000)}"
            self._echo(f"{when:>8}  {node.name.ljust(width)}  {status.value}{extra}")
        for queue in state.idle_queues:  # once per queue: the run waits on it until a worker comes
            if queue not in self._idle_shown:
                self._idle_shown.add(queue)
                self._echo(
                    f"          no worker consumes {queue!r}: its nodes wait (start one with -Q {queue})"
                )

    def close(self, state: RunState, events: Sequence[Event] | None = None) -> None:
        self.update(state, events)
        self._stop_live()
        if not self.quiet:
            self._echo(summary_line(state))


def idle_lines(state: RunState) -> list[str]:
    """One line per queue this run's nodes wait on that no live worker consumes."""
    return [
        f"no worker consumes {queue!r}: "
        + ", ".join(
            n.name for n in state.nodes.values() if n.queue == queue and n.status is NodeStatus.QUEUED
        )
        + f" wait (start one with -Q {queue})"
        for queue in state.idle_queues
    ]


def _progress_bar(state: RunState, width: int = 20) -> str:
    total, done = max(1, state.total), state.done
    filled = int(width * done / total)
    bar = "#" * filled + "-" * (width - filled)
    status = click.style(state.status.value, fg=COLORS.get(state.status.value))
    instances = f" ({state.instances} instances)" if state.instances else ""
    return f"[{bar}] {state.done}/{state.total} nodes{instances}  {status}  {seconds(run_duration(state))}"


def _busy_first(rows: list[list[Cell]], state: RunState, room: int) -> list[list[Cell]]:
    busy = {NodeStatus.RUNNING, NodeStatus.RETRYING, NodeStatus.FAILED}
    statuses = [n.status for n in state.nodes.values()]
    order = sorted(range(len(rows)), key=lambda i: statuses[i] not in busy)
    return [rows[i] for i in sorted(order[: max(room, 1)])]


def follow(run: Run, view: LiveView, timeout: float | None = None, tick: float = 0.25) -> RunState:
    """Show the run's progress until it ends (:meth:`Run.follow`); returns the final state.

    Raises :class:`~wfcelery.errors.WaitTimeout` after ``timeout`` seconds.
    """
    offset = 0
    try:
        for state in run.follow(timeout=timeout, tick=tick):
            try:
                offset, events = run.events(after=offset)  # what happened up to this state, in order
                if events and not state.finished:
                    # The log may be ahead of the state read before it: a line's error, worker and times
                    # come from the state, so read one at least as new as the lines it prints.
                    state = run.state()
                    if state.finished:  # it ended meanwhile: the lines up to its end too
                        offset, later = run.events(after=offset)
                        events += later
            except TrackerUnavailable:
                events = []  # Run.follow waits the outage out; these events are read with the next state
            if state.finished:
                view.close(state, events)
                return state
            view.update(state, events)
    finally:
        view._stop_live()  # a timeout or Ctrl-C leaves the terminal as it was
    raise AssertionError("Run.follow() ends with a finished state")  # pragma: no cover


def _live_columns(state: RunState, rows: list[list[Cell]]) -> tuple[Sequence[str], list[list[Cell]]]:
    """The live view's columns: the first six, and what nodes wait for while one is WAITING."""
    if not any(n.status is NodeStatus.WAITING for n in state.nodes.values()):
        return NODE_HEADER[:6], [r[:6] for r in rows]
    return (*NODE_HEADER[:6], NODE_HEADER[7]), [[*r[:6], r[7]] for r in rows]
