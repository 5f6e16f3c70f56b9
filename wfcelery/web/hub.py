"""One shared subscription per run: however many clients follow a run's event stream, the server process
reads its event log once per poll, and every stream is served from that one copy.

A :class:`Channel` per followed run holds the run's log (as far as the tracker keeps it), each transition
with the byte offset its line ends at. One poll loop for the whole server (every ``POLL_INTERVAL``, in a
worker thread) reads what is new of every followed run at once, appends it and wakes the streams. Every
``STATUS_INTERVAL`` it also reads the audit trail's newest entries for those about each run, so its streams
show who controlled it ("pause by bob"), and which runs have ended. A channel starts with the first stream
of its run and goes with the last; the loop runs while any channel does. Streams are capped, per client
address and in total (:class:`TooManyStreams`, answered 429), so followers cannot grow the server
without bound."""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import time
from collections import Counter
from typing import Any

import anyio
from sse_starlette import ServerSentEvent

from wfcelery.client.run import Run
from wfcelery.errors import RunNotFound, TrackerError, WfCeleryError
from wfcelery.tracker.keys import instance_name, split_slot
from wfcelery.tracker.states import NodeStatus

logger = logging.getLogger("wfcelery.web")

#: Seconds between two reads of a followed run's event log.
POLL_INTERVAL = 0.05
#: Seconds between two checks whether an idle run has ended (or was deleted).
STATUS_INTERVAL = 1.0
#: Event streams served at most at once, in total and per client address.
MAX_STREAMS = 4000
MAX_STREAMS_PER_CLIENT = 500
#: Newest audit entries read per look for the ones about a followed run.
AUDIT_READ = 200
#: Transitions a channel keeps in memory at most, the newest: what streams that keep up need. A stream
#: further behind (a follower that starts from the beginning of a long run, or resumes from an old id)
#: reads what it misses from the tracker first (:meth:`Channel.older`), so what the server holds for a run
#: does not grow with its log.
MAX_LINES = 500


class TooManyStreams(WfCeleryError):
    """The server, or this client address, already follows as many event streams as it may (429)."""


