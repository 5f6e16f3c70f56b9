"""Chaos soak (`make chaos`): runs of random DAGs while Redis restarts and workers die, for a fixed time.

    python -m benchmarks.chaos [--runs 20] [--nodes 100] [--duration 120] [--broker redis|amqp] [--seed 1]

What it does: starts its own redis-servers (never the machine's): the tracker's (append-only file, fsync
always: a restart keeps what it acknowledged), restarted at random, and one for the Redis broker and the
body counters, never restarted; and ``--workers`` ``celery -A tests.proj worker`` subprocesses
(prefork); submits ``--runs`` runs of one random DAG of ``--nodes`` ``proj.count`` nodes (each body counts
itself in Redis and sleeps a little) spread over ``--duration`` seconds; during those seconds, every 2-8 s
at random, restarts Redis (down 0.5-4 s), SIGKILLs a whole worker (a fresh one replaces it), or SIGKILLs
one pool child. Then it waits up to
``--settle`` seconds for every run to end and reports, as JSON (also written to
benchmarks/results/chaos-<broker>.json):

  runs_completed     runs that ended SUCCEEDED (every node body succeeds: anything else is a loss)
  runs_stuck         runs not ended after the settle time (must be 0)
  nodes_lost         nodes of all runs that did not end SUCCEEDED (must be 0)
  bodies_run_twice   node bodies that ran more than once; a body killed mid-way is run again by design,
                     so this is compared with ``kills`` (pool children and workers killed while busy)

Not part of `make test` (it takes minutes); the docs' Reliability page quotes its figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.proj import make_app  # noqa: E402
from tests.redis_server import FaultyRedis, RedisServer  # noqa: E402
from wfcelery import RunStatus, Workflow  # noqa: E402

AMQP_URL = os.environ.get("WFCELERY_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
#: Worker settings that let the soak finish in minutes: a killed worker's messages come back in seconds.
FAST_RECOVERY = {
    "wfcelery_heartbeat": 2,
    "wfcelery_sweep_interval": 2,
    "wfcelery_report_retry": 2,
    "wfcelery_gate_wait": 2,
    "wfcelery_redis_timeout": 3,
    "wfcelery_queued_timeout": 30,
    "wfcelery_outbox_dir": tempfile.mkdtemp(prefix="wfcelery-chaos-outbox-"),
}


def random_dag(nodes: int, rng: random.Random, sleep: float) -> Workflow:
    wf = Workflow("chaos")
    for i in range(nodes):
        parents = sorted(rng.sample(range(i), k=min(i, rng.choice([0, 1, 1, 2, 3])))) if i else []
        wf.add(f"n{i}", "proj.count", kwargs={"sleep": round(rng.uniform(0, sleep), 3)}, immutable=True)
        wf[f"n{i}"].after.extend(f"n{p}" for p in parents)
    return wf


class Worker:
    def __init__(self, n: int, broker: str, backend: str, prefix: str, queue: str, logdir: Path) -> None:
        self.n = n
        self.hostname = f"chaos{n}-{os.getpid()}@{socket.gethostname()}"
        env = {
            **os.environ,
            "WFCELERY_TEST_BROKER": broker,
            "WFCELERY_TEST_BACKEND": backend,
            "WFCELERY_TEST_PREFIX": prefix,
            "WFCELERY_TEST_QUEUE": queue,
            "WFCELERY_TEST_CONF": json.dumps(FAST_RECOVERY),
            "PYTHONPATH": str(ROOT),
        }
        cmd = [sys.executable, "-m", "celery", "-A", "tests.proj", "worker", "-Q", queue, "-n", self.hostname]
        cmd += ["-P", "prefork", "-c", "4", "--loglevel", "WARNING", "--without-mingle", "--without-gossip"]
        self.log = open(logdir / f"worker{n}.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)

    def children(self) -> list[int]:
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--nodes", type=int, default=100)
    p.add_argument("--duration", type=float, default=120.0, help="seconds of faults")
    p.add_argument("--settle", type=float, default=180.0, help="seconds allowed to finish after the faults")
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--broker", choices=["redis", "amqp"], default="redis")
    p.add_argument("--sleep", type=float, default=0.3, help="longest node body, seconds")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    rng = random.Random(args.seed)

    server = FaultyRedis().start()  # the tracker's Redis: restarted at random
    steady = RedisServer().start()  # the Redis broker and the body counters: never restarted
    uid = uuid.uuid4().hex[:8]
    prefix, queue = f"chaos{uid}", f"chaos{uid}"
    broker = f"{steady.url}/0" if args.broker == "redis" else AMQP_URL
    backend = server.url_db(1)
    FAST_RECOVERY["test_probe_url"] = f"{steady.url}/1"
    logdir = Path(tempfile.mkdtemp(prefix="wfcelery-chaos-"))  # worker logs, kept for a post-mortem
    app = make_app(broker, backend, prefix, queue, **FAST_RECOVERY)
    engine = app._wfcelery_engine
    probe = redis.Redis.from_url(f"{steady.url}/1", decode_responses=True)
    workers = [Worker(i, broker, backend, prefix, queue, logdir) for i in range(args.workers)]
    spawned = args.workers
    faults: Counter[str] = Counter()
    report: dict[str, Any] = {"args": vars(args), "logs": str(logdir)}
    try:
        wf = random_dag(args.nodes, rng, args.sleep)
        runs: list[Any] = []
        started = time.monotonic()
        next_fault = started + rng.uniform(2, 8)
        while time.monotonic() - started < args.duration or len(runs) < args.runs:
            # runs are submitted across the fault window, so faults always meet work in flight
            if len(runs) < args.runs and time.monotonic() - started >= len(runs) * args.duration / args.runs:
                try:
                    runs.append(engine.submit(wf))
                except Exception as e:  # Redis is down right now: submit fails cleanly, try again
                    print(f"chaos: submit failed ({e}); retrying", file=sys.stderr)
            time.sleep(0.2)
            if time.monotonic() < next_fault or time.monotonic() - started >= args.duration:
                continue
            next_fault = time.monotonic() + rng.uniform(2, 8)
            action = rng.choice(["redis", "worker", "child", "child"])
            try:
                if action == "redis":
                    server.restart(down_for=rng.uniform(0.5, 4), crash=rng.random() < 0.5)
                elif action == "worker":
                    victim = workers.pop(rng.randrange(len(workers)))
                    victim.kill()
                    victim.log.close()
                    # restarted under the same name (as systemd or Kubernetes would): it replays the outbox
                    workers.append(Worker(victim.n, broker, backend, prefix, queue, logdir))
                    spawned += 1
                else:
                    children = [c for w in workers for c in w.children()]
                    if not children:
                        continue
                    os.kill(rng.choice(children), signal.SIGKILL)
                faults[action] += 1
            except (OSError, RuntimeError) as e:
                faults[f"{action}_failed"] += 1
                print(f"chaos: {action} failed: {e}", file=sys.stderr)
        report["faults"] = dict(faults)
        report.update(settle(engine, probe, runs, prefix, args.settle))
    finally:
        for w in workers:
            w.stop()
        server.stop()
        steady.stop()
    report["ok"] = report.get("runs_stuck") == 0 and report.get("nodes_lost") == 0
    out = ROOT / "benchmarks" / "results" / f"chaos-{args.broker}.json"
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


def settle(engine: Any, probe: redis.Redis, runs: list[Any], prefix: str, settle: float) -> dict[str, Any]:
    deadline = time.monotonic() + settle
    started = time.monotonic()
    states: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            states = {run.id: run.state() for run in runs}
        except Exception as e:  # Redis still coming back
            print(f"chaos: reading state: {e}", file=sys.stderr)
            time.sleep(1)
            continue
        if all(s.status.finished for s in states.values()):
            break
        time.sleep(1)
    ended = [s for s in states.values() if s.status.finished]
    runs_twice = 0
    for run in runs:
        counts = probe.hgetall(f"{prefix}:count:{run.id}")  # written to the probe Redis (never restarted)
        runs_twice += sum(1 for v in counts.values() if int(v) > 1)
    return {
        "settle_seconds": round(time.monotonic() - started, 1),
        "runs": len(runs),
        "runs_completed": sum(1 for s in ended if s.status is RunStatus.SUCCEEDED),
        "runs_stuck": len(runs) - len(ended),
        "nodes_lost": sum(
            1 for s in states.values() for n in s.nodes.values() if n.status.value != "SUCCEEDED"
        ),
        "bodies_run_twice": runs_twice,
        "unfinished_nodes": dict(
            Counter(
                n.status.value
                for s in states.values()
                for n in s.nodes.values()
                if n.status.value != "SUCCEEDED"
            )
        ),
    }


if __name__ == "__main__":
    sys.exit(main())
