"""The history index: runs by workflow and by final status, each a sorted set by creation time, so a
search pages through one index from a cursor instead of reading every run.

``<prefix>:runs`` (every run) and ``<prefix>:runs:wf:<name>`` are written at submit (``Tracker.create_run``);
``<prefix>:runs:ended:<STATUS>`` (FAILED and CANCELLED) by whoever got the run's end from a Lua script
(the worker or client that ended it, and the reconciler's sweep when it drops an ended run from its live
list, which mends an entry a crash left out). A retry removes the run from its old status set.

Bounded by the run TTL: entries of runs that expired are dropped when a read finds their record gone, and
every indexed end also looks at the two oldest entries of the indexes it wrote (in the same round trip) and
drops those whose run is gone, so each index sheds expired runs at least as fast as runs end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from wfcelery.tracker.base import TrackerBase, converted_errors
from wfcelery.tracker.records import RUN_KEY_FIELD

#: Final statuses with an index of their own: the rare ones a search looks for. SUCCEEDED runs, most of
#: them, are found through the workflow's (or the whole) index, filtered as they are read: an index of
#: them would cost ~135 bytes a run and spare a search little.
ENDED_INDEXED = frozenset({"FAILED", "CANCELLED"})

#: Fields of a history listing, by the names it gives them (``run_key``: runs submitted with one) ...
LISTED_FIELDS = ("name", "status", "created", "finished", "params", "total", "done", "run_key", "started")
#: ... read from these run-record fields.
_STORED_FIELDS = [RUN_KEY_FIELD if f == "run_key" else f for f in LISTED_FIELDS]


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the last run listed (creation ms, id); the next page starts after it."""

    created_ms: int
    run_id: str

    def encode(self) -> str:
        return f"{self.created_ms}-{self.run_id}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        created, _, run_id = text.partition("-")
        if not created.isdigit() or len(run_id) != 32 or any(c not in "0123456789abcdef" for c in run_id):
            raise ValueError(f"not a history cursor: {text!r}")
        return cls(int(created), run_id)


class HistoryIndex(TrackerBase):
    """Writes and pages of the history index (see the module docstring)."""

    def index_ended(
        self,
        run_id: str,
        status: str,
        created_ms: int,
        workflow: str | None = None,
        plan_digest: str | None = None,
    ) -> None:
        """Index a run that ended FAILED or CANCELLED (:data:`ENDED_INDEXED`), and prune the oldest expired
        entries of the indexes this end concerns (see the module docstring). ``plan_digest``: keep that
        plan as long as the run's keys, in the same round trip."""
        indexed = status in ENDED_INDEXED
        indexes = [self.keys.runs_ended(status)] if indexed else []
        indexes += [self.keys.runs_of(workflow)] if workflow else []
        with converted_errors("index an ended run"):
            pipe = self.client.pipeline(transaction=False)
            if plan_digest is not None:
                pipe.expire(self.keys.plan(plan_digest), self.settings.run_ttl * 2)
            if indexed:
                pipe.zadd(indexes[0], {run_id: created_ms})
            for key in indexes:
                pipe.zrange(key, 0, 1, withscores=True)
            if not len(pipe):
                return
            oldest = pipe.execute()[int(plan_digest is not None) + int(indexed) :]
            horizon = int(time.time() * 1000) - self.settings.run_ttl * 1000
            old = [
                (key, m) for key, rows in zip(indexes, oldest, strict=True) for m, s in rows if s < horizon
            ]
            if old:
                self._drop_expired(old)

    def _drop_expired(self, entries: list[tuple[str, str]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for _, run_id in entries:
            pipe.exists(self.keys.run(run_id))
        gone = [(key, m) for (key, m), alive in zip(entries, pipe.execute(), strict=True) if not alive]
        for key, run_id in gone:
            self.client.zrem(key, run_id)

    def unindex_ended(self, run_id: str, statuses: Sequence[str]) -> None:
        with converted_errors("index a retried run"):
            pipe = self.client.pipeline(transaction=False)
            for status in statuses:
                pipe.zrem(self.keys.runs_ended(status), run_id)
            pipe.execute()

    def index_size(self, key: str) -> int:
        with converted_errors("read the history index"):
            return int(self.client.zcard(key))

    def count_between(self, key: str, since_ms: int, until_ms: int) -> int:
        with converted_errors("read the history index"):
            return int(self.client.zcount(key, since_ms, f"({until_ms}"))

    def walk(
        self, key: str, since_ms: int | None, until_ms: int | None, after: Cursor | None, batch: int = 200
    ) -> Iterator[list[tuple[str, int]]]:
        """Batches of (run id, creation ms), newest first, created in [since, until) and after ``after``."""
        top: str = f"({until_ms}" if until_ms is not None else "+inf"
        bottom = since_ms if since_ms is not None else "-inf"
        if after is not None:
            top = str(after.created_ms)
        skip_ties = after
        while True:
            with converted_errors("read the history index"):
                rows = self.client.zrevrangebyscore(key, top, bottom, start=0, num=batch, withscores=True)
            page = [(m, int(s)) for m, s in rows]
            if skip_ties is not None:  # equal times list in reverse id order: drop those already listed
                page = [(m, s) for m, s in page if s < skip_ties.created_ms or m < skip_ties.run_id]
            if page:
                yield page
            if len(rows) < batch:
                return
            last_member, last_score = rows[-1][0], int(rows[-1][1])
            top, skip_ties = str(last_score), Cursor(last_score, last_member)

    def listed(self, run_ids: Sequence[str]) -> list[dict[str, str] | None]:
        """The :data:`LISTED_FIELDS` of each run (None: expired), one round trip."""
        with converted_errors("read runs"):
            pipe = self.client.pipeline(transaction=False)
            for run_id in run_ids:
                pipe.hmget(self.keys.run(run_id), _STORED_FIELDS)
            replies = pipe.execute()
        return [
            None if values[0] is None else {f: v for f, v in zip(LISTED_FIELDS, values, strict=True) if v}
            for values in replies
        ]

    def prune(self, key: str, run_ids: Sequence[str]) -> None:
        if run_ids:
            with converted_errors("prune the history index"):
                self.client.zrem(key, *run_ids)

    def live_ids(self) -> list[str]:
        with converted_errors("list live runs"):
            return list(self.client.smembers(self.keys.live))