class Channel:
    """A run's event log as the server has read it; the hub's poll loop keeps it current."""

    def __init__(self, hub: Hub, run: Run) -> None:
        self.hub = hub
        self.run = run
        self.ends: list[int] = []  # byte offset each line ends at, ascending
        # each line as its Server-Sent Events message, encoded once and sent as is to every stream
        self.events: list[bytes] = []
        self.names: list[str] = []  # the plan's node names, by index
        self.pools: list[str | None] = []  # the plan's nodes' pools, by index
        self.created = 0.0  # the run's creation time (events carry milliseconds since)
        self.first = 0  # offset of the oldest line kept
        self.end = 0  # offset after the newest line
        self.ended: dict[str, Any] | None = None  # the run's end, once it has ended
        self.failed: str | None = None  # the tracker's error that stopped the loop
        self.audits: list[dict[str, Any]] = []  # the audit trail's entries about the run, oldest first
        self.streams = 0
        self.ready = False  # read once by join(): the hub's loop polls it from then on
        self.wake = asyncio.Event()

    async def describe(self) -> None:
        """Read what formatting the run's events needs: its node names and creation time."""
        plan = await anyio.to_thread.run_sync(self.run.plan)
        self.names = [n.name for n in plan.nodes]
        self.pools = [n.pool for n in plan.nodes]
        self.created = (await anyio.to_thread.run_sync(self.run.summary)).created_at

    def after(self, offset: int, skip: int) -> list[tuple[int, bytes]]:
        """(end offset, event) of the lines after ``offset``, the first ``skip`` of them left out; an
        offset in the part of the log no longer kept resumes from the oldest line kept."""
        start = 0 if offset < self.first else bisect.bisect_right(self.ends, offset) + skip
        return list(zip(self.ends[start:], self.events[start:], strict=True))

    async def poll_once(self) -> bool:
        """Read what is new of this run alone; True when something was."""
        self.hub.polls += 1
        try:
            end, fresh = await anyio.to_thread.run_sync(self.run.events, self.end)
        except RunNotFound:
            return False
        return self.append(end, fresh)

    async def older(self, offset: int, skip: int) -> tuple[int, list[bytes]]:
        """The messages after ``offset`` (the first ``skip`` left out) read from the tracker, for a stream
        behind what the channel keeps: (the offset they end at, the messages)."""
        end, events = await anyio.to_thread.run_sync(self.run.events, offset)
        return end, self.encode(end, events)[skip:]

    def encode(self, end: int, events: list[Any]) -> list[bytes]:
        """``events``, the log's lines up to offset ``end``, as their Server-Sent Events messages."""
        position = end - sum(len(e.encode().encode()) for e in events)
        out = []
        for event in events:
            position += len(event.encode().encode())
            kind = "node" if event.node is not None else "run"
            data = json.dumps(payload(event, self.names, self.created, self.pools))
            out.append(ServerSentEvent(data=data, event=kind, id=str(position)).encode())
        return out

    def append(self, end: int, fresh: list[Any]) -> bool:
        """Keep the events read up to offset ``end``; True when there were any."""
        if not fresh:
            return False
        position = end - sum(len(e.encode().encode()) for e in fresh)
        if not self.events:
            self.first = position
        for event in fresh:
            position += len(event.encode().encode())
            self.ends.append(position)
        self.events.extend(self.encode(end, fresh))
        self.end = end
        if len(self.events) > MAX_LINES:
            cut = len(self.events) - MAX_LINES
            self.first = self.ends[cut - 1]
            del self.ends[:cut], self.events[:cut]
        return True

    async def read_audit(self) -> None:
        """Append the audit trail's new entries about the run (who paused it, cancelled it...)."""
        entries = await anyio.to_thread.run_sync(self.run.engine.audit_log, AUDIT_READ)
        self.add_audits(entries)

    def add_audits(self, entries: list[Any]) -> bool:
        """Of the audit trail's newest ``entries`` (newest first), keep the new ones about the run; True
        when there were any."""
        target = f"run {self.run.id}"
        last = self.audits[-1]["at"] if self.audits else 0.0
        fresh = [e.to_dict() for e in reversed(entries) if e.target == target and e.at > last]
        self.audits.extend(fresh)
        return bool(fresh)

    def notify(self) -> None:
        woken, self.wake = self.wake, asyncio.Event()
        woken.set()


