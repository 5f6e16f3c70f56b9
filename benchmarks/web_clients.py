"""The web benchmark's clients (``benchmarks/web_load.py``), each in a process of its own: the event-stream
followers (httpx async streams that reconnect with ``Last-Event-ID``, as a browser does) and the open-loop
API load."""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

import httpx

#: Loopback addresses the followers connect from (the server caps streams per client address).
ADDRESSES = [f"127.0.0.{i}" for i in range(1, 6)]


async def _follow(client: httpx.AsyncClient, url: str, record: dict[str, Any]) -> None:
    """Follow one run's stream for ever (cancelled at the end), reconnecting from the last id."""
    last = ""
    while True:
        headers = {"Accept": "text/event-stream", **({"Last-Event-ID": last} if last else {})}
        try:
            async with client.stream("GET", url, headers=headers) as resp:
                if resp.status_code != 200:
                    record["refused"][str(resp.status_code)] = (
                        record["refused"].get(str(resp.status_code), 0) + 1
                    )
                    await asyncio.sleep(1.0)
                    continue
                record["connected"] = record.get("connected") or time.time()
                event, data, eid = "message", "", ""
                async for line in resp.aiter_lines():
                    if line:
                        field, _, value = line.partition(":")
                        value = value[1:] if value.startswith(" ") else value
                        if field == "event":
                            event = value
                        elif field == "data":
                            data = value
                        elif field == "id":
                            eid = value
                        continue
                    if data and event in ("node", "run"):
                        _seen(record, int(eid), json.loads(data))
                        last = eid
                    elif event == "end":
                        record["ended"] = True
                        return
                    event, data, eid = "message", "", ""
        except (httpx.HTTPError, ValueError) as e:
            record["drops"].append(type(e).__name__)
        record["reconnects"] += 1
        await asyncio.sleep(0.5)


def _seen(record: dict[str, Any], eid: int, payload: dict[str, Any]) -> None:
    ids = record["ids"]
    if ids and eid <= ids[-1]:
        record["out_of_order"] += 1
    ids.append(eid)
    at = float(payload["at"])
    if at >= record["connected"]:  # live, not the replay of what was logged before it connected
        record["lags"].append(time.time() - at)


async def _followers(base: str, token: str, runs: list[str], ready: Any, stop: Any, out: str) -> None:
    clients = [
        httpx.AsyncClient(
            base_url=base,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(10.0, read=60.0),  # keep-alive comments come every 15 s
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
            transport=httpx.AsyncHTTPTransport(local_address=address),
        )
        for address in ADDRESSES
    ]
    records = [
        {"run": run, "ids": [], "lags": [], "out_of_order": 0, "reconnects": 0, "drops": [], "refused": {}}
        for run in runs
    ]
    tasks = [
        asyncio.create_task(_follow(clients[i % len(clients)], f"/api/runs/{rec['run']}/events", rec))
        for i, rec in enumerate(records)
    ]
    while not all(rec["ids"] for rec in records):  # every follower connected and replayed its run
        await asyncio.sleep(0.2)
    ready.set()
    while not stop.is_set():
        await asyncio.sleep(0.2)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for client in clients:
        await client.aclose()
    Path(out).write_text(json.dumps(records))


def followers_process(base: str, token: str, runs: list[str], ready: Any, stop: Any, out: str) -> None:
    """Follow until ``stop`` is set; ``ready`` once every follower has connected."""
    asyncio.run(_followers(base, token, runs, ready, stop, out))


#: Seconds a request may take; one still unanswered then counts as failed (status 0).
REQUEST_TIMEOUT = 30.0


async def _get(host: str, port: int, path: str, token: str) -> int:
    """One ``GET`` on a connection of its own (``Connection: close``), the whole body read; its status.

    Not an httpx pool: under a backlog, httpx's pool spends its CPU matching waiting requests to
    connections, and the load generator's own stall would be measured as the server's latency."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Accept: application/json\r\nConnection: close\r\n\r\n"
        )
        writer.write(request.encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        await reader.read()  # the body, to the end (the server closes the connection)
        return int(head.split(b" ", 2)[1])
    finally:
        writer.close()


async def _api_load(base: str, token: str, runs: list[str], rate: float, seconds: float, out: str) -> None:
    """``rate`` requests per second for ``seconds``, open loop: each sent on schedule, whether or not the
    earlier ones have answered."""
    host, port = base.removeprefix("http://").split(":")
    samples: list[tuple[float, str, float, int]] = []  # (sent at, kind, latency ms, status)
    rng = random.Random(7)

    async def one(path: str, kind: str) -> None:
        sent = time.monotonic()
        try:
            status = await asyncio.wait_for(_get(host, int(port), path, token), REQUEST_TIMEOUT)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            status = 0
        samples.append((sent - start, kind, (time.monotonic() - sent) * 1000, status))

    start = time.monotonic()
    pending: set[asyncio.Task[None]] = set()
    n = 0
    while (due := start + n / rate) < start + seconds:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        pick = rng.random()
        if pick < 0.4:
            path, kind = "/api/runs?limit=20", "GET /api/runs"
        elif pick < 0.8:
            path, kind = f"/api/runs/{rng.choice(runs)}", "GET /api/runs/{id}"
        elif pick < 0.9:
            path, kind = "/api/me", "GET /api/me"
        else:
            path, kind = "/api/definitions", "GET /api/definitions"
        task = asyncio.create_task(one(path, kind))
        pending.add(task)
        task.add_done_callback(pending.discard)
        n += 1
    await asyncio.gather(*pending)
    Path(out).write_text(json.dumps(samples))


def api_process(base: str, token: str, runs: list[str], rate: float, seconds: float, out: str) -> None:
    asyncio.run(_api_load(base, token, runs, rate, seconds, out))
