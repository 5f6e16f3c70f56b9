"""Questions about the past, answered from the tracker's history index (``tracker/history.py``) and the
fleet-wide counters (``tracker/counters.py``): searching runs, a workflow's record, a node's trend.

A search reads one index from a cursor, newest first, and stops at ``limit`` matches or after reading
``budget`` runs, whichever comes first: a page never reads every run, however many the index holds, and
``next`` says where to go on (None: nothing left). Filters the index cannot answer (the other of workflow
and status, ``run_key``, text in the params) are applied to the runs read.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from wfcelery.client.base import EngineBase
from wfcelery.errors import RunNotFound, WfCeleryError
from wfcelery.ops.pools import pools_of
from wfcelery.tracker.counters import Snapshot
from wfcelery.tracker.history import ENDED_INDEXED, Cursor
from wfcelery.tracker.states import RunStatus

#: Runs a search page reads at most (matches or not) before it returns with a cursor.
SEARCH_BUDGET = 5_000
_DAY_MS = 86_400_000


class HistoryError(WfCeleryError):
    """A history query the index cannot answer (a bad cursor, a bad range): the message names it."""


@dataclass(frozen=True)
class RunRow:
    """One run of a search: what the history lists."""

    id: str
    workflow: str
    status: str
    created_at: float
    finished_at: float | None
    total: int
    done: int
    params: dict[str, Any]
    run_key: str | None = None

    @property
    def duration(self) -> float | None:
        return None if self.finished_at is None else round(self.finished_at - self.created_at, 3)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workflow": self.workflow,
            "status": self.status,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "duration": self.duration,
            "total": self.total,
            "done": self.done,
            "params": self.params,
            "run_key": self.run_key,
        }

    @classmethod
    def of(cls, run_id: str, h: dict[str, str]) -> RunRow:
        finished = h.get("finished")
        return cls(
            run_id,
            h.get("name", ""),
            h.get("status", ""),
            int(h["created"]) / 1000,
            int(finished) / 1000 if finished else None,
            int(h.get("total") or 0),
            int(h.get("done") or 0),
            json.loads(h.get("params") or "{}"),
            h.get("run_key"),
        )


@dataclass(frozen=True)
class Page:
    runs: list[RunRow]
    next: str | None  # the cursor of the next page
    scanned: int  # runs read for this page

    def to_dict(self) -> dict[str, Any]:
        return {"runs": [r.to_dict() for r in self.runs], "next": self.next, "scanned": self.scanned}


@dataclass(frozen=True)
class WorkflowRecord:
    """A workflow's page: its recent ended runs, runs per day, last failures."""

    workflow: str
    recent: int  # ended runs the rates and durations are over
    succeeded: int
    failed: int
    cancelled: int
    p50: float | None  # seconds, created -> finished, over the recent ended runs
    p95: float | None
    per_day: list[dict[str, Any]]  # [{day: "2026-12-01", runs: n}], oldest first
    failures: list[dict[str, Any]] = field(default_factory=list)
    active: int = 0

    @property
    def success_rate(self) -> float | None:
        return None if not self.recent else round(self.succeeded / self.recent, 4)

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "recent": self.recent,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "success_rate": self.success_rate,
            "duration_p50": self.p50,
            "duration_p95": self.p95,
            "per_day": self.per_day,
            "failures": self.failures,
            "active": self.active,
        }


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of ``values``; None for none."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)], 3)