class Hub:
    """The server's channels, one per followed run, the one poll loop that reads them all, and the stream
    counts they are capped by.

    Every ``POLL_INTERVAL`` the loop reads the new events of every followed run in one call (a couple of
    pipelined round trips to Redis, in one worker thread: :meth:`Engine.events_of`), and every
    ``STATUS_INTERVAL`` the audit trail once and the runs' summaries in one call. Its cost grows with the
    runs followed, not with the streams; one thread hop per poll, not one per run, leaves the worker
    threads to the API's requests."""

    def __init__(self, max_streams: int = MAX_STREAMS, per_client: int = MAX_STREAMS_PER_CLIENT) -> None:
        self.max_streams = max_streams
        self.per_client = per_client
        self.channels: dict[str, Channel] = {}
        self.clients: Counter[str] = Counter()
        self.polls = 0  # reads of event logs, in total (what the load test counts)
        self.task: asyncio.Task[None] | None = None

    @property
    def streams(self) -> int:
        return sum(self.clients.values())

    def admit(self, client: str) -> None:
        """Count one more stream of ``client``, or raise :class:`TooManyStreams`."""
        if self.streams >= self.max_streams:
            raise TooManyStreams(f"this server already serves {self.max_streams} event streams: try later")
        if self.clients[client] >= self.per_client:
            raise TooManyStreams(
                f"this client address already follows {self.per_client} event streams: close some first"
            )
        self.clients[client] += 1

    def leave(self, client: str) -> None:
        self.clients[client] -= 1
        if self.clients[client] <= 0:
            del self.clients[client]

    async def join(self, run: Run) -> Channel:
        """The run's channel, read up to now; the hub's loop polls it while a stream holds it."""
        channel = self.channels.get(run.id)
        if channel is None:
            channel = self.channels[run.id] = Channel(self, run)
            channel.streams += 1
            try:
                await channel.describe()
                await channel.poll_once()
                await channel.read_audit()
            except BaseException:
                channel.streams -= 1
                self.channels.pop(run.id, None)
                channel.notify()
                raise
            channel.ready = True
            channel.notify()  # streams that joined while the log was read
            if self.task is None or self.task.done():
                self.task = asyncio.get_running_loop().create_task(self.loop())
        else:
            channel.streams += 1
        return channel

    @staticmethod
    def drop(channel: Channel) -> None:
        channel.streams -= 1  # the loop lets the channel go when the count reaches 0

    async def loop(self) -> None:
        checked = time.monotonic()
        while self.channels:
            for run_id, channel in list(self.channels.items()):
                if channel.ready and channel.streams <= 0:
                    del self.channels[run_id]
            live = {run_id: c for run_id, c in self.channels.items() if c.ready}
            if live:
                try:
                    await self.poll(live)
                    if time.monotonic() - checked >= STATUS_INTERVAL:
                        checked = time.monotonic()
                        await self.check(live)
                except TrackerError as e:
                    self.fail(live, e)
            await anyio.sleep(POLL_INTERVAL)

    async def poll(self, live: dict[str, Channel]) -> set[str]:
        """Read the new events of the ``live`` channels and wake their streams; the runs that had some."""
        self.polls += 1
        engine = next(iter(live.values())).run.engine
        read = await anyio.to_thread.run_sync(engine.events_of, {i: c.end for i, c in live.items()})
        grown = set()
        for run_id, (end, fresh) in read.items():
            if live[run_id].append(end, fresh):
                grown.add(run_id)
                live[run_id].ended = None
                live[run_id].notify()
        return grown

    async def check(self, live: dict[str, Channel]) -> None:
        """The audit trail's news for each run, and which runs have ended (or were deleted)."""
        engine = next(iter(live.values())).run.engine
        entries, summaries = await anyio.to_thread.run_sync(
            lambda: (engine.audit_log(AUDIT_READ), engine.summaries(list(live)))
        )
        ended = {i: _end_of(s) for i, s in summaries.items()}
        ended = {i: e for i, e in ended.items() if e is not None}
        # what was logged between the last poll and the summaries belongs before the end: read it first
        grown = await self.poll({i: live[i] for i in ended}) if ended else set()
        for run_id, channel in live.items():
            news = channel.add_audits(entries)
            if run_id in ended and run_id not in grown:
                channel.ended = ended[run_id]
                news = True
            if news:  # wake only the streams with something to send: 500 wake-ups a second cost
                channel.notify()

    def fail(self, live: dict[str, Channel], error: TrackerError) -> None:
        logger.warning("wfcelery web: event streams of %d runs ended: %s", len(live), error)
        for run_id, channel in live.items():
            channel.failed = str(error)
            self.channels.pop(run_id, None)
            channel.notify()


def _end_of(summary: Any) -> dict[str, Any] | None:
    """The run's end, or None while it is live (a gone run: deleted)."""
    if summary is None:
        return {"status": None, "deleted": True}
    if not summary.status.finished:
        return None
    return {"status": summary.status.value, "deleted": False}


def payload(
    event: Any, names: list[str], created: float, pools: list[str | None] | None = None
) -> dict[str, Any]:
    """A node's (or an instance's: ``resize[3]``, logged as ``"<index>:<i>"``) transition, or the run's. A
    task node WAITING waits for its pool: ``"waiting": {"for": "pool", "pool": <name>}``."""
    if event.node is None:
        run = {"node": None, "index": None, "status": event.status}
        return {**run, "epoch": event.epoch, "at": _at(event, created)}
    index, instance = split_slot(event.node)
    name = names[index] if index < len(names) else None
    if name is not None and instance is not None:
        name = instance_name(name, instance)
    status = NodeStatus.from_code(event.status)
    pool = pools[index] if pools and index < len(pools) else None
    return {
        "node": name,
        "index": index,
        **({"instance": instance} if instance is not None else {}),
        "status": status.value,
        **({"waiting": {"for": "pool", "pool": pool}} if pool and status is NodeStatus.WAITING else {}),
        "epoch": event.epoch,
        "at": _at(event, created),
    }


def _at(event: Any, created: float) -> float:
    return round(created + int(event.at_ms) / 1000, 3)
