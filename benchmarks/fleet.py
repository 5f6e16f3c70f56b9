"""The fleet on paper: ``make bench-fleet`` (``python -m benchmarks.fleet``).

A tracker-only benchmark: no Celery, no broker. ``--clients`` processes each drive wfcelery's
:class:`~wfcelery.tracker.store.Tracker` through the small workflow (``a -> 8 parallel -> c``) for
``--seconds``:
they create runs with ``Tracker.create_run`` and run every node through the tracker's ``start`` and
``succeed`` Lua scripts, pipelined over ``--batch`` runs at a time (all the released nodes of a batch in one
pipeline per script), exactly the calls a worker makes per node. Every run must end SUCCEEDED (checked from
the tracker after the run).

It runs against a real Redis Cluster on loopback that it creates (``redis-server --cluster-enabled yes`` on
free ports in a temp dir, ``redis-cli --cluster create ... --cluster-replicas 0``; one master gets every slot
with ``CLUSTER ADDSLOTSRANGE``), with 1 and with 3 masters, and tears it down after. It reports node
transitions (start + succeed script calls) per second, per Redis core (transitions per CPU-second of the
masters, from ``INFO cpu``), how the keys and script calls spread over the masters, and the share of the
global keys (run index, live set: one slot each) in the busiest master's commands.

With the per-task CPU of a real run (``--scale-json``, default: the newest ``results/*-scale*.json``) it
computes what 1,000,000 tasks in 2 minutes (8,333 tasks/s) needs: worker cores, broker cores (Redis broker vs
RabbitMQ) and tracker Redis masters, and which of them is the bottleneck. ``--real-runs`` also runs that many
small workflows through a real ``celery worker`` whose tracker is the 3-master cluster
(``wfcelery_redis_cluster = True``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import redis

from wfcelery._redis_server import ClusterServer as Cluster
from wfcelery.plan.compiler import Plan, compile_workflow
from wfcelery.settings import Settings
from wfcelery.tracker.outcomes import StartOutcome, SucceedOutcome
from wfcelery.tracker.records import new_run
from wfcelery.tracker.store import Tracker

from .environment import RESULTS_DIR, machine, redis_server_version
from .scenarios import small_workflow

GOAL_TASKS, GOAL_SECONDS = 1_000_000, 120
PREFIX = "wff"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fleet", description=__doc__.split("\n\n")[0])
    p.add_argument("--masters", type=int, action="append", help="cluster sizes to run (default: 1 and 3)")
    p.add_argument("--clients", type=int, default=4, help="client processes (default 4)")
    p.add_argument("--batch", type=int, default=50, help="runs per pipelined batch (default 50)")
    p.add_argument("--seconds", type=float, default=20.0, help="per cluster size (default 20)")
    p.add_argument(
        "--scale-json",
        type=Path,
        action="append",
        help="bench-scale result(s) to project from (repeatable; default: the newest in results/)",
    )
    p.add_argument(
        "--real-runs", type=int, default=20, help="small workflows through a real worker (0: skip)"
    )
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    p.add_argument("--render", type=Path, metavar="JSON", help="only rewrite the markdown of a result file")
    return p.parse_args(argv)


# -- the cluster -------------------------------------------------------------------------------------------


# -- the client processes ----------------------------------------------------------------------------------


def _plan() -> Plan:
    return compile_workflow(small_workflow().validate())


class _Recorded(Exception):
    pass


def recorded(method: Any, *args: Any) -> tuple[str, str, list[Any]]:
    """(script, run id, ARGV) of a Tracker method's call, built by the method itself, without running it:
    the benchmark pipelines exactly the calls a worker makes, whatever their arguments look like."""
    tracker = method.__self__
    calls: list[tuple[str, str, list[Any]]] = []

    def capture(name: str, run_id: str, argv: Any) -> Any:
        calls.append((name, run_id, list(argv)))
        raise _Recorded

    tracker._run_script = capture  # an instance attribute shadows the method for this call only
    try:
        method(*args)
    except _Recorded:
        pass
    finally:
        del tracker._run_script
    return calls[0]


def _fetch(plan: Plan, index: int) -> tuple[Any, ...]:
    """The worker's ``fetch`` argument to succeed (results a released fan-in child needs), where the plan
    has it."""
    fetch = getattr(plan, "fetch", None)
    return (fetch[index],) if fetch is not None else ()


def _client(url: str, seconds: float, batch: int, queue: Any) -> None:
    """One client process: batches of runs through create_run, start and succeed until ``seconds`` pass."""
    settings = Settings(redis_url=url, key_prefix=PREFIX, redis_cluster=True)
    tracker = Tracker(settings)
    plan = _plan()
    keys = tracker.keys
    # Pipelined per master: redis-py refuses evalsha on a cluster pipeline, and its ClusterPipeline asks the
    # seed node COMMAND GETKEYS for every EVALSHA sent through execute_command (a round trip each). So: load
    # both scripts on every master, group the calls by the master that owns the run's slot, and send each
    # group through a plain pipeline on that master's connection.
    cluster = tracker.client
    shas = {}
    for name in ("start", "succeed"):
        cluster.script_load(tracker.scripts[name].script)
        shas[name] = tracker.scripts[name].sha

    def pipelined(calls: list[tuple[str, str, list[Any]]]) -> list[Any]:
        groups: dict[str, tuple[Any, list[tuple[int, str, list[str], list[Any]]]]] = {}
        for pos, (name, run_id, args) in enumerate(calls):
            run_keys = keys.run_keys(run_id)
            node = cluster.get_node_from_key(run_keys[0])
            groups.setdefault(node.name, (node, []))[1].append((pos, name, run_keys, args))
        replies: list[Any] = [None] * len(calls)
        for node, items in groups.values():
            pipe = node.redis_connection.pipeline(transaction=False)
            for _, name, run_keys, args in items:
                pipe.evalsha(shas[name], len(run_keys), *run_keys, *args)
            for (pos, *_), reply in zip(items, pipe.execute(raise_on_error=False), strict=True):
                replies[pos] = reply
        return replies

    run_ids: list[str] = []
    nodes = errors = 0
    examples: list[str] = []
    cpu0, t0 = time.process_time(), time.monotonic()
    end = t0 + seconds
    while time.monotonic() < end:
        ids = [uuid.uuid4().hex for _ in range(batch)]
        for run_id in ids:
            record = new_run(
                name=plan.name,
                plan_digest=plan.digest,
                total=len(plan.nodes),
                created_ms=int(time.time() * 1000),
                params={},
                policy=plan.on_failure,
                ttl=settings.run_ttl,
                events_maxlen=settings.events_maxlen,
            )
            tracker.create_run(run_id, record, plan.roots, plan.digest, plan.blob, settings.unconfirmed_bound)
        pending = [(run_id, i, 0) for run_id in ids for i in plan.roots]
        while pending:
            # the calls Tracker.start / Tracker.succeed make (as the worker calls them), pipelined
            calls = [
                recorded(tracker.start, run_id, index, epoch, "fleet") for run_id, index, epoch in pending
            ]
            for (run_id, index, _), reply in zip(pending, pipelined(calls), strict=True):
                if isinstance(reply, Exception) or not StartOutcome.from_reply(reply).run:
                    errors += 1
                    examples.append(f"start {run_id}/{index}: {reply}")
            calls = [
                recorded(
                    tracker.succeed,
                    run_id,
                    index,
                    epoch,
                    "null",
                    plan.releases[index],
                    plan.rule_spec,
                    *_fetch(plan, index),
                )
                for run_id, index, epoch in pending
            ]
            released = []
            for (run_id, index, _), reply in zip(pending, pipelined(calls), strict=True):
                if isinstance(reply, Exception):
                    errors += 1
                    examples.append(f"succeed {run_id}/{index}: {reply}")
                    continue
                out = SucceedOutcome.from_reply(reply)
                released += [(run_id, child, out.epoch) for child in out.released]
            nodes += len(pending)
            pending = released
        run_ids += ids
    elapsed, cpu = time.monotonic() - t0, time.process_time() - cpu0
    records = tracker.records(run_ids)
    statuses = Counter(r.status.value if r else "missing" for r in records)
    queue.put(
        {
            "runs": len(run_ids),
            "nodes": nodes,
            "elapsed_s": elapsed,
            "client_cpu_s": cpu,
            "script_errors": errors,
            "examples": examples[:5],
            "statuses": dict(statuses),
        }
    )


def measure(masters: int, args: argparse.Namespace) -> dict[str, Any]:
    cluster = Cluster(masters).start()
    try:
        nodes = cluster.nodes()
        for n in nodes:
            n.config_resetstat()
        cpu0 = [_redis_cpu(n) for n in nodes]
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        procs = [
            ctx.Process(target=_client, args=(cluster.url, args.seconds, args.batch, queue))
            for _ in range(args.clients)
        ]
        t0 = time.monotonic()
        for p in procs:
            p.start()
        results = []
        deadline = time.monotonic() + args.seconds + 600
        while len(results) < len(procs):
            try:
                results.append(queue.get(timeout=1.0))
            except Exception:  # queue.Empty: is any client still working?
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead or time.monotonic() > deadline:
                    for p in procs:
                        p.kill()
                    codes = [p.exitcode for p in procs]
                    raise RuntimeError(f"a tracker client failed (exit codes {codes})") from None
        for p in procs:
            p.join(30)
        wall = time.monotonic() - t0
        cpu1 = [_redis_cpu(n) for n in nodes]
        per_master = []
        for i, n in enumerate(nodes):
            stats = n.info("commandstats")
            calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
            usec = {k.removeprefix("cmdstat_"): int(v["usec"]) for k, v in stats.items()}
            per_master.append(
                {
                    "port": cluster.ports[i],
                    "cpu_s": round(cpu1[i] - cpu0[i], 2),
                    "keys": int(n.dbsize()),
                    "evalsha_calls": calls.get("evalsha", 0),
                    "commands": sum(calls.values()),
                    "global_key_commands": sum(calls.get(c, 0) for c in ("zadd", "sadd", "srem", "zrem")),
                    "global_key_usec": sum(usec.get(c, 0) for c in ("zadd", "sadd", "srem", "zrem")),
                    "all_usec": sum(usec.values()),
                    "top_usec": dict(Counter(usec).most_common(6)),
                }
            )
        index_slot = _slot_owner(nodes, f"{PREFIX}:runs")
    finally:
        cluster.stop()
    nodes_done = sum(r["nodes"] for r in results)
    runs = sum(r["runs"] for r in results)
    elapsed = max(r["elapsed_s"] for r in results)
    redis_cpu = sum(m["cpu_s"] for m in per_master)
    transitions = 2 * nodes_done
    statuses: Counter[str] = Counter()
    for r in results:
        statuses.update(r["statuses"])
    return {
        "masters": masters,
        "clients": args.clients,
        "batch": args.batch,
        "seconds": round(elapsed, 1),
        "wall_s": round(wall, 1),
        "runs": runs,
        "nodes": nodes_done,
        "transitions": transitions,
        "transitions_per_s": round(transitions / elapsed, 1),
        "nodes_per_s": round(nodes_done / elapsed, 1),
        "redis_cpu_s": round(redis_cpu, 2),
        "client_cpu_s": round(sum(r["client_cpu_s"] for r in results), 2),
        "transitions_per_redis_cpu_s": round(transitions / redis_cpu, 1) if redis_cpu else None,
        "redis_cpu_us_per_node": round(redis_cpu * 1e6 / nodes_done, 1) if nodes_done else None,
        "statuses": dict(statuses),
        "all_succeeded": statuses.get("SUCCEEDED", 0) == runs and runs > 0,
        "script_errors": sum(r["script_errors"] for r in results),
        "per_master": per_master,
        "index_on_port": index_slot,
        # the master(s) holding the run index and the live set: their share of its command time
        "busiest_master_global_key_share": round(
            max(m["global_key_usec"] / m["all_usec"] for m in per_master if m["all_usec"]), 4
        )
        if any(m["all_usec"] for m in per_master)
        else None,
        "load_average": list(os.getloadavg()),
    }


def _redis_cpu(r: redis.Redis) -> float:
    cpu = r.info("cpu")
    return float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


def _slot_owner(nodes: list[redis.Redis], key: str) -> int | None:
    slot = int(nodes[0].cluster("keyslot", key))
    for n in nodes:
        if n.cluster("countkeysinslot", slot):
            return int(n.connection_pool.connection_kwargs["port"])
    return None


# -- real runs on the cluster ------------------------------------------------------------------------------


def real_runs(count: int) -> dict[str, Any]:
    """``count`` small workflows through a real celery worker whose tracker is a 3-master cluster."""
    from celery._state import _set_task_join_will_block

    import wfcelery

    from .harness import Workers, WorkerSettings, make_workdir, redis_server_class
    from .tasks import make_app

    cluster = Cluster(3).start()
    broker = redis_server_class()().start()
    workdir = make_workdir()
    workers = None
    try:
        conf = {
            "wfcelery_redis_cluster": True,
            "wfcelery_redis_url": cluster.url,
            "task_default_queue": "fleet",
        }
        app = make_app(f"{broker.url}/0", f"{broker.url}/1", prefix=PREFIX, conf=conf)
        _set_task_join_will_block(True)
        workers = Workers(
            WorkerSettings("prefork", 2, 1),
            f"{broker.url}/0",
            f"{broker.url}/1",
            PREFIX,
            "fleet",
            workdir,
            conf=conf,
        )
        workers.start(app)  # assigned first: workers that started before a failure are stopped below
        engine = wfcelery.install(app)
        t0 = time.monotonic()
        runs = [engine.submit(small_workflow()) for _ in range(count)]
        deadline = time.monotonic() + 120
        states: list[str] = []
        while time.monotonic() < deadline:
            states = [r.state(check_workers=False).status.value for r in runs]
            if all(s in ("SUCCEEDED", "FAILED", "CANCELLED") for s in states):
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        per_master = [int(n.dbsize()) for n in cluster.nodes()]
        ran_once = all(s == "SUCCEEDED" for s in states) and all(
            n.status.value == "SUCCEEDED" and n.attempts == 1
            for r in runs
            for n in r.state(check_workers=False).nodes.values()
        )
        return {
            "runs": count,
            "statuses": dict(Counter(states)),
            "every_node_succeeded_once": ran_once,
            "seconds": round(elapsed, 1),
            "keys_per_master": per_master,
            "worker_error": workers.last_error(),
        }
    except Exception as e:  # reported, not hidden: the fleet figures stand without it
        return {
            "runs": count,
            "error": f"{type(e).__name__}: {e}",
            "worker_error": workers.last_error() if workers else None,
        }
    finally:
        if workers is not None:
            workers.stop()
        broker.stop()
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# -- the projection ----------------------------------------------------------------------------------------


def newest_scale(directory: Path) -> Path | None:
    found = sorted(p for p in directory.glob("*-scale*.json") if not p.name.endswith(".partial.json"))
    return found[-1] if found else None


def _load_scales(paths: list[Path]) -> dict[str, Any]:
    """The brokers of several bench-scale results, as one."""
    brokers: list[dict[str, Any]] = []
    for path in paths:
        brokers += json.loads(path.read_text()).get("brokers", [])
    return {"brokers": brokers}


def project(cluster_runs: list[dict[str, Any]], scale: dict[str, Any] | None) -> dict[str, Any]:
    """Cores for GOAL_TASKS in GOAL_SECONDS, from CPU per task measured on this machine."""
    rate = GOAL_TASKS / GOAL_SECONDS
    best = max(cluster_runs, key=lambda c: c["transitions_per_redis_cpu_s"] or 0)
    per_core_nodes = best["transitions_per_redis_cpu_s"] / 2  # a node is two transitions
    out: dict[str, Any] = {
        "goal_tasks_per_s": round(rate, 1),
        "tracker_nodes_per_redis_core": round(per_core_nodes, 1),
        "tracker_cores_from_fleet_bench": round(rate / per_core_nodes, 2),
        "brokers": [],
    }
    for b in (scale or {}).get("brokers", []):
        cpu = b["cpu_ms_per_task"]
        row = {
            "broker": b["broker"],
            "source": f"{b['runs']:,} runs, {b['tasks_per_s']} tasks/s",
            "worker_ms_per_task": cpu["workers"],
            "broker_ms_per_task": cpu["broker"],
            "tracker_ms_per_task": cpu["tracker"],
            "submit_ms_per_task": cpu["client"],
            "worker_cores": round(rate * cpu["workers"] / 1000, 1),
            "broker_cores": round(rate * cpu["broker"] / 1000, 2),
            "tracker_cores": round(rate * cpu["tracker"] / 1000, 2),
            "submit_cores": round(rate * cpu["client"] / 1000, 2),
        }
        # a Redis server runs commands on one core: more than one core's worth needs that many shards
        row["broker_note"] = (
            "one Redis broker is single-threaded: above 1 core of work it needs that many Redis brokers "
            "(queues spread over them)"
            if b["broker"] == "redis"
            else "RabbitMQ (Erlang) uses several cores per node; its CPU here is the whole beam.smp"
        )
        parts = {k: row[k] for k in ("worker_cores", "broker_cores", "tracker_cores")}
        row["bottleneck"] = max(parts, key=lambda k: parts[k])
        row["tracker_share_of_cores"] = round(row["tracker_cores"] / sum(parts.values()), 3)
        out["brokers"].append(row)
    return out


# -- report ------------------------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def markdown(out: dict[str, Any]) -> str:
    m = out["machine"]
    lines = [
        f"# wfcelery fleet benchmark (tracker only): {out['date']}",
        "",
        (
            f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), load average at start "
            f"{', '.join(f'{x:.2f}' for x in m['load_average_at_start'])} -- shared with other work, so "
            "wall-clock rates are low; the per-core figures (transitions per CPU-second of the Redis "
            f"masters) are what the projection uses. Redis {out.get('redis_version')}; wfcelery at "
            f"{m.get('wfcelery_commit') or 'unknown commit'}."
        ),
        "",
        f"Command: `{out['command']}`",
        "",
        "## Tracker throughput on a real Redis Cluster (loopback, created by the benchmark)",
        "",
    ]
    rows = []
    for c in out["clusters"]:
        spread = ", ".join(f"{pm['evalsha_calls']:,}" for pm in c["per_master"])
        keys = ", ".join(f"{pm['keys']:,}" for pm in c["per_master"])
        cpu = ", ".join(f"{pm['cpu_s']}" for pm in c["per_master"])
        rows.append(
            [
                c["masters"],
                f"{c['clients']} x {c['batch']}",
                f"{c['runs']:,}",
                f"{c['transitions_per_s']:,.0f}",
                f"{c['transitions_per_redis_cpu_s']:,.0f}",
                c["redis_cpu_us_per_node"],
                spread,
                keys,
                cpu,
                "yes" if c["all_succeeded"] else f"**no** {c['statuses']}",
                f"{c['load_average'][0]:.2f}",
            ]
        )
    lines += _table(
        [
            "masters",
            "clients x runs/batch",
            "runs",
            "transitions/s",
            "transitions per Redis CPU-s",
            "Redis CPU us/node",
            "script calls per master",
            "keys per master",
            "CPU s per master",
            "every run SUCCEEDED",
            "load 1m at end",
        ],
        rows,
    )
    if len(out["clusters"]) >= 2:
        one = next((c for c in out["clusters"] if c["masters"] == 1), None)
        many = max(out["clusters"], key=lambda c: c["masters"])
        if one and many is not one:
            lines += [
                "",
                (
                    f"Scaling 1 -> {many['masters']} masters: "
                    f"{many['transitions_per_s'] / one['transitions_per_s']:.2f}x "
                    f"the transitions/s on this {m['cpus']}-core machine (the clients and every master share "
                    f"the same {m['cpus']} cores, so wall-clock cannot scale past them); Redis CPU per node "
                    f"{one['redis_cpu_us_per_node']} vs {many['redis_cpu_us_per_node']} us, and the script "
                    "calls split evenly over the masters (column above): with a core per master the "
                    "capacity is masters x the per-core rate."
                ),
            ]
        lines += [
            "",
            (
                f"Global keys (run index `{PREFIX}:runs`, live set: one slot each, on port "
                f"{many.get('index_on_port')}): "
                f"{100 * (many['busiest_master_global_key_share'] or 0):.2f}% of "
                "the command time of the master holding them -- two cheap commands per run (ZADD + SADD at "
                "submit) against 20 script calls, so they are not a hot spot and stay unsharded."
            ),
        ]
    real = out.get("real_runs")
    if real:
        lines += ["", "## Real workflows with the tracker on the 3-master cluster", ""]
        if real.get("error"):
            lines += [f"**Failed**: {real['error']} (worker log: {real.get('worker_error')})"]
        else:
            lines += [
                (
                    f"{real['runs']} small workflows through a real `celery worker` (Redis broker apart, "
                    f"`wfcelery_redis_cluster = True`): {real['statuses']} in {real['seconds']} s; "
                    "every node SUCCEEDED after one attempt: "
                    f"{real['every_node_succeeded_once']}; keys per master {real['keys_per_master']}."
                )
            ]
    p = out.get("projection")
    if p:
        lines += [
            "",
            f"## The fleet for {GOAL_TASKS:,} tasks in {GOAL_SECONDS} s "
            f"({p['goal_tasks_per_s']:,.0f} tasks/s)",
            "",
            (
                f"Tracker alone (this benchmark): {p['tracker_nodes_per_redis_core']:,.0f} nodes per Redis "
                f"core-second -> **{p['tracker_cores_from_fleet_bench']} tracker cores** (masters) for the "
                "goal."
            ),
            "",
        ]
        rows = [
            [
                b["broker"],
                b["source"],
                f"{b['worker_ms_per_task']} / {b['broker_ms_per_task']} / {b['tracker_ms_per_task']}",
                b["worker_cores"],
                b["broker_cores"],
                b["tracker_cores"],
                b["submit_cores"],
                b["bottleneck"].removesuffix("_cores"),
                f"{100 * b['tracker_share_of_cores']:.1f}%",
            ]
            for b in p["brokers"]
        ]
        if rows:
            lines += _table(
                [
                    "broker",
                    "measured in",
                    "CPU ms/task: worker / broker / tracker Redis",
                    "worker cores",
                    "broker cores",
                    "tracker Redis cores",
                    "submitter cores",
                    "largest",
                    "tracker share",
                ],
                rows,
            )
            lines += [
                "",
                "Cores = goal rate x CPU per task measured in the real run (tracker Redis CPU there includes "
                "submit writes and the poller's reads). A Redis server uses one core for commands: the "
                "tracker's share is spread over that many cluster masters (runs hash to slots), a Redis "
                "broker's needs that many Redis brokers (queues spread over them); RabbitMQ uses every "
                "core of its node.",
            ]
        else:
            lines += ["No bench-scale result found: run `make bench-scale` for the worker and broker CPU."]
    lines += ["", f"Total time {out.get('duration_s', '?')} s.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.render:  # with --scale-json: the projection again, from that scale result
        data: dict[str, Any] = json.loads(args.render.read_text())
        if args.scale_json:
            data["scale_source"] = [str(p) for p in args.scale_json]
            data["projection"] = project(data["clusters"], _load_scales(args.scale_json))
            args.render.write_text(json.dumps(data, indent=2, default=str) + "\n")
        args.render.with_suffix(".md").write_text(markdown(data))
        return data
    started = time.monotonic()
    out: dict[str, Any] = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "command": "python -m benchmarks.fleet " + " ".join(argv if argv is not None else sys.argv[1:]),
        "clusters": [],
    }
    out["redis_version"] = redis_server_version()
    for masters in args.masters or [1, 3]:
        print(f"tracker only: {masters} master(s), {args.clients} clients x {args.batch} runs", flush=True)
        c = measure(masters, args)
        out["clusters"].append(c)
        print(
            f"  {c['runs']:,} runs, {c['transitions_per_s']:,.0f} transitions/s, "
            f"{c['transitions_per_redis_cpu_s']:,.0f} per Redis CPU-s, all SUCCEEDED: {c['all_succeeded']}",
            flush=True,
        )
    if args.real_runs:
        print(f"real workflows on a 3-master cluster: {args.real_runs}", flush=True)
        out["real_runs"] = real_runs(args.real_runs)
        print(f"  {out['real_runs']}", flush=True)
    newest = newest_scale(args.out)
    paths = args.scale_json or ([newest] if newest else [])
    scale = _load_scales(paths) if paths else None
    out["scale_source"] = [str(p) for p in paths]
    out["projection"] = project(out["clusters"], scale)
    out["duration_s"] = round(time.monotonic() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{dt.date.today().isoformat()}-fleet"
    (args.out / f"{stem}.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    text = markdown(out)
    (args.out / f"{stem}.md").write_text(text)
    print(text)
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
