"""Chaos soak (`make chaos`): runs of random DAGs while the tracker's Redis restarts, runs out of memory,
hangs and fails over, and workers die, for a fixed time.

    python -m benchmarks.chaos [--runs 20] [--nodes 100] [--duration 120] [--broker redis|amqp] [--seed 1]
                               [--tracker auto|sentinel|single]

What it does: starts its own redis-servers (never the machine's): the tracker's -- behind a Redis Sentinel
(tests/sentinel.py: a master, a replica, a sentinel; ``--tracker auto``, the default, falls back to one
Redis when no sentinel can be started) or one Redis (``single``), with append-only files (fsync always: a
restart keeps what it acknowledged) -- and one for the Redis broker and the body counters, never
restarted; and ``--workers`` ``celery -A tests.proj worker`` subprocesses (prefork); submits ``--runs``
runs of one random DAG of ``--nodes`` ``proj.count`` nodes (each body counts itself in Redis and sleeps a
little) spread over ``--duration`` seconds; during those seconds, every 2-8 s at random, it restarts the
tracker's Redis (its master; down 0.5-4 s), fills it (maxmemory 1 with noeviction: every write refused
with OOM for 2-4 s), hangs it (SIGSTOP 2-4 s: behind Sentinel a hang over a second is also a failover),
fails it over (Sentinel only: the master SIGKILLed, the replica promoted, the old master started again as
a replica), SIGKILLs a whole worker (a fresh one replaces it), or SIGKILLs one pool child. A submit that
raises (the tracker is down at that moment) is tried again. Then it waits up to
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
from tests.sentinel import SentinelGroup  # noqa: E402
from wfcelery import NodeStatus, RunNotFound, RunStatus, Workflow  # noqa: E402

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


class SingleTracker:
    """The tracker on one Redis (append-only file): restarts keep what it acknowledged."""

    faults = ("redis", "oom", "hang")

    def __init__(self) -> None:
        self.server = FaultyRedis().start()
        self.url = self.server.url_db(1)
        self.conf: dict[str, Any] = {}

    def master(self) -> redis.Redis:
        return redis.Redis(port=self.server.port, socket_timeout=5)

    def restart(self, down_for: float, crash: bool) -> None:
        self.server.restart(down_for=down_for, crash=crash)

    def hang(self, seconds: float) -> None:
        with self.server.frozen():
            time.sleep(seconds)  # the fault lasts this long

    def failover(self) -> None:
        raise RuntimeError("no sentinel: no failover")

    def stop(self) -> None:
        self.server.stop()


#: The sentinel's down-after-milliseconds in the soak: longer than its hangs and restarts (4 s at most), so
#: those stay what they are -- a stalled or restarted master that keeps its data -- and only the failover
#: fault fails over. (A master stalled past it is failed over while clients still hold connections to it:
#: what it accepts when it wakes, before the sentinel demotes it, is lost. docs/reliability.md)
DOWN_AFTER_MS = 5000


class SentinelTracker:
    """The tracker behind a Redis Sentinel (append-only files): every fault hits the master of the moment."""

    faults = ("redis", "oom", "hang", "failover")

    def __init__(self) -> None:
        self.group = SentinelGroup(appendonly=True, down_after_ms=DOWN_AFTER_MS).start()
        self.url = self.group.url(1)
        self.conf = {"wfcelery_redis_transport_options": self.group.transport_options}

    def master(self) -> redis.Redis:
        return redis.Redis(port=self.group.master_port(), socket_timeout=5)

    def restart(self, down_for: float, crash: bool) -> None:
        self.group.restart(self.group.master_port(), down_for, crash)

    def hang(self, seconds: float) -> None:
        port = self.group.master_port()
        self.group.freeze(port)
        try:
            time.sleep(seconds)  # the fault lasts this long
        finally:
            self.group.thaw(port)

    def failover(self) -> None:
        old = self.group.kill_master()
        self.group.wait_failover(old)
        self.group.restart(old)  # back with its data, made a replica of the new master

    def stop(self) -> None:
        self.group.stop()


def start_tracker(kind: str) -> SingleTracker | SentinelTracker:
    if kind == "single":
        return SingleTracker()
    try:
        return SentinelTracker()
    except (OSError, RuntimeError) as e:
        if kind == "sentinel":
            raise
        print(f"chaos: no sentinel ({e}): the tracker is one Redis, no failover faults", file=sys.stderr)
        return SingleTracker()


def out_of_memory(tracker: SingleTracker | SentinelTracker, seconds: float) -> None:
    """maxmemory 1 with noeviction: every write is refused (OOM) for ``seconds``, then as before."""
    client = tracker.master()
    before = client.config_get("maxmemory*")
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1)
    try:
        time.sleep(seconds)  # the fault lasts this long
    finally:
        client.config_set("maxmemory", before.get("maxmemory", 0))
        client.config_set("maxmemory-policy", before.get("maxmemory-policy", "noeviction"))


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
    p.add_argument("--tracker", choices=["auto", "sentinel", "single"], default="auto")
    args = p.parse_args(argv)
    rng = random.Random(args.seed)

    server = start_tracker(args.tracker)  # the tracker's Redis: faults at random
    steady = RedisServer().start()  # the Redis broker and the body counters: never restarted
    uid = uuid.uuid4().hex[:8]
    prefix, queue = f"chaos{uid}", f"chaos{uid}"
    broker = f"{steady.url}/0" if args.broker == "redis" else AMQP_URL
    backend = f"{steady.url}/2"  # Celery's result backend (unused by node tasks)
    FAST_RECOVERY.update(server.conf, wfcelery_redis_url=server.url)
    FAST_RECOVERY["test_probe_url"] = f"{steady.url}/1"
    logdir = Path(tempfile.mkdtemp(prefix="wfcelery-chaos-"))  # worker logs, kept for a post-mortem
    app = make_app(broker, backend, prefix, queue, **FAST_RECOVERY)
    engine = app._wfcelery_engine
    probe = redis.Redis.from_url(f"{steady.url}/1", decode_responses=True)
    workers = [Worker(i, broker, backend, prefix, queue, logdir) for i in range(args.workers)]
    spawned = args.workers
    faults: Counter[str] = Counter()
    report: dict[str, Any] = {"args": vars(args), "logs": str(logdir), "tracker": type(server).__name__}
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
            action = rng.choice([*server.faults, "worker", "child", "child"])
            try:
                if action == "redis":
                    server.restart(down_for=rng.uniform(0.5, 4), crash=rng.random() < 0.5)
                elif action == "oom":
                    out_of_memory(server, rng.uniform(2, 4))
                elif action == "hang":
                    server.hang(rng.uniform(2, 4))
                elif action == "failover":
                    server.failover()
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
            except (OSError, RuntimeError, redis.RedisError) as e:
                faults[f"{action}_failed"] += 1
                print(f"chaos: {action} failed: {e}", file=sys.stderr)
        report["faults"] = dict(faults)
        report.update(settle(engine, probe, runs, prefix, args.settle))
    finally:
        for w in workers:
            w.stop()
        server.stop()
        steady.stop()
    report["ok"] = report.get("runs_completed") == report.get("runs") and report.get("nodes_lost") == 0
    out = ROOT / "benchmarks" / "results" / f"chaos-{args.broker}.json"
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


def read_states(runs: list[Any]) -> dict[str, Any]:
    """Each run's state; None for a run the tracker does not know (vanished: a loss)."""
    states: dict[str, Any] = {}
    for run in runs:
        try:
            states[run.id] = run.state()
        except RunNotFound:
            states[run.id] = None
    return states


