"""The full redis.workflow scale, for real: ``make bench-scale`` (``python -m benchmarks.scale``).

Runs ``--runs`` (default ``BENCH_SCALE_RUNS``, else 100,000) runs of the 10-node small workflow
(``a -> 8 parallel -> c``: 1,000,000 no-op tasks at the default) through real ``celery worker``
subprocesses, with at most ``--window`` runs in flight (the submitter tops the window up as runs finish, so
the run is in a steady state from the first tenth to the last), and reports:

* lost / duplicated nodes, verified from the tracker after the run (not from counters): every run
  SUCCEEDED, every node SUCCEEDED at epoch 0 after exactly one attempt, and each node's event log shows
  exactly one start and one success;
* peak ``used_memory`` of the tracker's Redis (its own server: nothing else lives there), sampled every
  0.5 s, and what is left per run at the end;
* throughput per tenth (time for each successive 10% of the runs to finish) and last tenth / first tenth;
* worker RSS (main + pool processes) per tenth;
* pub/sub channels, patterns and clients of the tracker Redis (and the Redis broker) per tenth;
* CPU per task of the workers, the tracker Redis, the broker (Redis server, or RabbitMQ's ``beam.smp``
  when it is a local process: shared with anything else on that RabbitMQ) and this process.

``--broker redis`` (default) starts a second throwaway ``redis-server`` as broker (its CPU and memory apart
from the tracker's); ``--broker amqp`` uses the RabbitMQ at ``--amqp-url`` in a vhost of its own
(``rabbitmqctl add_vhost``, deleted after) or, when that is not possible, the given vhost with a queue of its
own (deleted after). Both brokers can be given (``--broker redis --broker amqp``): each runs in turn with the
same settings, and the report puts them side by side. ``--tracker-cluster 3`` puts the tracker on a Redis
Cluster of 3 masters it creates on loopback (``wfcelery_redis_cluster``; memory, CPU and pub/sub summed over
the masters; Celery's result backend stays on a plain Redis of its own). Results:
``benchmarks/results/<date>-scale.{json,md}`` (``--out``; a progress file ``<date>-scale.partial.json`` is
rewritten after every tenth).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import redis
import redis.cluster
from celery._state import _set_task_join_will_block

import wfcelery
from wfcelery._redis_server import ClusterServer as Cluster
from wfcelery.tracker.keys import Keys
from wfcelery.tracker.records import Event, NodeRecord

from .environment import RESULTS_DIR, AmqpBroker, RedisBroker, machine, pubsub_counts, redis_cpu
from .harness import Workers, WorkerSettings, make_workdir, process_cpu, redis_server_class
from .scenarios import SMALL_TASKS, small_workflow
from .tasks import PREFIX, make_app

GB = 1_000_000_000
DEFAULT_RUNS = 100_000
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
#: Set by SIGTERM / SIGINT: stop submitting, let the runs in flight finish, report.
STOP = False

#: Seconds without a single run finishing (with runs in flight) before the benchmark gives up.
STALL_S = 120.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--runs",
        type=int,
        default=int(os.environ.get("BENCH_SCALE_RUNS") or DEFAULT_RUNS),
        help=f"runs of 10 no-op nodes (default $BENCH_SCALE_RUNS, else {DEFAULT_RUNS:,})",
    )
    p.add_argument("--broker", action="append", choices=("redis", "amqp"), help="repeatable; default redis")
    p.add_argument("--amqp-url", default=AMQP_URL)
    p.add_argument("--window", type=int, default=1000, help="runs in flight at most (default 1,000)")
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop submitting after this long, let the runs in flight finish and report what ran (also on "
        "SIGTERM / SIGINT)",
    )
    p.add_argument(
        "--tracker-cluster",
        type=int,
        default=0,
        metavar="MASTERS",
        help="the tracker on a Redis Cluster of this many masters it creates (default 0: one redis-server)",
    )
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--workers", type=int, default=1, help="worker processes (each with --concurrency)")
    p.add_argument("--no-verify", action="store_true", help="skip the per-node check from the tracker")
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    p.add_argument("--tag", default="scale", help="file name suffix: <date>-<tag>.{json,md}")
    p.add_argument("--render", type=Path, metavar="JSON", help="only rewrite the markdown of a result file")
    return p.parse_args(argv)


# -- meters ------------------------------------------------------------------------------------------------


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with suppress(OSError), open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
    return total


class TrackerView:
    """The tracker's Redis as this benchmark reads it: ``client`` for its keys (a ``RedisCluster`` on a
    cluster), ``servers`` for what is measured per server (memory, CPU, pub/sub: summed over the masters)."""

    def __init__(self, client: Any, servers: list[redis.Redis], description: str) -> None:
        self.client = client
        self.servers = servers
        self.description = description

    def used_memory(self) -> int:
        return sum(int(s.info("memory")["used_memory"]) for s in self.servers)

    def cpu(self) -> float:
        return sum(redis_cpu(s) for s in self.servers)

    def pubsub(self) -> dict[str, int]:
        counts = [pubsub_counts(s) for s in self.servers]
        return {k: sum(c[k] for c in counts) for k in counts[0]}

    def flush(self) -> None:
        for server in self.servers:
            server.flushdb()


# -- one broker --------------------------------------------------------------------------------------------


@contextmanager
def environment(broker: Any, args: argparse.Namespace, queue: str) -> Iterator[dict[str, Any]]:
    """A tracker Redis of its own (one server, or a cluster), the app and the workers on ``broker``."""
    tracker_server = redis_server_class()().start()  # the tracker, or only Celery's result backend
    cluster = Cluster(args.tracker_cluster).start() if args.tracker_cluster else None
    workdir = make_workdir()
    workers: Workers | None = None
    try:
        tracker_url = f"{tracker_server.url}/0"
        conf: dict[str, Any] = {"task_default_queue": queue}
        if cluster is not None:
            conf |= {"wfcelery_redis_cluster": True, "wfcelery_redis_url": cluster.url}
            view = TrackerView(
                redis.cluster.RedisCluster.from_url(cluster.url, decode_responses=True),
                cluster.nodes(),
                f"Redis Cluster, {args.tracker_cluster} masters (loopback, no replicas)",
            )
        else:
            tracker = redis.Redis.from_url(tracker_url, decode_responses=True)
            view = TrackerView(tracker, [tracker], "one redis-server")
        app = make_app(broker.url, tracker_url, conf=conf)
        _set_task_join_will_block(True)
        settings = WorkerSettings("prefork", args.concurrency, args.workers)
        workers = Workers(settings, broker.url, tracker_url, PREFIX, queue, workdir, conf=conf)
        workers.start(app)  # assigned first: workers that started before a failure are stopped below
        yield {
            "app": app,
            "workers": workers,
            "tracker": view,
            "settings": settings.describe(app),
            "workdir": workdir,
        }
    finally:
        if workers is not None:
            workers.stop()
        tracker_server.stop()
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def run_scale(broker: Any, args: argparse.Namespace, progress: Any) -> dict[str, Any]:
    queue = f"wfbench-scale-{uuid.uuid4().hex[:8]}"
    runs = args.runs
    with environment(broker, args, queue) as env:
        app, workers, view = env["app"], env["workers"], env["tracker"]
        r = view.client
        engine = wfcelery.install(app)
        keys = engine.tracker.keys
        wf = small_workflow()
        warm = engine.submit(wf)  # warm up: plan cached, worker consumers listed, connections open
        deadline = time.monotonic() + 120
        while r.hget(keys.run(warm.id), "status") != "SUCCEEDED" and time.monotonic() < deadline:
            time.sleep(0.1)
        view.flush()
        base_memory = view.used_memory()
        peak = base_memory
        ids: list[str] = []
        step = max(1, runs // 100)  # a snapshot every 1% of the runs: tenths of whatever ran
        marks: list[dict[str, Any]] = []
        done = 0  # runs finished, oldest first (the poller's prefix)
        failures: list[str] = []
        t0 = time.monotonic()
        cpu0 = {
            "workers": process_cpu(workers.pids()),
            "tracker": view.cpu(),
            "broker": broker.cpu(),
            "client": time.process_time(),
        }

        def snapshot(label: str) -> dict[str, Any]:
            now = time.monotonic()
            mark = {
                "label": label,
                "runs_done": done,
                "t_s": round(now - t0, 2),
                "worker_rss_bytes": rss_bytes(workers.pids()),
                "cpu_s": {
                    "workers": process_cpu(workers.pids()),
                    "tracker": view.cpu(),
                    "broker": broker.cpu(),
                    "client": time.process_time(),
                },
                "tracker_used_memory": view.used_memory(),
                "tracker_pubsub": view.pubsub(),
                "broker": broker.state(),
                "load_average": list(os.getloadavg()),
            }
            return mark

        marks.append(snapshot("start"))
        last_progress, next_sample = time.monotonic(), 0.0
        # Poll the oldest unfinished run first, in growing batches (as harness.Waiter): one HGET while it
        # runs, more only once it finished -- polling must not be a visible share of the tracker's CPU.
        batch = 1
        stop_at = t0 + args.max_minutes * 60 if args.max_minutes else float("inf")
        while done < len(ids) or (len(ids) < runs and not STOP and time.monotonic() < stop_at):
            # top the window up
            while (
                len(ids) < runs and len(ids) - done < args.window and not STOP and time.monotonic() < stop_at
            ):
                ids.append(engine.submit(wf).id)
                if len(ids) % 200 == 0:
                    break
            now = time.monotonic()
            if now >= next_sample:
                peak = max(peak, view.used_memory())
                next_sample = now + 0.5
            # advance the finished prefix
            advanced = 0
            while done < len(ids):
                chunk = ids[done : done + batch]
                pipe = r.pipeline(transaction=False)
                for run_id in chunk:
                    pipe.hget(keys.run(run_id), "status")
                statuses = pipe.execute()
                lead = 0
                for run_id, status in zip(chunk, statuses, strict=True):
                    if status not in ("SUCCEEDED", "FAILED", "CANCELLED"):
                        break
                    if status != "SUCCEEDED":
                        failures.append(f"{run_id}: {status}")
                    lead += 1
                    done += 1
                    if done % step == 0:
                        marks.append(snapshot(f"mark {done // step}"))
                        progress(marks)
                advanced += lead
                if lead < len(chunk):
                    batch = 1
                    break
                batch = min(batch * 4, 500)
            if advanced:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > STALL_S:
                failures.append(f"stalled: {runs - done} runs unfinished, none finished for {STALL_S:.0f} s")
                break
            if len(ids) >= runs or len(ids) - done >= args.window or STOP or time.monotonic() >= stop_at:
                time.sleep(0.05)
        elapsed = time.monotonic() - t0
        stopped_early = done < runs
        peak = max(peak, view.used_memory())
        cpu1 = {
            "workers": process_cpu(workers.pids()),
            "tracker": view.cpu(),
            "broker": broker.cpu(),
            "client": time.process_time(),
        }
        end = snapshot("end")
        tasks_done = done * SMALL_TASKS
        out: dict[str, Any] = {
            "broker": broker.name,
            "broker_description": broker.describe(),
            "tracker": view.description,
            "settings": env["settings"],
            "runs": runs,
            "tasks": runs * SMALL_TASKS,
            "window": args.window,
            "runs_finished": done,
            "stopped_early": (
                f"stopped submitting after {len(ids):,} of {runs:,} runs "
                f"({'signal' if STOP else f'--max-minutes {args.max_minutes}'}); the runs in flight finished"
                if stopped_early
                else None
            ),
            "elapsed_s": round(elapsed, 1),
            "tasks_per_s": round(tasks_done / elapsed, 1) if elapsed else None,
            "cpu_ms_per_task": {k: round((cpu1[k] - cpu0[k]) * 1000 / max(tasks_done, 1), 4) for k in cpu0},
            "tracker_peak_used_memory": peak,
            "tracker_peak_above_start": peak - base_memory,
            "tracker_used_memory_end": end["tracker_used_memory"],
            "tracker_bytes_per_run_end": round((end["tracker_used_memory"] - base_memory) / max(done, 1), 1),
            "tracker_peak_projected_to_runs": int(base_memory + (peak - base_memory) * runs / max(done, 1)),
            "marks": [*marks, end],
            "failures": failures[:20],
            "failed_runs": len(failures),
        }
        out["tenths"] = tenths(marks)
        if out["tenths"]:
            first, last = out["tenths"][0]["tasks_per_s"], out["tenths"][-1]["tasks_per_s"]
            out["last_over_first_tenth"] = round(last / first, 3) if first else None
        rss = [m["worker_rss_bytes"] for m in out["marks"]]
        out["worker_rss_growth_bytes"] = rss[-1] - rss[1] if len(rss) > 2 else None
        if not args.no_verify:
            started = time.monotonic()
            out["verify"] = verify(r, keys, ids, len(wf))
            out["verify"]["seconds"] = round(time.monotonic() - started, 1)
        if broker.name == "amqp":
            with suppress(Exception), app.connection_for_write() as conn:
                conn.default_channel.queue_delete(queue)
        return out


def tenths(marks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ten equal slices of the runs that finished (from the 1% snapshots): time, rate, CPU, memory each."""
    start = next(m for m in marks if m["label"] == "start")
    points = [m for m in marks if m["label"].startswith("mark")]
    if len(points) >= 10:
        points = [points[round(k * len(points) / 10) - 1] for k in range(1, 11)]
    rows, prev = [], start
    for number, m in enumerate(points, 1):
        dt_s = m["t_s"] - prev["t_s"]
        runs = m["runs_done"] - prev["runs_done"]
        tasks = max(runs * SMALL_TASKS, 1)
        cpu = {k: round((m["cpu_s"][k] - prev["cpu_s"][k]) * 1000 / tasks, 3) for k in m["cpu_s"]}
        rows.append(
            {
                "tenth": number,
                "runs": f"{prev['runs_done']:,}-{m['runs_done']:,}",
                "seconds": round(dt_s, 1),
                "tasks_per_s": round(runs * SMALL_TASKS / dt_s, 1) if dt_s > 0 else None,
                "worker_rss_mb": round(m["worker_rss_bytes"] / 1e6, 1),
                "tracker_used_memory_mb": round(m["tracker_used_memory"] / 1e6, 1),
                "tracker_pubsub": m["tracker_pubsub"],
                "load_average_1m": round(m["load_average"][0], 2),
                "cpu_ms_per_task": cpu,
            }
        )
        prev = m
    return rows


