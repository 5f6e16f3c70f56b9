"""One shared subscription per run: however many clients follow a run's event stream, the server process
reads its event log once per poll, and every stream is served from that one copy.

A :class:`Channel` per followed run holds the run's log (as far as the tracker keeps it), each transition
with the byte offset its line ends at, and one poll loop (every ``POLL_INTERVAL``, in a worker thread)
that appends what is new and wakes the streams. Every ``STATUS_INTERVAL`` it also reads the audit trail's
newest entries for those about the run, so its streams show who controlled it ("pause by bob"). It starts
with the first stream of the run and stops with the last. Streams are capped, per client address and in
total (:class:`TooManyStreams`, answered 429), so followers cannot grow the server without bound."""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections import Counter
from typing import Any

import anyio

from wfcelery.client.run import Run
from wfcelery.errors import RunNotFound, TrackerError, WfCeleryError

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
#: Transitions a channel keeps at most (the tracker caps the log too; the oldest go first).
MAX_LINES = 100_000


class TooManyStreams(WfCeleryError):
    """The server, or this client address, already follows as many event streams as it may (429)."""


class Channel:
    """A run's event log as the server has read it, and the poll loop that keeps it current."""

    def __init__(self, hub: Hub, run: Run) -> None:
        self.hub = hub
        self.run = run
        self.ends: list[int] = []  # byte offset each line ends at, ascending
        self.events: list[Any] = []
        self.first = 0  # offset of the oldest line kept
        self.end = 0  # offset after the newest line
        self.ended: dict[str, Any] | None = None  # the run's end, once it has ended
        self.failed: str | None = None  # the tracker's error that stopped the loop
        self.audits: list[dict[str, Any]] = []  # the audit trail's entries about the run, oldest first
        self.streams = 0
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def after(self, offset: int, skip: int) -> list[tuple[int, Any]]:
        """(end offset, event) of the lines after ``offset``, the first ``skip`` of them left out; an
        offset in the part of the log no longer kept resumes from the oldest line kept."""
        start = 0 if offset < self.first else bisect.bisect_right(self.ends, offset) + skip
        return list(zip(self.ends[start:], self.events[start:], strict=True))

    async def poll_once(self) -> bool:
        """Read what is new; True when something was."""
        self.hub.polls += 1
        try:
            end, fresh = await anyio.to_thread.run_sync(self.run.events, self.end)
        except RunNotFound:
            return False
        if not fresh:
            return False
        position = end - sum(len(e.encode().encode()) for e in fresh)
        if not self.events:
            self.first = position
        for event in fresh:
            position += len(event.encode().encode())
            self.ends.append(position)
            self.events.append(event)
        self.end = end
        if len(self.events) > MAX_LINES:
            cut = len(self.events) - MAX_LINES
            self.first = self.ends[cut - 1]
            del self.ends[:cut], self.events[:cut]
        return True

    async def read_audit(self) -> None:
        """Append the audit trail's new entries about the run (who paused it, cancelled it...)."""
        target = f"run {self.run.id}"
        entries = await anyio.to_thread.run_sync(self.run.engine.audit_log, AUDIT_READ)
        last = self.audits[-1]["at"] if self.audits else 0.0
        fresh = [e.to_dict() for e in reversed(entries) if e.target == target and e.at > last]
        if fresh:
            self.audits.extend(fresh)

    def notify(self) -> None:
        woken, self.wake = self.wake, asyncio.Event()
        woken.set()

    async def loop(self) -> None:
        checked = 0.0
        try:
            while self.streams > 0:
                if await self.poll_once():
                    self.ended = None
                    self.notify()
                elif time.monotonic() - checked >= STATUS_INTERVAL:
                    checked = time.monotonic()
                    await self.read_audit()
                    ended = await anyio.to_thread.run_sync(_ended, self.run)
                    if ended is not None and not await self.poll_once():  # nothing logged meanwhile
                        self.ended = ended
                    self.notify()
                await anyio.sleep(POLL_INTERVAL)
        except TrackerError as e:
            logger.warning("wfcelery web: event stream of run %s ended: %s", self.run.id, e)
            self.failed = str(e)
            self.notify()
        finally:
            self.hub.channels.pop(self.run.id, None)


class Hub:
    """The server's channels, one per followed run, and the stream counts they are capped by."""

    def __init__(self, max_streams: int = MAX_STREAMS, per_client: int = MAX_STREAMS_PER_CLIENT) -> None:
        self.max_streams = max_streams
        self.per_client = per_client
        self.channels: dict[str, Channel] = {}
        self.clients: Counter[str] = Counter()
        self.polls = 0  # reads of event logs, in total (what the load test counts)

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
        """The run's channel, read up to now; its poll loop runs while a stream holds it."""
        channel = self.channels.get(run.id)
        if channel is None:
            channel = self.channels[run.id] = Channel(self, run)
            channel.streams += 1
            try:
                await channel.poll_once()
                await channel.read_audit()
                channel.notify()  # streams that joined while the log was read
            except BaseException:
                channel.streams -= 1
                self.channels.pop(run.id, None)
                raise
            channel.task = asyncio.get_running_loop().create_task(channel.loop())
        else:
            channel.streams += 1
        return channel

    @staticmethod
    def drop(channel: Channel) -> None:
        channel.streams -= 1  # the loop ends by itself when the count reaches 0


def _ended(run: Run) -> dict[str, Any] | None:
    """The run's end, or None while it is live."""
    try:
        status = run.summary().status
    except RunNotFound:
        return {"status": None, "deleted": True}
    if not status.finished:
        return None
    return {"status": status.value, "deleted": False}
