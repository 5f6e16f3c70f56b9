"""The web server under load: ``make bench-web`` (``python -m benchmarks.web_load``).

One ``wfcelery web`` process (a subprocess, as deployed, with a viewer token: every request authenticates
with ``Authorization: Bearer``) serves for ``--seconds`` (``WEB_LOAD_SECONDS``, default 600):

* ``--followers`` (500) event-stream followers of ``--runs`` (50) live runs, spread evenly. The runs are
  chains of ``bench.sleep`` nodes (``--node-seconds`` each) run by a real ``celery worker`` subprocess
  (threads pool, one thread per run), long enough to log transitions for the whole measurement. Each
  follower is an httpx async stream that reconnects with ``Last-Event-ID`` when dropped, as a browser
  does; the followers run in ``--follower-processes`` processes of their own, and connect from several
  loopback addresses (127.0.0.1-5, like clients of a few machines).
* ``--rate`` (50) API requests per second, open loop (sent on schedule whether or not earlier ones have
  answered), from a process of its own: ``GET /api/runs``, ``GET /api/runs/{id}`` (a live run's whole
  state), ``GET /api/me``, ``GET /api/definitions``.

The API load, and the measurement, start once every follower has connected and received its run's
events so far (how long the 500 took to connect is reported); the followers stay connected until it ends.

Reported against the targets: the API's p50 / p99 / max latency (target p99 < 200 ms) overall and per
minute; per follower, whether it saw every event id of its run in order -- the ids it received are checked
against the run's event log as the tracker holds it (every logged transition up to the last id the
follower got must have reached it, each once, ids increasing; target: no follower missed one); the
delivery lag (receipt time minus the transition's time); the server's RSS and CPU sampled every 5 s
(target: flat -- RSS at the end within 10% of RSS after the first minute); the machine's load average.
Results: ``benchmarks/results/<date>-web-load.{json,md}`` (``--tag`` changes the suffix).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import random
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis

from benchmarks.environment import machine
from benchmarks.harness import Workers, WorkerSettings, make_workdir, redis_server_class
from benchmarks.tasks import make_app
from wfcelery import Workflow
from wfcelery.errors import WfCeleryError
from wfcelery.tracker.access import Role

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).parent / "results"
QUEUE = "webload"
PREFIX = "wfweb"
#: Loopback addresses the followers connect from (the server caps streams per client address).
ADDRESSES = [f"127.0.0.{i}" for i in range(1, 6)]
SAMPLE_EVERY = 5.0
TARGET_P99_MS = 200.0
TARGET_RSS_GROWTH = 0.10


# -- followers (a process of their own) --------------------------------------------------------------------


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


# -- API load (a process of its own) ---------------------------------------------------------------------


async def _api_load(base: str, token: str, runs: list[str], rate: float, seconds: float, out: str) -> None:
    paths = ["/api/runs?limit=20", "/api/me", "/api/definitions"]
    samples: list[tuple[float, str, float, int]] = []  # (sent at, kind, latency ms, status)
    rng = random.Random(7)
    async with httpx.AsyncClient(
        base_url=base,
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        timeout=httpx.Timeout(30.0),
        limits=httpx.Limits(max_connections=200),
    ) as client:

        async def one(path: str, kind: str) -> None:
            sent = time.monotonic()
            try:
                resp = await client.get(path)
                status = resp.status_code
            except httpx.HTTPError:
                status = 0
            samples.append((sent - start, kind, (time.monotonic() - sent) * 1000, status))

        start = time.monotonic()
        pending: set[asyncio.Task[None]] = set()
        n = 0
        while (due := start + n / rate) < start + seconds:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            pick = rng.random()
            if pick < 0.4:
                path, kind = paths[0], "GET /api/runs"
            elif pick < 0.8:
                path, kind = f"/api/runs/{rng.choice(runs)}", "GET /api/runs/{id}"
            elif pick < 0.9:
                path, kind = paths[1], "GET /api/me"
            else:
                path, kind = paths[2], "GET /api/definitions"
            task = asyncio.create_task(one(path, kind))
            pending.add(task)
            task.add_done_callback(pending.discard)
            n += 1
        await asyncio.gather(*pending)
    Path(out).write_text(json.dumps(samples))


def api_process(base: str, token: str, runs: list[str], rate: float, seconds: float, out: str) -> None:
    asyncio.run(_api_load(base, token, runs, rate, seconds, out))


# -- the server process ------------------------------------------------------------------------------------


def proc_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(env: dict[str, str], port: int, logdir: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "wfcelery.cli", "-A", "benchmarks.tasks:app", "web"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    log = open(logdir / "web.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def wait_healthy(base: str, token: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"wfcelery web exited with {proc.returncode}")
        try:
            if (
                httpx.get(f"{base}/api/health", headers={"Authorization": f"Bearer {token}"}).status_code
                == 200
            ):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("wfcelery web did not answer /api/health in time")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- the check and the report ------------------------------------------------------------------------------


def expected_ids(engine: Any, run_id: str) -> tuple[int, list[int]]:
    """(offset of the oldest kept line, the id of every transition the tracker's log of the run holds),
    computed as the server computes them (each id is the byte offset its line ends at)."""
    end, events = engine.run(run_id).events(0)
    position = end - sum(len(e.encode().encode()) for e in events)
    first, ids = position, []
    for event in events:
        position += len(event.encode().encode())
        ids.append(position)
    return first, ids


def check_followers(engine: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
    logs = {run: expected_ids(engine, run) for run in {r["run"] for r in records}}
    missed_followers, missed_events, duplicates, out_of_order, received = 0, 0, 0, 0, 0
    for rec in records:
        first, ids = logs[rec["run"]]
        seen = rec["ids"]
        received += len(seen)
        out_of_order += rec["out_of_order"]
        duplicates += len(seen) - len(set(seen))
        last = seen[-1] if seen else first
        missing = set(i for i in ids if i <= last) - set(seen)
        if missing:
            missed_followers += 1
            missed_events += len(missing)
    lags = sorted(x for rec in records for x in rec["lags"])
    return {
        "followers": len(records),
        "events_received": received,
        "followers_that_missed_an_event": missed_followers,
        "events_missed": missed_events,
        "events_duplicated": duplicates,
        "events_out_of_order": out_of_order,
        "followers_with_no_event": sum(1 for r in records if not r["ids"]),
        "runs_ended_early": len({r["run"] for r in records if r.get("ended")}),
        "reconnects": sum(r["reconnects"] for r in records),
        "drops": dict(Counter(d for r in records for d in r["drops"])),
        "refused": dict(sum((Counter(r["refused"]) for r in records), Counter())),
        "delivery_lag_ms": percentiles([x * 1000 for x in lags]),
    }


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None, "n": 0}
    values = sorted(values)
    pick = lambda q: round(values[min(len(values) - 1, int(len(values) * q))], 1)  # noqa: E731
    return {
        "p50": pick(0.5),
        "p95": pick(0.95),
        "p99": pick(0.99),
        "max": round(values[-1], 1),
        "n": len(values),
    }


def api_figures(samples: list[list[Any]], seconds: float) -> dict[str, Any]:
    ok = [s for s in samples if s[3] == 200]
    minutes = []
    for m in range(math.ceil(seconds / 60)):
        part = [s[2] for s in ok if m * 60 <= s[0] < (m + 1) * 60]
        minutes.append({"minute": m + 1, **percentiles(part)})
    return {
        "requests": len(samples),
        "rate_per_s": round(len(samples) / seconds, 1),
        "errors": dict(Counter(str(s[3]) for s in samples if s[3] != 200)),
        "latency_ms": percentiles([s[2] for s in ok]),
        "by_kind": {k: percentiles([s[2] for s in ok if s[1] == k]) for k in sorted({s[1] for s in ok})},
        "by_minute": minutes,
    }


def report(result: dict[str, Any]) -> str:
    api, streams, rss = result["api"], result["followers"], result["server"]
    t = result["targets"]
    yes = lambda ok: "**met**" if ok else "**missed**"  # noqa: E731
    lines = [
        f"# Web under load: {result['conditions']['followers']} event-stream followers + "
        f"{result['conditions']['api_rate']} API requests/s for {result['conditions']['seconds']:.0f} s",
        "",
        f"{result['date']}, commit {result['machine']['wfcelery_commit']}, {result['machine']['cpus']} CPUs "
        f"({result['machine']['cpu_model']}). Load average at start {result['machine']['load_average_at_start']}, "
        f"during the run {result['load_average']['min']:.2f}-{result['load_average']['max']:.2f} "
        f"(mean {result['load_average']['mean']:.2f}). {result['conditions']['note']}",
        "",
        "| target | figure | |",
        "|---|---|---|",
        f"| API p99 < {TARGET_P99_MS:.0f} ms | p50 {api['latency_ms']['p50']} ms, p99 {api['latency_ms']['p99']} ms, "
        f"max {api['latency_ms']['max']} ms over {api['requests']} requests ({api['rate_per_s']}/s; "
        f"errors {api['errors'] or 'none'}) | {yes(t['api_p99'])} |",
        f"| no follower misses an event | {streams['followers_that_missed_an_event']} of {streams['followers']} "
        f"followers missed any; {streams['events_received']} events received, {streams['events_missed']} missed, "
        f"{streams['events_duplicated']} duplicated, {streams['events_out_of_order']} out of order | "
        f"{yes(t['no_missed_event'])} |",
        f"| server RSS flat (end within {TARGET_RSS_GROWTH:.0%} of minute 1) | {rss['rss_mb_after_1_min']} MB "
        f"after 1 min, {rss['rss_mb_end']} MB at the end, peak {rss['rss_mb_peak']} MB | {yes(t['rss_flat'])} |",
        "",
        f"Server CPU: {rss['cpu_percent_mean']}% of one core on average. Delivery lag (receipt minus the "
        f"transition's time): p50 {streams['delivery_lag_ms']['p50']} ms, p99 {streams['delivery_lag_ms']['p99']} "
        f"ms. Reconnects {streams['reconnects']}, refused {streams['refused'] or 'none'}.",
        "",
        "API latency by request (ms):",
        "",
        "| request | p50 | p95 | p99 | max | n |",
        "|---|---|---|---|---|---|",
        *(
            f"| `{k}` | {v['p50']} | {v['p95']} | {v['p99']} | {v['max']} | {v['n']} |"
            for k, v in api["by_kind"].items()
        ),
        "",
        "Per minute: " + ", ".join(f"{m['minute']}: p99 {m['p99']} ms" for m in api["by_minute"]) + ".",
        "",
        "Server RSS (MB) every minute: "
        + ", ".join(f"{s['t']:.0f} s: {s['rss_mb']}" for s in rss["samples"] if s["t"] % 60 < SAMPLE_EVERY)
        + ".",
    ]
    return "\n".join(lines) + "\n"


# -- the run ----------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = make_workdir()
    server = redis_server_class()().start()
    workers = web = None
    try:
        app = make_app(f"{server.url}/0", f"{server.url}/1", PREFIX, {"task_default_queue": QUEUE})
        engine = app._wfcelery_engine
        nodes = math.ceil((args.seconds + 120) / args.node_seconds)  # outlasts the measurement
        wf = Workflow("webload")
        previous = None
        for i in range(nodes):
            node = wf.add(f"n{i:04d}", "bench.sleep", kwargs={"seconds": args.node_seconds}, queue=QUEUE)
            if previous is not None:
                previous >> node
            previous = node
        engine.register(wf)
        workers = Workers(
            WorkerSettings(pool="threads", concurrency=args.runs + 4),
            f"{server.url}/0",
            f"{server.url}/1",
            PREFIX,
            QUEUE,
            workdir,
            conf={"task_default_queue": QUEUE},
        ).start(app)
        token = engine.create_token("webload", Role.VIEWER)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        web = start_server(workers.env, port, workdir)
        wait_healthy(base, token, web)
        runs = [engine.submit(wf).id for _ in range(args.runs)]
        followed = [runs[i % len(runs)] for i in range(args.followers)]
        spawn = multiprocessing.get_context("spawn")
        stop = spawn.Event()
        procs, outs, readies = [], [], []
        per = math.ceil(len(followed) / args.follower_processes)
        connecting = time.monotonic()
        for k in range(args.follower_processes):
            out, ready = str(workdir / f"followers{k}.json"), spawn.Event()
            part = followed[k * per : (k + 1) * per]
            procs.append(spawn.Process(target=followers_process, args=(base, token, part, ready, stop, out)))
            outs.append(out)
            readies.append(ready)
            procs[-1].start()
        for ready in readies:
            if not ready.wait(300):
                raise RuntimeError("the followers did not all connect within 300 s")
        connect_seconds = time.monotonic() - connecting
        api_out = str(workdir / "api.json")
        api = spawn.Process(target=api_process, args=(base, token, runs, args.rate, args.seconds, api_out))
        r = redis.Redis.from_url(f"{server.url}/1")
        started = time.monotonic()
        cpu0 = proc_cpu(web.pid)
        api.start()
        samples, loads = sample(web, [api], started, cpu0, args.seconds)
        api.join(120)
        stop.set()
        for p in procs:
            p.join(120)
        if web.poll() is not None:
            raise RuntimeError(f"wfcelery web exited with {web.returncode} during the run; see {workdir}")
        records = [rec for out in outs for rec in json.loads(Path(out).read_text())]
        followers = check_followers(engine, records)
        figures = api_figures(json.loads(Path(api_out).read_text()), args.seconds)
        statuses = Counter(engine.run(run_id).summary().status.value for run_id in runs)
        for run_id in runs:
            with contextlib.suppress(WfCeleryError):
                engine.run(run_id).cancel()
        result = assemble(args, followers, figures, samples, loads, r, dict(statuses))
        result["followers"]["seconds_to_connect_all"] = round(connect_seconds, 1)
        return result
    finally:
        if web is not None and web.poll() is None:
            web.terminate()
            web.wait(20)
        if workers is not None:
            workers.stop()
        server.stop()


def sample(
    web: subprocess.Popen[bytes], procs: list[Any], started: float, cpu0: float, seconds: float
) -> tuple[list[dict[str, Any]], list[float]]:
    samples, loads = [], []
    last_cpu, last_t = cpu0, started
    while any(p.is_alive() for p in procs) and web.poll() is None:
        time.sleep(SAMPLE_EVERY)
        now, cpu = time.monotonic(), proc_cpu(web.pid)
        samples.append(
            {
                "t": round(now - started, 1),
                "rss_mb": round(proc_rss(web.pid) / 2**20, 1),
                "cpu_percent": round((cpu - last_cpu) / (now - last_t) * 100, 1),
            }
        )
        loads.append(os.getloadavg()[0])
        last_cpu, last_t = cpu, now
        if now - started > seconds + 180:
            raise RuntimeError("the load processes did not finish in time")
    return samples, loads


def assemble(
    args: argparse.Namespace,
    followers: dict[str, Any],
    api: dict[str, Any],
    samples: list[dict[str, Any]],
    loads: list[float],
    r: redis.Redis,
    statuses: dict[str, int],
) -> dict[str, Any]:
    inside = [s for s in samples if s["t"] <= args.seconds]
    after_1 = next((s["rss_mb"] for s in inside if s["t"] >= 60), inside[0]["rss_mb"])
    end = inside[-1]["rss_mb"]
    server = {
        "rss_mb_after_1_min": after_1,
        "rss_mb_end": end,
        "rss_mb_peak": max(s["rss_mb"] for s in inside),
        "cpu_percent_mean": round(sum(s["cpu_percent"] for s in inside) / len(inside), 1),
        "samples": inside,
    }
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "conditions": {
            "seconds": args.seconds,
            "followers": args.followers,
            "runs": args.runs,
            "node_seconds": args.node_seconds,
            "api_rate": args.rate,
            "follower_processes": args.follower_processes,
            "auth": "a viewer token, Authorization: Bearer on every request and stream",
            "redis": "one throwaway redis-server: broker db 0, tracker db 1",
            "worker": f"celery worker, threads pool, concurrency {args.runs + 4}",
            "run_statuses_at_the_end": statuses,
            "tracker_used_memory_mb_end": round(int(r.info("memory")["used_memory"]) / 2**20, 1),
            "note": args.note,
        },
        "load_average": {
            "min": min(loads),
            "max": max(loads),
            "mean": round(sum(loads) / len(loads), 2),
        },
        "api": api,
        "followers": followers,
        "server": server,
        "targets": {
            "api_p99": (api["latency_ms"]["p99"] or 1e9) < TARGET_P99_MS,
            "no_missed_event": followers["followers_that_missed_an_event"] == 0
            and followers["events_out_of_order"] == 0
            and followers["followers_with_no_event"] == 0,
            "rss_flat": end <= after_1 * (1 + TARGET_RSS_GROWTH),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("WEB_LOAD_SECONDS", 600)))
    parser.add_argument("--followers", type=int, default=500)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rate", type=float, default=50.0, help="API requests per second")
    parser.add_argument("--node-seconds", type=float, default=1.0)
    parser.add_argument("--follower-processes", type=int, default=2)
    parser.add_argument("--note", default="", help="conditions to record (e.g. what else the machine ran)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--tag", default="web-load")
    args = parser.parse_args()
    result = run(args)
    text = report(result)
    print(text)
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{day}-{args.tag}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{day}-{args.tag}.md").write_text(text)


if __name__ == "__main__":
    main()