def verify(r: redis.Redis, keys: Keys, ids: list[str], nodes: int) -> dict[str, Any]:
    """From the tracker, for every run: SUCCEEDED; every node S at epoch 0 after one attempt; its event log
    has exactly one R and one S per node. Counts what breaks each rule."""
    bad_status = lost = duplicated = wrong_record = 0
    examples: list[str] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        pipe = r.pipeline(transaction=False)
        for run_id in chunk:
            pipe.hget(keys.run(run_id), "status")
            pipe.hgetall(keys.nodes(run_id))
            pipe.get(keys.events(run_id))
        replies = pipe.execute()
        for i, run_id in enumerate(chunk):
            status, node_map, log = replies[3 * i : 3 * i + 3]
            if status != "SUCCEEDED":
                bad_status += 1
                examples.append(f"{run_id}: status {status}")
            starts: dict[Any, int] = {}
            successes: dict[Any, int] = {}
            for line in (log or "").splitlines():
                ev = Event.parse(line)
                if ev.node is None:
                    continue
                if ev.status == "R":
                    starts[ev.node] = starts.get(ev.node, 0) + 1
                elif ev.status == "S":
                    successes[ev.node] = successes.get(ev.node, 0) + 1
            for n in range(nodes):
                rec = NodeRecord.decode(node_map.get(str(n)))
                s, ok = starts.get(n, 0), successes.get(n, 0)
                if s == 0 or ok == 0:
                    lost += 1
                    examples.append(f"{run_id} node {n}: {s} starts, {ok} successes")
                elif s > 1 or ok > 1:
                    duplicated += 1
                    examples.append(f"{run_id} node {n}: {s} starts, {ok} successes")
                if (rec.code, rec.epoch, rec.attempts) != ("S", 0, 1):
                    wrong_record += 1
                    examples.append(f"{run_id} node {n}: record {node_map.get(str(n))!r}")
    return {
        "runs_checked": len(ids),
        "nodes_checked": len(ids) * nodes,
        "runs_not_succeeded": bad_status,
        "lost_nodes": lost,
        "duplicated_nodes": duplicated,
        "node_records_not_succeeded_once": wrong_record,
        "ok": not (bad_status or lost or duplicated or wrong_record),
        "examples": examples[:10],
    }


