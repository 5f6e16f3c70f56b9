"""The benchmark's machinery: a throwaway Redis, worker subprocesses, completion polling, CPU and memory
meters, and an optional py-spy profiler. Nothing here knows about a particular scenario.

Layout of the benchmark Redis (one server, started on a free port, never the machine's 6379):
  db 0  broker (queues, unacked, bindings)
  db 1  result backend and wfcelery tracker -- flushed between scenarios, so memory can be attributed
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from celery.states import READY_STATES

import wfcelery

ROOT = Path(__file__).resolve().parent.parent

#: Seconds between completion polls while the head of the pending list is not finished.
POLL_INTERVAL = 0.02
#: Seconds between Redis memory samples while waiting (peak memory during a run).
MEMORY_SAMPLE_INTERVAL = 0.5
#: A side is abandoned when the workers used less than STALL_CPU seconds of CPU in STALL_SECONDS while
#: work was still pending (a lost message or a failing hook: the run would never finish).
STALL_SECONDS, STALL_CPU = 15.0, 0.1


class Stalled(RuntimeError):
    """Nothing moved for STALL_SECONDS: the workers are idle but not everything finished."""


def redis_server_class() -> Any:
    try:
        from wfcelery._redis_server import RedisServer
    except ImportError:  # older tree: the tests' copy
        sys.path.insert(0, str(ROOT))
        from tests.redis_server import RedisServer
    return RedisServer


# -- workers ---------------------------------------------------------------------------------------------


@dataclass
class WorkerSettings:
    pool: str = "prefork"
    concurrency: int = 2
    workers: int = 1

    def describe(self, app: Celery) -> dict[str, Any]:
        conf = app.conf
        wf = wfcelery.install(app).settings  # as the engine resolved them: app.conf, else wfcelery's defaults
        return {
            "pool": self.pool,
            "concurrency": self.concurrency,
            "worker_processes": self.workers,
            "acks_late": conf.task_acks_late,
            "prefetch_multiplier": conf.worker_prefetch_multiplier,
            "task_track_started": conf.task_track_started,
            "task_send_sent_event": conf.task_send_sent_event,
            "worker_send_task_events": conf.worker_send_task_events,
            "result_expires_s": _seconds(conf.result_expires),
            "serializer": conf.task_serializer,
            "wfcelery_celery_results": wf.celery_results,
            "wfcelery_inline_depth": wf.inline_depth,
            "broker": "redis db 0 (same server)",
            "result_backend": "redis db 1 (same server)",
            "wfcelery_tracker": "redis db 1 (same server)",
            "worker_flags": "--without-mingle --without-gossip",
            "publisher_result_subscriptions": "off (task_join_will_block, both sides): completion is polled",
        }


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    return float(value.total_seconds()) if hasattr(value, "total_seconds") else float(value)


class Workers:
    """``celery -A benchmarks.tasks worker`` subprocesses, one queue, the same settings for both sides."""

    def __init__(
        self,
        settings: WorkerSettings,
        broker: str,
        backend: str,
        prefix: str,
        queue: str,
        logdir: Path,
        app_module: str = "benchmarks.tasks",
        conf: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.app_module = app_module
        self.env = {
            **os.environ,
            "WFBENCH_BROKER": broker,
            "WFBENCH_BACKEND": backend,
            "WFBENCH_PREFIX": prefix,
            "WFBENCH_CONF": json.dumps(conf or {}),
            "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        }
        self.queue = queue
        self.logdir = logdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.hostnames: list[str] = []

    def start(self, app: Celery, timeout: float = 60.0) -> Workers:
        s = self.settings
        for i in range(s.workers):
            hostname = f"bench{i}-{os.getpid()}@{socket.gethostname()}"
            cmd = [
                sys.executable,
                "-m",
                "celery",
                "-A",
                self.app_module,
                "worker",
                "-Q",
                self.queue,
                "-n",
                hostname,
                "-P",
                s.pool,
                "-c",
                str(s.concurrency),
                "--loglevel",
                "WARNING",
                "--without-mingle",
                "--without-gossip",
            ]
            log = open(self.logdir / f"worker{i}.log", "wb")  # noqa: SIM115 - closed with the process
            self.procs.append(
                subprocess.Popen(cmd, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            )
            self.hostnames.append(hostname)
        deadline = time.monotonic() + timeout
        waiting = set(self.hostnames)
        while waiting:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"a benchmark worker exited with {proc.returncode}; see {self.logdir}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers {sorted(waiting)} did not answer ping within {timeout} s")
            for reply in app.control.ping(destination=sorted(waiting), timeout=0.5) or []:
                waiting -= set(reply)
        return self

    def restart(self, app: Celery, conf: dict[str, Any]) -> None:
        """Stop the workers and start them again with this app configuration (``--conf`` replaced)."""
        self.stop()
        self.procs, self.hostnames = [], []
        self.env["WFBENCH_CONF"] = json.dumps(conf)
        self.start(app)

    def conf(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.env["WFBENCH_CONF"])
        return result

    def pids(self) -> list[int]:
        """Every worker process: main processes and their pool children."""
        out: list[int] = []
        for proc in self.procs:
            out.append(proc.pid)
            out.extend(_children(proc.pid))
        return out

    def main_pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self, timeout: float = 20.0) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def last_error(self) -> str | None:
        """The last exception line in the workers' logs (what a stalled side died of)."""
        found = None
        for log in sorted(self.logdir.glob("worker*.log")):
            for line in log.read_text(errors="replace").splitlines():
                if "Error" in line and ":" in line and not line.startswith((" ", "\t")):
                    found = line.strip()[:400]
        return found


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


