"""Reading runs: a run's record, nodes, errors, results and events, pipelined so that ``Run.state()`` is
one round trip; listings of runs; the canvas executor's ids and the reconciler's marks."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from kombu.utils.json import loads as result_loads  # results are stored with kombu's JSON (as Celery's)

from wfcelery.errors import RunNotFound
from wfcelery.tracker.base import TrackerBase, converted_errors
from wfcelery.tracker.keys import Slot
from wfcelery.tracker.outcomes import (
    decode_slot,
)
from wfcelery.tracker.records import (
    DROPPED_FIELD_PREFIX,
    Event,
    NodeErrors,
    NodeRecord,
    RunRecord,
    canvas_ids,
    history_field,
    remaining_field,
    remaining_nodes,
)


class Reads(TrackerBase):
    """Run reads (see the module docstring)."""

    def canvas_ids(self, run_id: str, epoch: int | None = None) -> list[str]:
        """The ids :meth:`record_canvas` kept (of one epoch, or all)."""
        with converted_errors(f"read the canvas ids of run {run_id}"):
            raw = self.client.hgetall(self.keys.run(run_id))
        return canvas_ids(raw, epoch)

    def remaining(self, run_id: str, epoch: int) -> frozenset[int] | None:
        """The nodes a canvas-executor resume / retry planned again at ``epoch`` (None: not such an epoch)."""
        with converted_errors(f"read the re-planned nodes of run {run_id}"):
            raw = self.client.hget(self.keys.run(run_id), remaining_field(epoch))
        return remaining_nodes(raw)

    def dropped_marks(self, run_id: str) -> dict[Slot, str]:
        with converted_errors(f"read dropped messages of run {run_id}"):
            raw = self.client.hgetall(self.keys.run(run_id))
        head = DROPPED_FIELD_PREFIX
        return {decode_slot(f[len(head) :]): v for f, v in raw.items() if f.startswith(head)}

    def run_record(self, run_id: str) -> RunRecord:
        """Raises :class:`RunNotFound`."""
        with converted_errors(f"read run {run_id}"):
            record = self.client.hgetall(self.keys.run(run_id))
        if not record:
            raise RunNotFound(run_id)
        return RunRecord.decode(record)

    def read_run(
        self, run_id: str, only: Sequence[int] | None = None
    ) -> tuple[RunRecord, dict[Slot, NodeRecord], NodeErrors]:
        """The run record, every node record written so far (or those of the ``only`` node indexes) and the
        nodes' errors (the latest, and every attempt's), in one round trip. Raises :class:`RunNotFound`."""
        k = self.keys
        fields: list[str] = []
        with converted_errors(f"read run {run_id}"):
            pipe = self.client.pipeline(transaction=False)
            pipe.hgetall(k.run(run_id))
            if only is None:
                pipe.hgetall(k.nodes(run_id))
                pipe.hgetall(k.errors(run_id))
            elif only:
                fields = [*map(str, only), *(history_field(i) for i in only)]
                pipe.hmget(k.nodes(run_id), list(only))
                pipe.hmget(k.errors(run_id), fields)
            record, *found = pipe.execute()
        if not record:
            raise RunNotFound(run_id)
        if only is None:
            nodes, errors = found
        else:  # HMGET replies in the order asked, None for a field not written yet
            replies: list[list[str | None]] = found or [[], []]
            nodes = dict(zip(only, replies[0], strict=True))
            errors = dict(zip(fields, replies[1], strict=True))
        return (
            RunRecord.decode(record),
            {decode_slot(i): NodeRecord.decode(v) for i, v in nodes.items() if v is not None},
            NodeErrors.decode(errors),
        )

    def results(self, run_id: str, indexes: Sequence[Slot] | None = None) -> dict[Slot, Any]:
        with converted_errors(f"read results of run {run_id}"):
            if indexes is None:
                raw = self.client.hgetall(self.keys.results(run_id))
                return {decode_slot(i): result_loads(v) for i, v in raw.items()}
            if not indexes:
                return {}
            values = self.client.hmget(self.keys.results(run_id), list(indexes))
        return {i: result_loads(v) for i, v in zip(indexes, values, strict=True) if v is not None}

    def events(self, run_id: str, after: int = 0, block_ms: int | None = None) -> tuple[int, list[Event]]:
        """Transitions logged after offset ``after``: returns (next offset, events).

        With ``block_ms``, waits up to that long for at least one new event (polling every 50 ms).
        Offsets are stable across the log's trimming; pass the returned offset to the next call.
        """
        deadline = time.monotonic() + (block_ms or 0) / 1000
        while True:
            base, data = self._events_after(run_id, after)
            complete = data[: data.rfind("\n") + 1]
            if complete or time.monotonic() >= deadline:
                return max(after, base) + len(complete), [Event.parse(line) for line in complete.splitlines()]
            time.sleep(0.05)

    def _events_after(self, run_id: str, after: int) -> tuple[int, str]:
        """(bytes trimmed off the log's head, the log from offset ``after`` on). Reads only the new bytes
        (GETRANGE), so a follower polling a long log that did not grow costs two small replies."""
        k = self.keys
        with converted_errors(f"read events of run {run_id}"):
            pipe = self.client.pipeline(transaction=False)
            pipe.hget(k.run(run_id), "ev_base")
            pipe.strlen(k.events(run_id))
            base_raw, length = pipe.execute()
            base = int(base_raw or 0)
            while base + length > after:
                pipe = self.client.pipeline(transaction=True)  # MULTI: the range and the base agree
                pipe.getrange(k.events(run_id), max(0, after - base), -1)
                pipe.hget(k.run(run_id), "ev_base")
                data, now_raw = pipe.execute()
                if int(now_raw or 0) == base:
                    return base, data or ""
                base = int(now_raw or 0)  # trimmed meanwhile: read again from the new head
        return base, ""

    def events_many(self, cursors: Mapping[str, int]) -> dict[str, tuple[int, list[Event]]]:
        """:meth:`events` of many runs at once, without waiting: ``{run id: offset}`` -> ``{run id: (next
        offset, events)}``, in two round trips however many runs (the web server's shared streams poll
        every followed run this way)."""
        ids = list(cursors)
        k = self.keys
        with converted_errors("read events of runs"):
            pipe = self.client.pipeline(transaction=False)
            for run_id in ids:
                pipe.hget(k.run(run_id), "ev_base")
                pipe.strlen(k.events(run_id))
            sizes = pipe.execute()
            bases = {run_id: int(sizes[2 * i] or 0) for i, run_id in enumerate(ids)}
            grown = [r for i, r in enumerate(ids) if bases[r] + int(sizes[2 * i + 1]) > cursors[r]]
            pipe = self.client.pipeline(transaction=False)  # no MULTI: the runs' keys are in other slots
            for run_id in grown:
                pipe.getrange(k.events(run_id), max(0, cursors[run_id] - bases[run_id]), -1)
                pipe.hget(k.run(run_id), "ev_base")
            reads = pipe.execute()
        out: dict[str, tuple[int, list[Event]]] = {run_id: (cursors[run_id], []) for run_id in ids}
        for i, run_id in enumerate(grown):
            data, base_now = reads[2 * i] or "", int(reads[2 * i + 1] or 0)
            if base_now != bases[run_id]:  # trimmed between the reads (the base only grows): read it alone
                out[run_id] = self.events(run_id, cursors[run_id])
                continue
            complete = data[: data.rfind("\n") + 1]
            after = max(cursors[run_id], bases[run_id])
            out[run_id] = (after + len(complete), [Event.parse(line) for line in complete.splitlines()])
        return out

    def run_ids(self, limit: int, offset: int = 0) -> list[str]:
        with converted_errors("list runs"):
            return list(self.client.zrevrange(self.keys.index, offset, offset + limit - 1))

    def records(self, run_ids: Sequence[str]) -> list[RunRecord | None]:
        """Run records in ``run_ids`` order; None for a run that expired."""
        with converted_errors("list runs"):
            pipe = self.client.pipeline(transaction=False)
            for run_id in run_ids:
                pipe.hgetall(self.keys.run(run_id))
            return [RunRecord.decode(h) if h else None for h in pipe.execute()]

    def subscribe_done(self, run_id: str) -> Any:
        """A pub/sub subscribed to the run's completion message (published once, when it ends)."""
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self.keys.done_channel(run_id))
        return pubsub