# -- report ------------------------------------------------------------------------------------------------


def markdown(out: dict[str, Any]) -> str:
    m = out["machine"]
    lines = [
        f"# wfcelery scale benchmark: {out['date']}",
        "",
        (
            f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), load average at start "
            f"{', '.join(f'{x:.2f}' for x in m['load_average_at_start'])} (the machine is shared with "
            f"other work: the load averages per tenth are in the table); Python {m['python']}, Celery "
            f"{m['celery']}, kombu {m['kombu']}, redis-py {m['redis_py']}, redis-server "
            f"{m.get('redis_server_binary') or 'unknown'}; wfcelery at "
            f"{m.get('wfcelery_commit') or 'unknown commit'}."
        ),
        "",
        f"Command: `{out['command']}`",
        "",
    ]
    rows = []
    for b in out["brokers"]:
        v = b.get("verify", {})
        rows.append(
            [
                f"{b['broker']}, tracker: {b.get('tracker', 'one redis-server')}",
                f"{b['runs']:,} runs / {b['tasks']:,} tasks",
                f"{b['runs_finished']:,}",
                f"{b['elapsed_s']:,.0f} s",
                f"{b['tasks_per_s']:,.0f}" if b["tasks_per_s"] else "-",
                f"{b.get('last_over_first_tenth') or 0:.2f}x (CPU/task {_cpu_ratio(b)})",
                f"{b['tracker_peak_used_memory'] / GB:.3f} GB",
                f"{b['tracker_bytes_per_run_end']:,.0f}",
                f"{(b['worker_rss_growth_bytes'] or 0) / 1e6:+.1f} MB",
                "yes" if v.get("ok") else ("not checked" if not v else "**NO**"),
                f"{v.get('lost_nodes', '-')} / {v.get('duplicated_nodes', '-')}",
            ]
        )
    lines += _table(
        [
            "broker, tracker",
            "size",
            "runs finished",
            "time",
            "tasks/s",
            "last / first tenth tasks/s (first / last CPU per task)",
            "tracker Redis peak",
            "tracker B/run at end",
            "worker RSS growth (first 1% -> end)",
            "every run SUCCEEDED, every node ran once",
            "lost / duplicated nodes",
        ],
        rows,
    )
    for b in out["brokers"]:
        if b.get("stopped_early"):
            lines += [
                "",
                (
                    f"**{b['broker']}: {b['stopped_early']}** -- {b['runs_finished']:,} runs "
                    f"({b['runs_finished'] * 10:,} tasks) ran and were verified. Tracker peak projected "
                    f"linearly to {b['runs']:,} runs: {b['tracker_peak_projected_to_runs'] / GB:.3f} GB."
                ),
            ]
    lines += [
        "",
        "Targets: 0 lost or duplicated nodes; tracker Redis peak <= 0.2 GB; last tenth "
        ">= 0.9x the first; no growth of pub/sub channels or clients per run.",
        "",
    ]
    for b in out["brokers"]:
        cpu = b["cpu_ms_per_task"]
        lines += [
            f"## {b['broker']} broker ({b['broker_description']})",
            "",
            (
                f"CPU per task (ms): workers {cpu['workers']}, tracker Redis {cpu['tracker']}, broker "
                f"{cpu['broker']}, submitting client {cpu['client']}."
            ),
            "",
        ]
        trows = [
            [
                t["tenth"],
                t["runs"],
                t["seconds"],
                _n(t["tasks_per_s"]),
                t["worker_rss_mb"],
                t["tracker_used_memory_mb"],
                t["tracker_pubsub"]["channels"],
                t["tracker_pubsub"]["patterns"],
                t["tracker_pubsub"]["clients"],
                t["load_average_1m"],
                t["cpu_ms_per_task"]["workers"],
                t["cpu_ms_per_task"]["tracker"],
            ]
            for t in b["tenths"]
        ]
        lines += _table(
            [
                "tenth",
                "runs",
                "seconds",
                "tasks/s",
                "worker RSS MB",
                "tracker used_memory MB",
                "pub/sub channels",
                "patterns",
                "clients",
                "load avg 1m",
                "worker CPU ms/task",
                "tracker Redis CPU ms/task",
            ],
            trows,
        )
        if b["runs_finished"] < 50 * b["window"]:
            lines += [
                "",
                (
                    f"A tenth here is {b['runs_finished'] // 10:,} runs against a window of {b['window']:,} "
                    "runs in flight: runs finish in waves (the queue is FIFO, the poller counts the oldest "
                    "finished runs), so the per-tenth rows swing; the whole-run figures above are the "
                    "measurement. Tenths are meaningful at full size (10,000 runs each)."
                ),
            ]
        start, end = b["marks"][0], b["marks"][-1]
        lines += [
            "",
            (
                f"Tracker Redis pub/sub at the start / end: channels {start['tracker_pubsub']['channels']} / "
                f"{end['tracker_pubsub']['channels']}, patterns {start['tracker_pubsub']['patterns']} / "
                f"{end['tracker_pubsub']['patterns']}, clients {start['tracker_pubsub']['clients']} / "
                f"{end['tracker_pubsub']['clients']}."
                + (
                    f" Redis broker: channels {start['broker'].get('channels')} / "
                    f"{end['broker'].get('channels')}, clients {start['broker'].get('clients')} / "
                    f"{end['broker'].get('clients')}, used_memory at the end "
                    f"{end['broker'].get('used_memory', 0) / 1e6:.1f} MB."
                    if end["broker"]
                    else ""
                )
            ),
        ]
        v = b.get("verify")
        if v:
            lines += [
                "",
                (
                    f"Verified from the tracker in {v['seconds']} s: {v['runs_checked']:,} runs, "
                    f"{v['nodes_checked']:,} nodes; runs not SUCCEEDED {v['runs_not_succeeded']}, lost nodes "
                    f"{v['lost_nodes']}, duplicated nodes {v['duplicated_nodes']}, node records other than "
                    f"succeeded-once {v['node_records_not_succeeded_once']}."
                ),
            ]
            if v["examples"]:
                lines += ["", "Examples: " + "; ".join(v["examples"])]
        if b["failures"]:
            lines += ["", "Failures: " + "; ".join(b["failures"])]
        lines += [""]
    lines += [f"Total time {out.get('duration_s', '?')} s.", ""]
    return "\n".join(lines)


