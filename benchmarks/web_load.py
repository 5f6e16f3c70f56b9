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

First the API load runs alone for ``--baseline-seconds`` (60; ``WEB_LOAD_BASELINE_SECONDS``), no stream
open: the latency the machine allows the server as it is loaded at the time, reported beside the figures.
Then the API load, and the measurement, start once every follower has connected and received its run's
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
import contextlib
import json
import math
import multiprocessing
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis

import wfcelery
from benchmarks.environment import machine
from benchmarks.harness import Workers, WorkerSettings, make_workdir, redis_server_class
from benchmarks.tasks import make_app
from benchmarks.web_clients import api_process, followers_process
from benchmarks.web_report import (
    SAMPLE_EVERY,
    TARGET_P99_MS,
    TARGET_RSS_GROWTH,
    api_figures,
    check_followers,
    report,
)
from wfcelery import Workflow
from wfcelery.errors import WfCeleryError
from wfcelery.tracker.access import Role

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).parent / "results"
QUEUE = "webload"
PREFIX = "wfweb"


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


# -- the run ----------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    at_start = machine()
    workdir = make_workdir()
    server = redis_server_class()().start()
    workers = web = None
    try:
        app = make_app(f"{server.url}/0", f"{server.url}/1", PREFIX, {"task_default_queue": QUEUE})
        engine = wfcelery.install(app)
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
        baseline = None
        if args.baseline_seconds > 0:  # the same API load with no stream open: what the machine allows
            out = str(workdir / "api-baseline.json")
            alone = spawn.Process(
                target=api_process, args=(base, token, runs, args.rate, args.baseline_seconds, out)
            )
            alone.start()
            alone.join(args.baseline_seconds + 120)
            baseline = api_figures(json.loads(Path(out).read_text()), args.baseline_seconds)
            baseline["load_average_after"] = os.getloadavg()[0]
        stop = spawn.Event()
        procs, outs, readies = [], [], []
        per = math.ceil(len(followed) / args.follower_processes)
        connecting = time.monotonic()
        for k in range(args.follower_processes):
            out, ready = str(workdir / f"followers{k}.json"), spawn.Event()
            part = followed[k * per : (k + 1) * per]
            procs.append(
                spawn.Process(
                    target=followers_process, args=(base, token, part, ready, stop, out), daemon=True
                )
            )
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
        api.join(120)  # its last requests time out within REQUEST_TIMEOUT
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
        result["machine"] = at_start  # the load average and the commit as the run began
        result["followers"]["seconds_to_connect_all"] = round(connect_seconds, 1)
        result["api_without_streams"] = baseline
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
                "load_average": round(os.getloadavg()[0], 2),
            }
        )
        loads.append(os.getloadavg()[0])
        last_cpu, last_t = cpu, now
        if now - started > seconds + 180:
            break  # the API load still waits for answers: its requests time out by themselves
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
        "machine": {},
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
    parser.add_argument(
        "--baseline-seconds",
        type=float,
        default=float(os.environ.get("WEB_LOAD_BASELINE_SECONDS", 60)),
        help="first, the API load alone (no stream open) for this long: what the machine allows",
    )
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