def settle(engine: Any, probe: redis.Redis, runs: list[Any], prefix: str, settle: float) -> dict[str, Any]:
    deadline = time.monotonic() + settle
    started = time.monotonic()
    states: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            states = read_states(runs)
        except Exception as e:  # Redis still coming back
            print(f"chaos: reading state: {e}", file=sys.stderr)
            time.sleep(1)
            continue
        if all(s is not None and s.status.finished for s in states.values()):
            break
        time.sleep(1)
    known = [s for s in states.values() if s is not None]
    ended = [s for s in known if s.status.finished]
    stuck = {}  # the run records of what did not end, for a post-mortem
    for run_id, state in states.items():
        if state is None or not state.status.finished:
            raw = engine.tracker.client.hgetall(engine.tracker.keys.run(run_id))
            stuck[run_id] = {k: v for k, v in raw.items() if not k.startswith(("w:", "l:"))}
    runs_twice = 0
    for run in runs:
        counts = probe.hgetall(f"{prefix}:count:{run.id}")  # written to the probe Redis (never restarted)
        runs_twice += sum(1 for v in counts.values() if int(v) > 1)
    unfinished = Counter(
        n.status.value for s in known for n in s.nodes.values() if n.status is not NodeStatus.SUCCEEDED
    )
    return {
        "settle_seconds": round(time.monotonic() - started, 1),
        "runs": len(runs),
        "runs_completed": sum(1 for s in ended if s.status is RunStatus.SUCCEEDED),
        "runs_stuck": len(known) - len(ended),
        "runs_vanished": len(states) - len(known),
        "nodes_lost": sum(unfinished.values()),
        "bodies_run_twice": runs_twice,
        "unfinished_nodes": dict(unfinished),
        "stuck_records": stuck,
    }


if __name__ == "__main__":
    sys.exit(main())