def _cpu_ratio(b: dict[str, Any]) -> str:
    """First tenth's CPU per task (workers + tracker Redis) over the last's: >= 1 means no degradation.
    Steadier than the wall-clock ratio on a machine whose other load changes during the run."""
    t = b.get("tenths") or []
    if len(t) < 2:
        return "-"

    def cpu(row: dict[str, Any]) -> float:
        return float(row["cpu_ms_per_task"]["workers"] + row["cpu_ms_per_task"]["tracker"])

    first, last = cpu(t[0]), cpu(t[-1])
    return f"{first / last:.2f}x" if last else "-"


def _n(value: Any) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _stop(signum: int, frame: Any) -> None:
    global STOP
    if STOP:  # a second signal: give up at once
        raise KeyboardInterrupt
    STOP = True
    print("stopping: no more submits; waiting for the runs in flight (signal again to abort)", flush=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if args.render:
        data: dict[str, Any] = json.loads(args.render.read_text())
        args.render.with_suffix(".md").write_text(markdown(data))
        return data
    started = time.monotonic()
    out: dict[str, Any] = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "command": "python -m benchmarks.scale " + " ".join(argv if argv is not None else sys.argv[1:]),
        "brokers": [],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{dt.date.today().isoformat()}-{args.tag}"
    partial = args.out / f"{stem}.partial.json"

    def progress(marks: list[dict[str, Any]]) -> None:
        m = marks[-1]
        print(
            f"[{time.monotonic() - started:7.1f}s] {m['label']}: {m['runs_done']:,} runs done, tracker "
            f"{m['tracker_used_memory'] / 1e6:.1f} MB, worker RSS {m['worker_rss_bytes'] / 1e6:.1f} MB, "
            f"load {m['load_average'][0]:.2f}",
            flush=True,
        )
        partial.write_text(json.dumps({**out, "in_progress_marks": marks}, indent=2, default=str) + "\n")

    for name in args.broker or ["redis"]:
        print(f"scale: {args.runs:,} runs of {SMALL_TASKS} no-op nodes on the {name} broker", flush=True)
        broker = RedisBroker() if name == "redis" else AmqpBroker(args.amqp_url)
        with broker:
            result = run_scale(broker, args, progress)
        out["brokers"].append(result)
        print(
            f"  {name}: {result['tasks_per_s']} tasks/s, verify {result.get('verify', {}).get('ok')}, "
            f"tracker peak {result['tracker_peak_used_memory'] / 1e6:.1f} MB",
            flush=True,
        )
    out["duration_s"] = round(time.monotonic() - started, 1)
    (args.out / f"{stem}.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    text = markdown(out)
    (args.out / f"{stem}.md").write_text(text)
    partial.unlink(missing_ok=True)
    print(text)
    print(f"wrote {args.out / (stem + '.json')}, {args.out / (stem + '.md')}")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