class History(EngineBase):
    """``engine.metrics()``, ``search_runs()``, ``workflow_record()``, ``node_trend()``."""

    def metrics(self) -> Snapshot:
        """Every fleet-wide counter (what ``wfcelery metrics`` exposes), and each pool's slots used and
        nodes waiting."""
        snap = self.tracker.snapshot()
        snap.pools = {i.name: (i.used, i.waiting) for i in pools_of(self.tracker).infos()}
        return snap

    def search_runs(
        self,
        *,
        workflow: str | None = None,
        status: RunStatus | str | None = None,
        since: float | None = None,
        until: float | None = None,
        run_key: str | None = None,
        text: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        budget: int = SEARCH_BUDGET,
    ) -> Page:
        """Runs newest first, filtered; ``since`` / ``until``: creation time (unix seconds), until excluded;
        ``text``: a case-insensitive match in the params' JSON; ``cursor``: a page's ``next``."""
        wanted = RunStatus(status) if status is not None else None
        after = _cursor(cursor)
        if since is not None and until is not None and until <= since:
            raise HistoryError(f"the time range is empty: until ({until}) is not after since ({since})")
        since_ms = None if since is None else round(since * 1000)  # to the ms (floats: 0.123 * 1000)
        until_ms = None if until is None else round(until * 1000)
        if wanted is not None and not wanted.finished:
            return self._search_live(workflow, wanted, since_ms, until_ms, run_key, text, limit)
        key = self._index_for(workflow, wanted)
        match = _matcher(workflow, wanted, run_key, text)
        rows: list[RunRow] = []
        scanned = 0
        for batch in self.tracker.walk(key, since_ms, until_ms, after):
            records = self.tracker.listed([m for m, _ in batch])
            self.tracker.prune(key, [m for (m, _), h in zip(batch, records, strict=True) if h is None])
            for (run_id, created), h in zip(batch, records, strict=True):
                scanned += 1
                if h is not None and match(h):
                    rows.append(RunRow.of(run_id, h))
                if len(rows) >= limit or scanned >= budget:
                    return Page(rows, Cursor(created, run_id).encode(), scanned)
        return Page(rows, None, scanned)

    def _index_for(self, workflow: str | None, status: RunStatus | None) -> str:
        keys = self.tracker.keys
        if status is not None and status.value not in ENDED_INDEXED:
            status = None  # SUCCEEDED: no index of its own, the status is filtered as runs are read
        if workflow is not None and status is not None:  # the smaller of the two
            by_wf, by_status = keys.runs_of(workflow), keys.runs_ended(status.value)
            return min((by_wf, by_status), key=self.tracker.index_size)
        if workflow is not None:
            return keys.runs_of(workflow)
        if status is not None:
            return keys.runs_ended(status.value)
        return keys.index

    def _search_live(
        self,
        workflow: str | None,
        status: RunStatus,
        since_ms: int | None,
        until_ms: int | None,
        run_key: str | None,
        text: str | None,
        limit: int,
    ) -> Page:
        """QUEUED / RUNNING / PAUSED runs: the reconciler's live list holds them all (few), read whole."""
        ids = self.tracker.live_ids()
        match = _matcher(workflow, status, run_key, text)
        rows = [RunRow.of(i, h) for i, h in zip(ids, self.tracker.listed(ids), strict=True) if h and match(h)]
        rows = [
            r
            for r in rows
            if (since_ms is None or r.created_at * 1000 >= since_ms)
            and (until_ms is None or r.created_at * 1000 < until_ms)
        ]
        rows.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return Page(rows[:limit], None, len(ids))

    def workflow_record(self, workflow: str, recent: int = 200, days: int = 14) -> WorkflowRecord:
        """Success rate and duration percentiles over the ``recent`` last ended runs, runs created per day
        over ``days`` days (UTC), and the last failures with their errors."""
        page = self.search_runs(workflow=workflow, limit=recent, budget=recent * 5)
        ended = [r for r in page.runs if RunStatus(r.status).finished]
        durations = [d for r in ended if (d := r.duration) is not None]
        by = {s: sum(1 for r in ended if r.status == s.value) for s in RunStatus}
        key = self.tracker.keys.runs_of(workflow)
        today = int(time.time() * 1000) // _DAY_MS * _DAY_MS
        per_day = []
        for d in range(days - 1, -1, -1):
            start = today - d * _DAY_MS
            day = time.strftime("%Y-%m-%d", time.gmtime(start / 1000))
            per_day.append({"day": day, "runs": self.tracker.count_between(key, start, start + _DAY_MS)})
        failures = [self._failure(r) for r in ended if r.status == RunStatus.FAILED.value][:10]
        return WorkflowRecord(
            workflow,
            len(ended),
            by[RunStatus.SUCCEEDED],
            by[RunStatus.FAILED],
            by[RunStatus.CANCELLED],
            percentile(durations, 50),
            percentile(durations, 95),
            per_day,
            failures,
            active=sum(1 for r in page.runs if not RunStatus(r.status).finished),
        )

    def _failure(self, row: RunRow) -> dict[str, Any]:
        out: dict[str, Any] = {"id": row.id, "finished_at": row.finished_at, "node": None, "error": None}
        try:
            state = self.state(row.id, check_workers=False)
        except RunNotFound:
            return out
        failed = [n for n in state.nodes.values() if n.status.value == "FAILED" and n.error]
        if failed:
            first = min(failed, key=lambda n: n.finished_at or 0)
            out["node"] = first.name
            error = first.error or {}
            out["error"] = {"type": error.get("type"), "message": error.get("message")}
        return out

    def node_trend(self, workflow: str, node: str, limit: int = 50) -> list[dict[str, Any]]:
        """The node's last ``limit`` runs in ``workflow``, oldest first: status, attempts and duration
        (seconds, its last attempt's start to its end) of each run where it ended."""
        page = self.search_runs(workflow=workflow, limit=limit, budget=limit * 5)
        out = []
        for row in page.runs:
            try:
                state = self.state(row.id, check_workers=False)
            except RunNotFound:
                continue
            n = state.nodes.get(node)
            if n is None or not n.status.terminal:
                continue
            duration = None
            if n.started_at is not None and n.finished_at is not None:
                duration = round(n.finished_at - n.started_at, 3)
            out.append(
                {
                    "run": row.id,
                    "created_at": row.created_at,
                    "status": n.status.value,
                    "attempts": n.attempts,
                    "duration": duration,
                }
            )
        return out[::-1]


def _cursor(text: str | None) -> Cursor | None:
    if text is None:
        return None
    try:
        return Cursor.decode(text)
    except ValueError as e:
        raise HistoryError(str(e)) from None


def _matcher(workflow: str | None, status: RunStatus | None, run_key: str | None, text: str | None) -> Any:
    needle = text.lower() if text else None

    def match(h: dict[str, str]) -> bool:
        return (
            (workflow is None or h.get("name") == workflow)
            and (status is None or h.get("status") == status.value)
            and (run_key is None or h.get("run_key") == run_key)
            and (needle is None or needle in (h.get("params") or "").lower())
        )

    return match
