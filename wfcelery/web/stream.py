"""``GET /api/runs/{id}/events``: a run's transitions as Server-Sent Events, in order, resumable.

Each transition of the run's event log (:meth:`Run.events`, the tracker's ``events`` key) is one SSE
message::

    event: node                      (or "run" for the run's own transitions)
    id: 1834.2
    data: {"node": "transform", "index": 1, "status": "RUNNING", "epoch": 0, "at": 1764621712.518}

The ``id`` is a cursor into the log: ``<offset>`` is "everything before this byte offset was sent" (each
transition's id is the offset its line ends at); ``<offset>.<k>``, "the first k transitions after that
offset were sent", is accepted too. A client that reconnects with ``Last-Event-ID`` (browsers do it by
themselves) gets exactly the transitions it missed. Without one, the stream starts from the run's first
transition, so replaying it rebuilds the run's state.

A ``Last-Event-ID`` that is no id of this run's stream -- not ``<offset>[.<k>]``, an offset inside an
event or past the log's end, more events skipped than there are -- answers 400 (``InvalidEventId``)
before the stream starts (:func:`checked_cursor`). Ids are checked against the log as the tracker
keeps it: an offset in a part of the log already trimmed (the log is capped) resumes from its oldest
kept transition.

The audit trail's entries about the run go out as ``event: audit`` (``{"at", "actor", "action", "target",
"outcome"}``: "pause by bob"), without an id: they are sent again, all of them, to a stream that
reconnects.

When the run has ended and every transition is sent, the stream sends ``event: end`` and closes; a run
that is retried later can be followed again from the last id. A run deleted meanwhile also ends the
stream (``{"deleted": true}``). Keep-alive comments go out every 15 s.

The logs of every followed run are polled together every 50 ms (one pipelined read, in a worker thread),
however many streams follow them (:mod:`wfcelery.web.hub`), so a transition reaches the browser within
~50-100 ms. Each transition is encoded once, and sent to every stream of its run as those bytes. The
server keeps the newest :data:`~wfcelery.web.hub.MAX_LINES` transitions of a followed run; a stream
further behind (from the start of a long run, or resumed from an old id) reads that part from the tracker
first.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent

from wfcelery.client.run import Run
from wfcelery.errors import TrackerError
from wfcelery.web.errors import InvalidEventId
from wfcelery.web.hub import STATUS_INTERVAL, Channel, Hub

logger = logging.getLogger("wfcelery.web")

#: Seconds between keep-alive comments.
PING_INTERVAL = 15


_CURSOR = re.compile(r"(\d{1,15})(?:\.(\d{1,9}))?")


def checked_cursor(run: Run, raw: str | None) -> tuple[int, int]:
    """``"1834"`` -> (1834, 0); ``"1834.2"`` -> (1834, 2); none -> (0, 0), from the start.

    Raises:
        InvalidEventId: ``raw`` is no id this run's stream sent (reads the run's event log once).
    """
    if not raw:
        return 0, 0
    found = _CURSOR.fullmatch(raw.strip())
    if found is None:
        raise _invalid(raw, "ids are <offset> or <offset>.<n>, as the stream sent them")
    offset, skip = int(found.group(1)), int(found.group(2) or 0)
    end, events = run.events(0)
    # the log from its oldest kept line (the tracker trims the head) to its end, line by line
    position = end - sum(len(e.encode()) for e in events)
    if offset < position:
        return offset, skip  # in the trimmed part: resumes from the oldest kept line
    following = len(events)
    for e in events:
        if position == offset:
            break
        position += len(e.encode())
        following -= 1
    if position != offset:
        raise _invalid(raw, "its offset is not the end of an event of this run's log")
    if skip > following:
        raise _invalid(raw, f"it skips {skip} events where {following} follow its offset")
    return offset, skip


def _invalid(raw: str, why: str) -> InvalidEventId:
    shown = raw if len(raw) <= 60 else raw[:60] + "…"
    return InvalidEventId(f"Last-Event-ID {shown!r} is not an event id of this run: {why}")


def event_stream(run: Run, cursor: tuple[int, int], hub: Hub, client: str) -> EventSourceResponse:
    """The run's stream from ``cursor``, served from the hub's one channel of the run.

    Raises:
        TooManyStreams: the server or ``client`` already has as many streams as it may (429).
    """
    hub.admit(client)
    return EventSourceResponse(
        _events(run, *cursor, hub=hub, client=client),
        ping=PING_INTERVAL,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},  # nginx: do not buffer
    )


async def _events(
    run: Run, offset: int, skip: int, hub: Hub, client: str
) -> AsyncIterator[ServerSentEvent | bytes]:
    """The stream; the tracker's Redis lost mid-stream ends it (the client reconnects from its last id and
    is answered 503 until Redis is back) instead of an error the started response can no longer carry."""
    try:
        channel = await hub.join(run)
        try:
            async for event in _follow(run, offset, skip, channel):
                yield event
        finally:
            hub.drop(channel)
    except TrackerError as e:
        logger.warning("wfcelery web: event stream of run %s ended: %s", run.id, e)
    finally:
        hub.leave(client)


async def _follow(
    run: Run, offset: int, skip: int, channel: Channel
) -> AsyncIterator[ServerSentEvent | bytes]:
    yield ServerSentEvent(comment="wfcelery run events", retry=1000)
    audited = 0  # audit entries of the channel sent
    while True:
        wake = channel.wake
        for entry in channel.audits[audited:]:
            yield ServerSentEvent(data=json.dumps(entry), event="audit")
        audited = len(channel.audits)
        if offset < channel.first:  # behind what the channel keeps: read that part from the tracker
            end, older = await channel.older(offset, skip)
            if end > offset:  # (a log gone meanwhile reads nothing: the channel's copy serves)
                offset, skip = end, 0
                if older:
                    yield b"".join(older)
                continue
        fresh = channel.after(offset, skip)
        skip = 0
        if fresh:  # the messages as the channel encoded them, in one write
            offset = fresh[-1][0]
            yield b"".join(message for _, message in fresh)
            continue
        if channel.failed is not None:
            return
        if channel.ended is not None and offset >= channel.end:
            yield ServerSentEvent(data=json.dumps(channel.ended), event="end", id=str(offset))
            return
        with anyio.move_on_after(STATUS_INTERVAL):
            await wake.wait()