# -- meters ----------------------------------------------------------------------------------------------


def process_cpu(pids: Sequence[int]) -> float:
    """CPU seconds (user + system, including reaped children) of these processes."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


@dataclass
class Snapshot:
    wall: float
    worker_cpu: float
    redis_cpu: float
    client_cpu: float
    redis_commands: int
    commandstats: dict[str, int]
    commandusec: dict[str, int]


class Meter:
    """CPU of the workers, Redis and this process, and Redis commands, between two points in time."""

    def __init__(self, workers: Workers, r: redis.Redis) -> None:
        self.workers = workers
        self.r = r

    def snapshot(self) -> Snapshot:
        cpu = self.r.info("cpu")
        stats = self.r.info("stats")
        cmdstats = self.r.info("commandstats")
        return Snapshot(
            wall=time.monotonic(),
            worker_cpu=process_cpu(self.workers.pids()),
            redis_cpu=float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
            client_cpu=time.process_time(),
            redis_commands=int(stats["total_commands_processed"]),
            commandstats={k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in cmdstats.items()},
            commandusec={k.removeprefix("cmdstat_"): int(v["usec"]) for k, v in cmdstats.items()},
        )

    @staticmethod
    def per_task(before: Snapshot, after: Snapshot, tasks: int) -> dict[str, Any]:
        n = max(tasks, 1)
        calls = Counter(after.commandstats)
        calls.subtract(before.commandstats)
        top = {k: round(v / n, 2) for k, v in calls.most_common(8) if v > 0}
        cpu = (
            (after.worker_cpu - before.worker_cpu)
            + (after.redis_cpu - before.redis_cpu)
            + (after.client_cpu - before.client_cpu)
        )
        return {
            "total_cpu_ms_per_task": round(cpu * 1000 / n, 3),
            "worker_cpu_ms_per_task": round((after.worker_cpu - before.worker_cpu) * 1000 / n, 3),
            "redis_cpu_ms_per_task": round((after.redis_cpu - before.redis_cpu) * 1000 / n, 3),
            "client_cpu_ms_per_task": round((after.client_cpu - before.client_cpu) * 1000 / n, 3),
            "redis_commands_per_task": round((after.redis_commands - before.redis_commands) / n, 2),
            "redis_calls_per_task": top,
            "lua_us_per_call": _per_call(before, after, ("evalsha", "eval")),
        }


def _per_call(before: Snapshot, after: Snapshot, names: Sequence[str]) -> float | None:
    """Redis microseconds per call of these commands between two snapshots (e.g. the tracker's Lua)."""
    calls = sum(after.commandstats.get(n, 0) - before.commandstats.get(n, 0) for n in names)
    usec = sum(after.commandusec.get(n, 0) - before.commandusec.get(n, 0) for n in names)
    return round(usec / calls, 1) if calls else None


# -- waiting ---------------------------------------------------------------------------------------------


class Waiter:
    """Polls for completion, oldest first, in growing batches: a handful of Redis calls per poll, so that
    waiting does not compete with the workers. Also samples Redis memory for the peak."""

    def __init__(
        self, r: redis.Redis, backend_key: Callable[[str], str], run_key: Callable[[str], str]
    ) -> None:
        self.r = r
        self.backend_key = backend_key
        self.run_key = run_key
        self.failures: set[str] = set()
        self.peak_memory = 0

    def runs_done(self, run_ids: Sequence[str]) -> list[bool]:
        pipe = self.r.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.hget(self.run_key(run_id), "status")
        out = []
        for run_id, status in zip(run_ids, pipe.execute(), strict=True):
            done = status in ("SUCCEEDED", "FAILED", "CANCELLED")
            if done and status != "SUCCEEDED":
                self.failures.add(f"run {run_id}: {status}")
            out.append(done)
        return out

    def tasks_done(self, task_ids: Sequence[str]) -> list[bool]:
        pipe = self.r.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.get(self.backend_key(task_id))
        out = []
        for task_id, raw in zip(task_ids, pipe.execute(), strict=True):
            status = json.loads(raw)["status"] if raw else None
            done = status in READY_STATES
            if done and status != "SUCCESS":
                self.failures.add(f"task {task_id}: {status}")
            out.append(done)
        return out

    def wait(
        self,
        items: Sequence[str],
        check: Callable[[Sequence[str]], list[bool]],
        timeout: float,
        alive: Callable[[], bool] = lambda: True,
        busy: Callable[[], float] | None = None,
    ) -> float:
        """Block until ``check`` says every item is done; returns the monotonic time it saw the last one.

        ``busy`` returns the workers' CPU seconds so far: when it stops growing, :class:`Stalled`."""
        pos, batch = 0, 1
        deadline = time.monotonic() + timeout
        next_sample = 0.0
        stall_at, stall_cpu = time.monotonic() + STALL_SECONDS, busy() if busy else 0.0
        while pos < len(items):
            now = time.monotonic()
            if now >= next_sample:
                self.peak_memory = max(self.peak_memory, int(self.r.info("memory")["used_memory"]))
                next_sample = now + MEMORY_SAMPLE_INTERVAL
            if busy and now >= stall_at:
                cpu = busy()
                if cpu - stall_cpu < STALL_CPU:
                    raise Stalled(
                        f"{len(items) - pos} of {len(items)} not finished and the workers idle for "
                        f"{STALL_SECONDS:.0f} s"
                    )
                stall_at, stall_cpu = now + STALL_SECONDS, cpu
            chunk = items[pos : pos + batch]
            done = check(chunk)
            lead = next((i for i, d in enumerate(done) if not d), len(done))
            pos += lead
            if lead == len(chunk):
                batch = min(batch * 4, 2000)
                continue
            batch = 1
            if now > deadline:
                raise TimeoutError(f"{len(items) - pos} of {len(items)} not finished after {timeout:.0f} s")
            if not alive():
                raise RuntimeError("a benchmark worker died")
            time.sleep(POLL_INTERVAL)
        return time.monotonic()


# -- memory ----------------------------------------------------------------------------------------------


def pubsub_state(r: redis.Redis) -> dict[str, int]:
    """Result-channel subscriptions held by every client and the output buffers Redis keeps for them (a
    subscriber that never reads -- e.g. a worker that published a chord -- makes Redis buffer every
    result)."""
    clients = r.client_list()
    return {
        "subscriptions": sum(int(c.get("sub", 0)) + int(c.get("psub", 0)) for c in clients),
        "output_buffer_bytes": sum(int(c.get("omem", 0)) for c in clients),
    }


def scan_keys(r: redis.Redis, pattern: str) -> list[str]:
    return list(r.scan_iter(match=pattern, count=2000))


def used_memory(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


def measure_memory(
    r: redis.Redis, categories: Sequence[tuple[str, Callable[[str], bool]]], sample: int = 2000
) -> dict[str, Any]:
    """Bytes held by each category of keys in the current database, two ways:

    * ``bytes``: drop in Redis ``used_memory`` when the category's keys are deleted (everything: values,
      key names, dict entries, expiry entries, allocator rounding). Destroys the keys. (Not one overall
      ``used_memory`` delta: client buffers left by earlier sides come and go and would blur it.)
    * ``memory_usage_bytes``: MEMORY USAGE summed over a sample of keys, scaled to the key count.

    A key goes to the first category whose predicate accepts it; the rest are reported as ``other``.
    """
    keys = scan_keys(r, "*")
    groups: dict[str, list[str]] = {name: [] for name, _ in categories}
    groups["other"] = []
    for key in keys:
        name = next((n for n, pred in categories if pred(key)), "other")
        groups[name].append(key)
    out: dict[str, Any] = {}
    for name, members in groups.items():
        if not members:
            out[name] = {"keys": 0, "bytes": 0, "memory_usage_bytes": 0}
            continue
        step = max(1, len(members) // sample)
        picked = members[::step]
        pipe = r.pipeline(transaction=False)
        for key in picked:
            pipe.memory_usage(key, samples=0)
        usage = sum(v or 0 for v in pipe.execute())
        before = used_memory(r)
        for start in range(0, len(members), 1000):
            r.delete(*members[start : start + 1000])
        out[name] = {
            "keys": len(members),
            "bytes": before - used_memory(r),
            "memory_usage_bytes": int(usage * len(members) / len(picked)),
        }
    return out


# -- profiling -------------------------------------------------------------------------------------------


class Profiler:
    """py-spy attached to the worker processes (``--subprocesses``) for the duration of a ``with`` block."""

    def __init__(self, workdir: Path) -> None:
        self.exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.workdir = workdir

    def available(self) -> bool:
        return Path(self.exe).exists()

    @contextmanager
    def record(self, pids: Sequence[int], name: str, rate: int = 97) -> Iterator[dict[str, Any]]:
        result: dict[str, Any] = {}
        procs = []
        for pid in pids:
            out = self.workdir / f"{name}-{pid}.txt"
            cmd = [
                self.exe,
                "record",
                "--pid",
                str(pid),
                "--subprocesses",
                "--nonblocking",
                "-r",
                str(rate),
                "-f",
                "raw",
                "-o",
                str(out),
            ]
            procs.append((subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out))
        time.sleep(0.5)  # let py-spy attach
        try:
            yield result
        finally:
            stacks: Counter[str] = Counter()
            for proc, out in procs:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                if out.exists():
                    stacks.update(_read_raw(out))
            result.update(summarize_stacks(stacks))


def _read_raw(path: Path) -> Counter[str]:
    stacks: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[stack] += int(count)
    return stacks


#: wfcelery's own package directory: its frames keep the package name (``wfcelery/worker/hooks.py``), so
#: that they never look like Celery's modules of the same name (``celery/worker/request.py`` is shown as
#: ``worker/request.py``).
_PACKAGE = str(Path(wfcelery.__file__).resolve().parent)


def _frame(frame: str) -> str:
    """``func (path/to/module.py:123)`` -> ``func (to/module.py)``, or ``func (wfcelery/to/module.py)`` for
    wfcelery's own modules; process frames stay as they are."""
    func, _, where = frame.partition(" (")
    if not where:
        return frame
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts  # py-spy shortens a path to what follows its sys.path entry, when it can
    for i, part in enumerate(parts[:-1]):
        if part == "wfcelery" and Path(_PACKAGE, *parts[i + 1 :]).is_file():
            return f"{func} ({'/'.join(parts[i:])})"
    short = "/".join(parts[-2:]) if len(parts) >= 2 else path
    return f"{func} ({short})"


#: Where a worker's samples go: the first bucket (in this order) with a frame in the stack takes the sample.
PROFILE_BUCKETS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "pool": [
        ("wfcelery: publish released children", ("Dispatcher.publish (wfcelery/messaging/",)),
        (
            "wfcelery: succeed (Lua + plan)",
            ("WorkerSide.node_succeeded (wfcelery/worker/", "_on_success (wfcelery/worker/"),
        ),
        ("wfcelery: start gate (Lua)", ("WorkerBase.start (wfcelery/worker/",)),
        ("wfcelery: local start gate", ("LocalGate.", "_first_copy (wfcelery/worker/")),
        ("wfcelery: other hooks", ("(wfcelery/",)),
        (
            "celery: publish next step (chain/chord)",
            (
                "_dispatch_callbacks_and_chain",
                "Signature.apply_async",
                "_chord.apply_async",
                "group.apply_async",
            ),
        ),
        ("celery: chord counter", ("on_chord_part_return",)),
        (
            "celery: result backend writes",
            ("Backend.store_result", "mark_as_started", "mark_as_done", "Backend.on_task_call"),
        ),
        ("task body", ("noop (benchmarks/", "stamp (benchmarks/")),
        ("celery: rest of trace", ("trace_task",)),
        ("pool: receive job / send result", ("billiard/",)),
    ],
    "main": [
        ("task events (publish)", ("EventDispatcher",)),
        ("ack", ("Message.ack", "QoS.ack")),
        ("receive messages", ("Transport.on_readable", "_brpop_read", "Transport._deliver", "on_poll_start")),
        ("hand jobs to pool / read results", ("AsynPool", "ResultHandler", "schedule_writes")),
        ("wfcelery: message filter and hooks", ("(wfcelery/",)),
        ("event loop wait", ("_epoll.poll", "Hub.create_loop")),
    ],
}


#: An inline child runs inside its parent's success hook (``wfcelery_inline_depth``): below these frames a
#: sample is the child's own work, bucketed as a node's is, not as its parent's success.
INLINE_FRAMES = ("Inline.run_inline (wfcelery/worker/", "Inline._run_child (wfcelery/worker/")


def _bucket(role: str, frames: Sequence[str]) -> str:
    inline = [i for i, f in enumerate(frames) if any(n in f for n in INLINE_FRAMES)]
    if inline:
        frames = frames[inline[-1] + 1 :] or frames[inline[-1] :]
    for name, needles in PROFILE_BUCKETS.get(role, []):
        if any(n in f for f in frames for n in needles):
            return name
    return "other"


def summarize_stacks(stacks: Counter[str], top: int = 15) -> dict[str, Any]:
    """Per process role (worker main process, pool processes): the frames with the most samples, inclusive
    (frames present in nearly every sample of the role -- the bootstrap -- left out) and self."""
    totals: Counter[str] = Counter()
    own: dict[str, Counter[str]] = {}
    incl: dict[str, Counter[str]] = {}
    buckets: dict[str, Counter[str]] = {}
    for stack, count in stacks.items():
        raw = [f for f in stack.split(";") if f]
        role = "main" if sum(1 for f in raw if f.startswith("process ")) <= 1 else "pool"
        frames = [_frame(f) for f in raw if not f.startswith("process ")]
        if not frames:
            continue
        totals[role] += count
        buckets.setdefault(role, Counter())[_bucket(role, frames)] += count
        own.setdefault(role, Counter())[frames[-1]] += count
        for f in set(frames):
            incl.setdefault(role, Counter())[f] += count
    roles: dict[str, Any] = {}
    for role, total in totals.items():

        def pct(c: int, total: int = total) -> float:
            return round(100 * c / total, 1)

        roles[role] = {
            "samples": total,
            "buckets": [[b, pct(c)] for b, c in buckets[role].most_common()],
            "inclusive": [[f, pct(c)] for f, c in incl[role].most_common() if c < 0.9 * total][:top],
            "self": [[f, pct(c)] for f, c in own[role].most_common(top)],
        }
    return {"samples": sum(totals.values()), "roles": roles}


def drop_result_subscriptions(app: Celery) -> None:
    """Forget the result-channel subscriptions Celery made in this process (a GroupResult subscribes to
    every member even when joins would block); the benchmark never drains them, and left alone they fill
    Redis's pub/sub output buffer for this client and count in ``used_memory``."""
    consumer = getattr(app.backend, "result_consumer", None)
    if consumer is None or getattr(consumer, "_pubsub", None) is None:
        return
    consumer.stop()
    consumer._pubsub = None
    consumer.subscribed_to.clear()


def make_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="wfcelery-bench-"))
