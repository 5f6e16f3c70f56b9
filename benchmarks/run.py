"""Run the benchmarks: ``python -m benchmarks.run --quick`` (about a minute) or ``--full`` (up to
~10 minutes).

Starts a throwaway Redis on a free port and ``celery worker`` subprocess(es) on it, runs every scenario for
wfcelery and for plain Celery canvas with the same app, Redis and worker settings, then prints a markdown
table and writes ``benchmarks/results/<date>[-quick].{json,md,png}`` (or into ``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gc
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import redis
from celery._state import _set_task_join_will_block

from . import chart as charts
from . import report, scenarios
from .environment import RESULTS_DIR, AmqpBroker, machine
from .harness import Profiler, Workers, WorkerSettings, make_workdir, redis_server_class
from .tasks import QUEUE, make_app

SCENARIOS = (
    "ceiling",
    "small",
    "translator",
    "translator_stages",
    "long_chain",
    "wide",
    "map",
    "scale",
    "latency",
    "control",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes (default)")
    mode.add_argument("--full", action="store_true", help="the full sizes (~10 minutes on 2 cores)")
    p.add_argument("--only", action="append", choices=SCENARIOS, help="run only these scenarios (repeatable)")
    p.add_argument("--pool", default="prefork", choices=("prefork", "solo", "threads"))
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--workers", type=int, default=1, help="worker processes (each with --concurrency)")
    p.add_argument(
        "--profile",
        choices=("auto", "on", "off"),
        default="auto",
        help="py-spy the workers on small workflows: auto = in --full when a throughput target is missed",
    )
    p.add_argument(
        "--conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra app configuration for both sides and the workers, e.g. wfcelery_celery_results=false "
        "(VALUE is read as JSON when it parses, else as a string; repeatable)",
    )
    p.add_argument(
        "--inline-depth",
        type=int,
        default=None,
        metavar="N",
        help="also run the long chain's and the latency's wfcelery sides with workers restarted with "
        "wfcelery_inline_depth=N (inline continuation)",
    )
    p.add_argument(
        "--broker",
        choices=("redis", "amqp"),
        default="redis",
        help="amqp: RabbitMQ at --amqp-url, in a vhost of its own (rabbitmqctl; deleted after); the ceiling "
        "scenario needs the Redis broker",
    )
    p.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672//")
    p.add_argument(
        "--size",
        action="append",
        default=[],
        metavar="KEY=N",
        help="override one size of the mode, e.g. small_runs=500 (repeatable; keys: the Sizes fields)",
    )
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the json/md/png")
    p.add_argument("--no-chart", action="store_true", help="skip the PNG (no matplotlib)")
    return p.parse_args(argv)


def parse_conf(items: list[str]) -> dict[str, Any]:
    conf: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--conf expects KEY=VALUE, got {item!r}")
        try:
            conf[key] = json.loads(value)
        except json.JSONDecodeError:
            conf[key] = value
    return conf


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    full = bool(args.full)
    sizes = scenarios.FULL if full else scenarios.QUICK
    for item in args.size:
        key, _, value = item.partition("=")
        if key not in sizes.__dict__ or not value.isdigit():
            raise SystemExit(
                f"--size expects KEY=N with KEY one of {', '.join(sizes.__dict__)}; got {item!r}"
            )
        sizes = dataclasses.replace(sizes, **{key: int(value)})
    wanted = args.only or list(SCENARIOS)
    workdir = make_workdir()
    server = redis_server_class()().start()
    started = time.monotonic()
    workers: Workers | None = None
    amqp = None
    out: dict[str, Any] = {
        "mode": "full" if full else "quick",
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "sizes": sizes.__dict__,
        "scenarios": [],
    }
    try:
        broker, backend = f"{server.url}/0", f"{server.url}/1"
        if args.broker == "amqp":
            amqp = AmqpBroker(args.amqp_url).__enter__()
            broker = amqp.url
        conf = parse_conf(args.conf)
        app = make_app(broker, backend, conf=conf)
        # The benchmark polls for completion; it never joins a result. Without this, every task this
        # process sends subscribes its result channel (RedisBackend.on_task_call) and nothing drains them.
        _set_task_join_will_block(True)
        settings = WorkerSettings(args.pool, args.concurrency, args.workers)
        workers = Workers(settings, broker, backend, app.conf.wfcelery_key_prefix, QUEUE, workdir, conf=conf)
        workers.start(app)  # assigned first: workers that started before a failure are stopped below
        r_results = redis.Redis.from_url(backend, decode_responses=True)
        # the Redis broker's db (the ignore_result ceiling waits for its queue to drain)
        r_broker = redis.Redis.from_url(f"{server.url}/0", decode_responses=True)
        out["machine"]["redis_server"] = r_results.info("server")["redis_version"]
        out["settings"] = {**settings.describe(app), **{f"conf {k}": v for k, v in conf.items()}}
        if amqp is not None:
            out["settings"]["broker"] = amqp.describe()
            out["broker"] = "amqp"
        print(
            f"wfcelery benchmarks ({out['mode']}), Redis {out['machine']['redis_server']} on {server.url}, "
            f"logs in {workdir}"
        )
        print("settings (both sides): " + ", ".join(f"{k}={v}" for k, v in out["settings"].items()))
        bench = scenarios.Bench(app, workers, r_results, r_broker, Profiler(workdir))
        runners = {
            "ceiling": lambda: scenarios.ceiling(bench, sizes.ceiling),
            "small": lambda: scenarios.small(bench, sizes.small_runs),
            "translator": lambda: scenarios.translator(bench, sizes.translator_runs),
            "translator_stages": lambda: scenarios.translator_stages(bench, sizes.translator_runs),
            "long_chain": lambda: scenarios.long_chain(bench, sizes.chain, args.inline_depth),
            "wide": lambda: scenarios.wide(bench, sizes.wide),
            "map": lambda: scenarios.map_fanout(bench, sizes.map),
            "scale": lambda: scenarios.scale(bench, sizes.scale_runs),
            "latency": lambda: scenarios.latency(bench, sizes.latency, args.inline_depth),
            "control": lambda: scenarios.control(bench, sizes.control),
        }
        for i, name in enumerate(n for n in SCENARIOS if n in wanted):
            if full and i:
                # Each scenario on fresh worker processes: what one scenario's sides leave in a worker
                # (Celery keeps a result subscription per chord header it applied) never slows the next.
                workers.restart(app, workers.conf())
            print(f"[{time.monotonic() - started:6.1f}s] {name}")
            out["scenarios"].append(runners[name]())
        out["targets"] = report.targets(out)
        if args.profile == "on" or (args.profile == "auto" and full and report.throughput_missed(out)):
            print(f"[{time.monotonic() - started:6.1f}s] profile")
            out["profile"] = scenarios.profile(bench, sizes.profile_runs)
    finally:
        # AsyncResult.__del__ unsubscribes through the result backend: let it run while Redis is still up.
        gc.collect()
        if workers is not None:
            workers.stop()
        if amqp is not None:
            amqp.__exit__(None, None, None)
        server.stop()
    out["duration_s"] = round(time.monotonic() - started, 1)
    paths = write(out, args.out, chart=not args.no_chart)
    print()
    print(paths["markdown"])
    print(f"\nwrote {', '.join(str(p) for k, p in paths.items() if k != 'markdown')}")
    if not any(s.get("failures") for sc in out["scenarios"] for s in sc.get("sides", {}).values()):
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def write(out: dict[str, Any], directory: Path, chart: bool = True) -> dict[str, Any]:
    directory.mkdir(parents=True, exist_ok=True)
    stem = dt.date.today().isoformat() + ("" if out["mode"] == "full" else "-quick")
    if out.get("broker") == "amqp":
        stem += "-amqp"
    paths: dict[str, Any] = {"json": directory / f"{stem}.json", "md": directory / f"{stem}.md"}
    if chart:
        png = directory / f"{stem}.png"
        if charts.chart(out, png):
            paths["png"] = png
    markdown = report.markdown(out, chart_name=paths["png"].name if "png" in paths else None)
    paths["json"].write_text(json.dumps(out, indent=2, default=str) + "\n")
    paths["md"].write_text(markdown)
    paths["markdown"] = markdown
    return paths


if __name__ == "__main__":
    main(sys.argv[1:])
