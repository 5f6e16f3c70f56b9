"""The benchmarks. Each runs its wfcelery side and its plain Celery canvas side on the same app, Redis
and workers, one after the other, and returns a dict for the report.

Every side starts from an empty result/tracker database (db 1) and is timed end to end: from the first
submit to the moment the poller sees the last run (or the last task) finished.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery, chain, chord, group

import wfcelery
from wfcelery import Workflow
from wfcelery.plan.canvas import translate
from wfcelery.plan.compiler import compile_workflow
from wfcelery.settings import Settings

from .harness import (
    Meter,
    Profiler,
    Stalled,
    Waiter,
    Workers,
    drop_result_subscriptions,
    measure_memory,
    process_cpu,
    pubsub_state,
    used_memory,
)
from .tasks import IDLE_QUEUE, PREFIX

#: Nodes per small workflow: a -> 8 parallel -> c.
SMALL_WIDTH = 8
SMALL_TASKS = SMALL_WIDTH + 2
#: The scale the redis.workflow design targets, which the scale benchmark projects to.
PROJECT_TASKS, PROJECT_RUNS = 1_000_000, 100_000


@dataclass(frozen=True)
class Sizes:
    ceiling: int
    small_runs: int
    translator_runs: int
    chain: int
    wide: int
    scale_runs: int
    latency: int
    control: int
    profile_runs: int
    map: int


#: In the suite (tests/integration/test_bench.py): every scenario and side, small enough for ~30 s on an idle
#: 2-core machine -- it keeps the harness alive; the figures come from --full.
QUICK = Sizes(
    ceiling=300,
    small_runs=30,
    translator_runs=8,
    chain=60,
    wide=200,
    scale_runs=60,
    latency=40,
    control=200,
    profile_runs=30,
    map=60,
)
#: The scale scenario keeps 10,000 runs' worth of memory figures out of it: ``make bench-scale`` is the real
#: 1M-task run; the translator scenarios (four sides each) compare executors, 500 runs are enough for that.
FULL = Sizes(
    ceiling=10_000,
    small_runs=2_000,
    translator_runs=500,
    chain=2_000,
    wide=10_000,
    scale_runs=2_000,
    latency=500,
    control=10_000,
    profile_runs=300,
    map=10_000,
)

Submit = Callable[[], tuple[Sequence[str], Callable[[Sequence[str]], list[bool]]]]


def _tracker_kind(kind: str) -> Callable[[str], bool]:
    def pred(key: str) -> bool:
        return key.startswith(PREFIX + ":{") and key.endswith("}:" + kind)

    return pred


#: Memory categories, in deletion order. Per-run tracker keys by kind; "tracker shared" is the run index,
#: plans and the gate; Celery's chord keys are the 5.7 claim keys (`.c`, kept >= 300 s) and counters.
MEMORY_CATEGORIES: list[tuple[str, Callable[[str], bool]]] = [
    *(
        (f"tracker {kind}", _tracker_kind(kind))
        for kind in ("run", "nodes", "results", "events", "deps", "errors")
    ),
    ("tracker shared", lambda k: k.startswith(PREFIX + ":")),
    ("celery results", lambda k: k.startswith("celery-task-meta-")),
    ("celery chord", lambda k: k.startswith(("celery-taskset-meta-", "chord-unlock"))),
]


def tracker_bytes(memory: dict[str, Any]) -> int:
    return sum(v["bytes"] for k, v in memory.items() if k.startswith("tracker"))


class Bench:
    """What every scenario needs: the app, its engine, the Redis databases, the workers and the meters."""

    def __init__(
        self,
        app: Celery,
        workers: Workers,
        r_results: redis.Redis,
        r_broker: redis.Redis,
        profiler: Profiler | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.app = app
        self.engine = wfcelery.install(app)
        self.workers = workers
        self.r = r_results
        self.r_broker = r_broker
        self.meter = Meter(workers, r_results)
        backend = app.backend
        self.waiter = Waiter(
            r_results, lambda t: backend.get_key_for_task(t).decode(), self.engine.tracker.keys.run
        )
        self.profiler = profiler
        self.log = log
        self.noop = app.tasks["bench.noop"]
        self.stamp = app.tasks["bench.stamp"]

    @contextmanager
    def workers_with(self, extra: dict[str, Any]) -> Iterator[None]:
        """Run the block with the workers restarted with ``extra`` app configuration (then restored)."""
        before = self.workers.conf()
        self.workers.restart(self.app, {**before, **extra})
        try:
            yield
        finally:
            self.workers.restart(self.app, before)

    def reset(self) -> None:
        self.r.flushdb()
        drop_result_subscriptions(self.app)
        self.waiter.failures.clear()

    def measure(
        self, label: str, tasks: int, runs: int | None, submit: Submit, timeout: float, memory: bool = False
    ) -> dict[str, Any]:
        """Time one side end to end; with ``memory`` also attribute the Redis memory it left behind."""
        self.reset()
        base = used_memory(self.r)
        self.waiter.peak_memory = base
        subs_before = pubsub_state(self.r)
        before = self.meter.snapshot()
        items, check = submit()
        submitted = time.monotonic()
        try:
            end = self.waiter.wait(
                items, check, timeout, alive=self.workers.alive, busy=lambda: process_cpu(self.workers.pids())
            )
        except (TimeoutError, Stalled) as e:
            error = f"{type(e).__name__}: {e}"
            cause = self.workers.last_error()
            self.log(f"  {label}: FAILED {error}" + (f"; worker log: {cause}" if cause else ""))
            return {
                "tasks": tasks,
                "runs": runs,
                "tasks_per_s": None,
                "error": error,
                "worker_error": cause,
                "after_s": round(time.monotonic() - before.wall, 1),
                "failures": len(items),
            }
        after = self.meter.snapshot()
        elapsed = end - before.wall
        side: dict[str, Any] = {
            "tasks": tasks,
            "elapsed_s": round(elapsed, 3),
            "tasks_per_s": round(tasks / elapsed, 1),
            "submit_s": round(submitted - before.wall, 3),
        }
        if runs:
            side.update(
                runs=runs,
                runs_per_s=round(runs / elapsed, 1),
                submit_runs_per_s=round(runs / max(submitted - before.wall, 1e-9), 1),
            )
        side.update(Meter.per_task(before, after, tasks))
        side["peak_memory_delta_bytes"] = self.waiter.peak_memory - base
        drop_result_subscriptions(self.app)
        subs = pubsub_state(self.r)
        side["pubsub_subscriptions_added"] = subs["subscriptions"] - subs_before["subscriptions"]
        side["pubsub_buffer_bytes_added"] = subs["output_buffer_bytes"] - subs_before["output_buffer_bytes"]
        side["failures"] = len(self.waiter.failures)
        if self.waiter.failures:
            side["failure_examples"] = sorted(self.waiter.failures)[:5]
        if memory:
            side["memory"] = measure_memory(self.r, MEMORY_CATEGORIES)
        self.log(
            f"  {label}: {tasks} tasks in {elapsed:.2f} s = {tasks / elapsed:,.0f} tasks/s"
            + (f" ({runs / elapsed:,.1f} runs/s)" if runs else "")
            + (f"  FAILURES: {len(self.waiter.failures)}" if self.waiter.failures else "")
        )
        return side

    # -- the two sides' building blocks ----------------------------------------------------------------

    def submit_runs(self, wf: Workflow, count: int, executor: str | None = None) -> Submit:
        def submit() -> tuple[Sequence[str], Callable[[Sequence[str]], list[bool]]]:
            ids = [self.engine.submit(wf, executor=executor).id for _ in range(count)]
            return ids, self.waiter.runs_done

        return submit

    def submit_canvas(self, build: Callable[[], Any], count: int = 1) -> Submit:
        """Publish ``count`` canvases; each is done when the result its ``apply_async`` returned is ready
        (for a chain: its last task; for a chord: the body)."""

        def submit() -> tuple[Sequence[str], Callable[[Sequence[str]], list[bool]]]:
            ids = [build().apply_async().id for _ in range(count)]
            return ids, self.waiter.tasks_done

        return submit

    def submit_ignored(self, n: int) -> Submit:
        """``n`` no-op tasks with ``ignore_result``: the last one keeps its result (one key to wait for);
        done when that key is written and the broker holds no message of the queue, waiting or unacked."""

        def submit() -> tuple[Sequence[str], Callable[[Sequence[str]], list[bool]]]:
            sig = self.noop.s().set(ignore_result=True)
            group(sig.clone() for _ in range(n - 1)).apply_async()
            last = self.noop.apply_async(ignore_result=False).id
            queue = self.app.conf.task_default_queue

            def check(ids: Sequence[str]) -> list[bool]:
                done = self.waiter.tasks_done(ids)
                return [d and broker_drained(self.r_broker, queue) for d in done]

            return [last], check

        return submit

    def submit_hops(self, n: int) -> Submit:
        """One self-publishing chain of ``n`` ``bench.hop`` tasks (the fastest chain Celery can run)."""

        def submit() -> tuple[Sequence[str], Callable[[Sequence[str]], list[bool]]]:
            final_id = uuid.uuid4().hex
            self.app.tasks["bench.hop"].apply_async((n, final_id), ignore_result=True)
            return [final_id], self.waiter.tasks_done

        return submit


def broker_drained(r_broker: redis.Redis, queue: str) -> bool:
    """Nothing left in the Redis broker for ``queue``: no message waiting, none delivered and unacked (the
    workers ack late, after the task ran)."""
    pipe = r_broker.pipeline(transaction=True)
    pipe.llen(queue)
    pipe.hlen("unacked")
    waiting, unacked = pipe.execute()
    return not waiting and not unacked


def _timeout(tasks: int, floor: float = 120.0, rate: float = 40.0) -> float:
    return max(floor, tasks / rate)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


# -- workflows --------------------------------------------------------------------------------------------


def small_workflow(task: str = "bench.noop") -> Workflow:
    wf = Workflow("bench-small")
    wf.add("a", task)
    mids = [wf.add(f"b{i}", task, after=["a"]).name for i in range(SMALL_WIDTH)]
    wf.add("c", task, after=mids)
    return wf


def chain_workflow(n: int, task: str = "bench.noop") -> Workflow:
    wf = Workflow(f"bench-chain-{n}")
    wf.add("n0", task)
    for i in range(1, n):
        wf.add(f"n{i}", task, after=[f"n{i - 1}"])
    return wf


def wide_workflow(n: int, queue_type: str | None = None, join: bool = True) -> Workflow:
    wf = Workflow(f"bench-wide-{n}{'-' + queue_type if queue_type else ''}")
    opts = {"type": queue_type} if queue_type else {}
    names = [wf.add(f"p{i}", "bench.noop", **opts).name for i in range(n)]
    if join:
        wf.add("join", "bench.noop", after=names)
    return wf


# -- 1. ceiling -------------------------------------------------------------------------------------------


def ceiling(b: Bench, n: int) -> dict[str, Any]:
    """Two ceilings on the same workers: no-op tasks with Celery's result keys (a plain ``group``), and the
    same with ``ignore_result`` -- what a wfcelery node costs Celery, whose result the tracker keeps."""

    def submit() -> tuple[Sequence[str], Callable[[Sequence[str]], list[bool]]]:
        res = group(b.noop.s() for _ in range(n)).apply_async()
        return [r.id for r in res.results], b.waiter.tasks_done

    side = b.measure("celery group", n, None, submit, _timeout(n))
    lean = b.measure("celery group, ignore_result", n, None, b.submit_ignored(n), _timeout(n))
    return {
        "name": "ceiling",
        "title": f"Ceiling: {n:,} independent no-op tasks (plain Celery group; with and without results)",
        "params": {"tasks": n},
        "sides": {"celery": side, "celery_ignore_result": lean},
        "ratios": {"ignore_result_vs_results": _ratio(lean["tasks_per_s"], side["tasks_per_s"])},
    }


# -- 2. small workflows -----------------------------------------------------------------------------------


def small(b: Bench, runs: int, memory: bool = True) -> dict[str, Any]:
    tasks = runs * SMALL_TASKS
    noop = b.noop

    def canvas() -> Any:
        return chain(noop.s(), chord([noop.s() for _ in range(SMALL_WIDTH)], noop.s()))

    wf = b.measure("wfcelery", tasks, runs, b.submit_runs(small_workflow(), runs), _timeout(tasks), memory)
    cel = b.measure(
        "celery chain(a, chord(8), c)", tasks, runs, b.submit_canvas(canvas, runs), _timeout(tasks), memory
    )
    return {
        "name": "small",
        "title": f"Small workflows: {runs:,} runs of a -> {SMALL_WIDTH} parallel -> c",
        "params": {"runs": runs, "tasks": tasks},
        "sides": {"wfcelery": wf, "celery": cel},
        "ratios": {"tasks_per_s": _ratio(wf["tasks_per_s"], cel["tasks_per_s"])},
    }


# -- 2b. the translator: counters executor vs to_canvas vs hand-written canvas -------------------------------

#: Stages of the translator benchmark's second shape: 3 stages of 4 (stage -> stage needs a barrier).
STAGES, STAGE_WIDTH = 3, 4


def stages_workflow() -> Workflow:
    wf = Workflow("bench-stages")
    wf.stages(*[[wf.add(f"s{s}_{i}", "bench.noop").name for i in range(STAGE_WIDTH)] for s in range(STAGES)])
    return wf


def submit_translated(b: Bench, wf: Workflow, count: int) -> Submit:
    """``count`` raw ``to_canvas`` signatures (fresh ids each), published with plain ``apply_async``."""
    plan = compile_workflow(wf.validate(b.app))
    return b.submit_canvas(lambda: translate(plan, b.app).signature, count)


def canvas_executor_side(b: Bench, wf: Workflow, runs: int) -> dict[str, Any]:
    """The tracked canvas executor (``submit(executor="canvas")``) on the same runs. Also counts the result
    subscriptions and pending result objects this client holds right after publishing every run
    (CELERY-NOTES: publishing a chord subscribes to every header result); ``pubsub_subscriptions_added``
    counts the workers' (measured after the runs)."""
    tasks = runs * len(wf)
    inner = b.submit_runs(wf, runs, "canvas")
    held: dict[str, int] = {}

    def submit() -> tuple[Sequence[str], Callable[[Sequence[str]], list[bool]]]:
        out = inner()
        backend = b.app.backend
        consumer = getattr(backend, "result_consumer", None)
        held["client_subscriptions"] = len(getattr(consumer, "subscribed_to", None) or ())
        held["client_pending_results"] = sum(len(m) for m in getattr(backend, "_pending_results", ()))
        return out

    side = b.measure("wfcelery (canvas executor)", tasks, runs, submit, _timeout(tasks))
    side.update(held)
    return side


def translator(b: Bench, runs: int) -> dict[str, Any]:
    """a -> 8 -> c: the translator emits exactly the canvas a user writes by hand."""
    tasks = runs * SMALL_TASKS
    noop = b.noop
    wf_def = small_workflow()
    wf = b.measure("wfcelery (counters)", tasks, runs, b.submit_runs(wf_def, runs), _timeout(tasks))
    tracked = canvas_executor_side(b, wf_def, runs)
    raw = b.measure("to_canvas", tasks, runs, submit_translated(b, wf_def, runs), _timeout(tasks))
    cel = b.measure(
        "celery chain(a, chord(8), c)",
        tasks,
        runs,
        b.submit_canvas(
            lambda: chain(noop.s(), chord([noop.s() for _ in range(SMALL_WIDTH)], noop.s())), runs
        ),
        _timeout(tasks),
    )
    return {
        "name": "translator",
        "title": f"Executors on {runs:,} runs of a -> {SMALL_WIDTH} parallel -> c",
        "params": {"runs": runs, "tasks": tasks},
        "sides": {"wfcelery": wf, "canvas_executor": tracked, "to_canvas": raw, "celery": cel},
        "ratios": {
            "tasks_per_s": _ratio(wf["tasks_per_s"], cel["tasks_per_s"]),
            "canvas_executor_vs_counters": _ratio(tracked["tasks_per_s"], wf["tasks_per_s"]),
            "to_canvas_vs_celery": _ratio(raw["tasks_per_s"], cel["tasks_per_s"]),
        },
    }


def translator_stages(b: Bench, runs: int) -> dict[str, Any]:
    """3 stages of 4: to_canvas joins each stage in a celery.accumulate barrier (2 extra tasks a run: the
    stage-to-stage join and the end), the counters executor needs none."""
    wf_def = stages_workflow()
    tasks = runs * len(wf_def)
    wf = b.measure("wfcelery (counters)", tasks, runs, b.submit_runs(wf_def, runs), _timeout(tasks))
    tracked = canvas_executor_side(b, wf_def, runs)
    raw = b.measure("to_canvas", tasks, runs, submit_translated(b, wf_def, runs), _timeout(tasks))
    return {
        "name": "translator_stages",
        "title": f"Executors on {runs:,} runs of {STAGES} stages of {STAGE_WIDTH}",
        "params": {"runs": runs, "tasks": tasks, "barriers_per_run": STAGES},
        "sides": {"wfcelery": wf, "canvas_executor": tracked, "to_canvas": raw},
        "ratios": {
            "tasks_per_s": _ratio(wf["tasks_per_s"], raw["tasks_per_s"]),
            "canvas_executor_vs_counters": _ratio(tracked["tasks_per_s"], wf["tasks_per_s"]),
        },
    }


# -- 3. long chain ----------------------------------------------------------------------------------------


def long_chain(b: Bench, n: int, inline_depth: int | None = None) -> dict[str, Any]:
    """wfcelery's chain of ``n`` against plain ``chain`` and the reference, the fastest chain Celery can run
    (``bench.hop``: a no-op with ignore_result publishing its own successor). ``inline_depth``: run the
    wfcelery side again with workers restarted with ``wfcelery_inline_depth`` (inline continuation)."""
    noop = b.noop
    wf_def = chain_workflow(n)
    wf = b.measure("wfcelery", n, 1, b.submit_runs(wf_def, 1), _timeout(n, rate=10))
    ref = b.measure("celery self-publishing no-op (reference)", n, 1, b.submit_hops(n), _timeout(n, rate=10))
    cel = b.measure(
        "celery chain", n, 1, b.submit_canvas(lambda: chain(noop.s() for _ in range(n))), _timeout(n, rate=5)
    )
    sides = {"wfcelery": wf, "celery_reference": ref, "celery": cel}
    ratios = {
        "tasks_per_s": _ratio(wf["tasks_per_s"], cel["tasks_per_s"]),
        "vs_reference": _ratio(wf["tasks_per_s"], ref["tasks_per_s"]),
        "reference_vs_chain": _ratio(ref["tasks_per_s"], cel["tasks_per_s"]),
    }
    if inline_depth:
        with b.workers_with({"wfcelery_inline_depth": inline_depth}):
            inline = b.measure(
                f"wfcelery, wfcelery_inline_depth={inline_depth}",
                n,
                1,
                b.submit_runs(wf_def, 1),
                _timeout(n, rate=10),
            )
        inline["inline_depth"] = inline_depth
        # a wfcelery without the wfcelery_inline_depth setting ignores it: then say so
        inline["setting_known"] = "inline_depth" in getattr(Settings, "__dataclass_fields__", {})
        if not inline["setting_known"]:
            b.log("  note: this wfcelery has no wfcelery_inline_depth setting: the side ran without it")
        sides["wfcelery_inline"] = inline
        ratios["inline_vs_reference"] = _ratio(inline["tasks_per_s"], ref["tasks_per_s"])
        ratios["inline_vs_chain"] = _ratio(inline["tasks_per_s"], cel["tasks_per_s"])
    return {
        "name": "long_chain",
        "title": f"Long chain: one chain of {n:,} tasks",
        "params": {"tasks": n, "inline_depth": inline_depth},
        "sides": sides,
        "ratios": ratios,
    }


# -- 4. wide fan-out / fan-in -----------------------------------------------------------------------------


def wide(b: Bench, n: int) -> dict[str, Any]:
    noop = b.noop
    started = time.monotonic()
    wf_def = wide_workflow(n)
    build_s = time.monotonic() - started
    wf = b.measure("wfcelery", n + 1, 1, b.submit_runs(wf_def, 1), _timeout(n))
    wf["build_workflow_s"] = round(build_s, 3)
    cel = b.measure(
        "celery chord",
        n + 1,
        1,
        b.submit_canvas(lambda: chord([noop.s() for _ in range(n)], noop.s())),
        _timeout(n),
    )
    return {
        "name": "wide",
        "title": f"Wide fan-out/fan-in: {n:,} parallel tasks, then a join",
        "params": {"tasks": n + 1},
        "sides": {"wfcelery": wf, "celery": cel},
        "ratios": {"tasks_per_s": _ratio(wf["tasks_per_s"], cel["tasks_per_s"])},
    }


def map_fanout(b: Bench, n: int) -> dict[str, Any]:
    """A map over a list known only at run time vs the chord users build today inside a task."""
    wf_def = Workflow("bench-map")
    wf_def.add("listing", "bench.listing", args=[n])
    wf_def.add("each", "bench.noop", map="listing", max_map=n)
    wf_def.add("join", "bench.noop", after="each")
    wf = b.measure("wfcelery map", n + 2, 1, b.submit_runs(wf_def, 1), _timeout(n), memory=True)
    fanout = b.app.tasks["bench.dynamic_chord"]

    def submit() -> tuple[Sequence[str], Callable[[Sequence[str]], list[bool]]]:
        body_id = uuid.uuid4().hex
        fanout.apply_async((n, body_id))
        return [body_id], b.waiter.tasks_done

    cel = b.measure("celery dynamic chord", n + 2, 1, submit, _timeout(n), memory=True)
    for side in (wf, cel):
        if side.get("memory"):
            kept = sum(v["bytes"] for v in side["memory"].values())
            side["redis_bytes_per_instance"] = round(kept / n, 1)
    return {
        "name": "map",
        "title": f"Dynamic fan-out: a map of {n:,} vs a chord of {n:,} built at run time by a task",
        "params": {"tasks": n + 2},
        "sides": {"wfcelery": wf, "celery": cel},
        "ratios": {
            "tasks_per_s": _ratio(wf["tasks_per_s"], cel["tasks_per_s"]),
            "redis_bytes_per_instance": _ratio(
                wf.get("redis_bytes_per_instance"), cel.get("redis_bytes_per_instance")
            ),
        },
    }


# -- 5. scale ---------------------------------------------------------------------------------------------


def scale(b: Bench, runs: int) -> dict[str, Any]:
    tasks = runs * SMALL_TASKS
    wf = b.measure(
        "wfcelery", tasks, runs, b.submit_runs(small_workflow(), runs), _timeout(tasks), memory=True
    )
    title = (
        f"Scale: {tasks:,} tasks over {runs:,} runs (wfcelery), projected to {PROJECT_TASKS:,} tasks / "
        f"{PROJECT_RUNS:,} runs"
    )
    if "memory" not in wf:
        return {
            "name": "scale",
            "title": title,
            "params": {"runs": runs, "tasks": tasks},
            "sides": {"wfcelery": wf},
            "projection": None,
        }
    mem = wf["memory"]
    tracker, results = tracker_bytes(mem), mem["celery results"]["bytes"]
    projection = {
        "tracker_bytes_per_task": round(tracker / tasks, 1),
        "tracker_bytes_per_run": round(tracker / runs, 1),
        "result_bytes_per_task": round(results / tasks, 1),
        "total_bytes_per_task": round((tracker + results) / tasks, 1),
        "projected_tracker_bytes": int(tracker / runs * PROJECT_RUNS),
        "projected_result_bytes": int(results / tasks * PROJECT_TASKS),
    }
    projection["projected_total_bytes"] = (
        projection["projected_tracker_bytes"] + projection["projected_result_bytes"]
    )
    lean = {"wfcelery_celery_results": False}
    projection["celery_results_kept"] = b.engine.settings.celery_results
    projection["note_without_result_keys"] = (
        f"with {lean}, the projection is the tracker's share alone"
        if projection["celery_results_kept"]
        else "result keys are off"
    )
    projection["minutes_for_1M_tasks"] = round(PROJECT_TASKS / wf["tasks_per_s"] / 60, 1)
    return {
        "name": "scale",
        "title": title,
        "params": {"runs": runs, "tasks": tasks},
        "sides": {"wfcelery": wf},
        "projection": projection,
    }


# -- 6. latency -------------------------------------------------------------------------------------------


def _latency_stats(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    if not ms:
        return {"samples": 0}
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return {
        "samples": len(ms),
        "median_ms": round(statistics.median(ms), 2),
        "p99_ms": round(p99, 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "max_ms": round(ms[-1], 2),
    }


def latency(b: Bench, n: int, inline_depth: int | None = None) -> dict[str, Any]:
    """Parent end -> child start along a chain of ``n``: wfcelery, plain ``chain``, and with ``inline_depth``
    the wfcelery side again on workers restarted with ``wfcelery_inline_depth`` (one hop in
    ``inline_depth + 1`` still goes through the broker)."""
    stamp = b.stamp
    holder: dict[str, Any] = {}

    def wf_submit() -> tuple[Sequence[str], Callable[[Sequence[str]], list[bool]]]:
        run = b.engine.submit(chain_workflow(n, "bench.stamp"))
        holder["run"] = run
        return [run.id], b.waiter.runs_done

    def cel_submit() -> tuple[Sequence[str], Callable[[Sequence[str]], list[bool]]]:
        res = chain(stamp.s() for _ in range(n)).apply_async()
        holder["res"] = res
        return [res.id], b.waiter.tasks_done

    def run_latencies() -> dict[str, float]:  # each node's result: [its end, its start - its parent's end]
        return _latency_stats([v[1] for v in holder["run"].results().values() if v and v[1] is not None])

    wf = b.measure("wfcelery", n, 1, wf_submit, _timeout(n, rate=5))
    if not wf.get("error"):
        wf.update(run_latencies())
    cel = b.measure("celery chain", n, 1, cel_submit, _timeout(n, rate=5))
    values, node = [], None if cel.get("error") else holder["res"]
    while node is not None:
        value = node.result
        if value and value[1] is not None:
            values.append(value[1])
        node = node.parent
    cel.update(_latency_stats(values))
    b.log(
        f"  latency parent end -> child start: wfcelery median {wf.get('median_ms')} ms p99 "
        f"{wf.get('p99_ms')} ms; celery median {cel.get('median_ms')} ms p99 {cel.get('p99_ms')} ms"
    )
    sides = {"wfcelery": wf, "celery": cel}
    if inline_depth:
        with b.workers_with({"wfcelery_inline_depth": inline_depth}):
            inline = b.measure(
                f"wfcelery, wfcelery_inline_depth={inline_depth}", n, 1, wf_submit, _timeout(n, rate=5)
            )
        if not inline.get("error"):
            inline.update(run_latencies())
        inline["inline_depth"] = inline_depth
        sides["wfcelery_inline"] = inline
        b.log(
            f"  with wfcelery_inline_depth={inline_depth}: median {inline.get('median_ms')} ms p99 "
            f"{inline.get('p99_ms')} ms"
        )
    return {
        "name": "latency",
        "title": f"Latency: parent end -> child start, chain of {n:,} tasks",
        "params": {"tasks": n, "inline_depth": inline_depth},
        "sides": sides,
        "ratios": {
            "median_celery_over_wfcelery": _ratio(cel.get("median_ms", 0), wf.get("median_ms", 0)),
            "p99_celery_over_wfcelery": _ratio(cel.get("p99_ms", 0), wf.get("p99_ms", 0)),
        },
    }


# -- 7. control -------------------------------------------------------------------------------------------


def control(b: Bench, n: int) -> dict[str, Any]:
    """pause() / resume() / cancel() on a run whose ``n`` nodes are all queued (on a queue no worker
    consumes, so nothing moves underneath), and the plain Celery counterpart: revoking ``n`` task ids."""
    b.reset()
    wf_def = wide_workflow(n, queue_type=IDLE_QUEUE, join=False)
    timings: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        started = time.monotonic()
        out = fn()
        timings[name] = round(time.monotonic() - started, 3)
        return out

    run = timed("submit_s", lambda: b.engine.submit(wf_def))
    paused = timed("pause_s", run.pause)
    resumed = timed("resume_s", run.resume)
    cancelled = timed("cancel_s", run.cancel)
    checks = {
        "after_pause": paused.status.value,
        "after_resume": resumed.status.value,
        "after_cancel": cancelled.status.value,
    }
    timed("cleanup_s", run.cleanup)
    res = group(b.noop.s().set(queue=IDLE_QUEUE) for _ in range(n)).apply_async()
    ids = [r.id for r in res.results]
    drop_result_subscriptions(b.app)
    revoke = timed("revoke_s", lambda: b.app.control.revoke(ids))
    del revoke
    _purge(b.app, IDLE_QUEUE)
    wf_side = {k: timings[k] for k in ("submit_s", "pause_s", "resume_s", "cancel_s", "cleanup_s")}
    wf_side.update(checks)
    b.log(
        f"  control on {n:,} queued nodes: pause {timings['pause_s']:.3f} s,"
        f" resume {timings['resume_s']:.3f} s,"
        f" cancel {timings['cancel_s']:.3f} s; celery revoke of {n:,} ids {timings['revoke_s']:.3f} s"
    )
    ok = checks == {"after_pause": "PAUSED", "after_resume": "RUNNING", "after_cancel": "CANCELLED"}
    return {
        "name": "control",
        "title": f"Control: pause / resume / cancel on a {n:,}-node run (all queued)",
        "params": {"nodes": n},
        "sides": {"wfcelery": wf_side, "celery": {"revoke_s": timings["revoke_s"]}},
        "ok": ok,
    }


def _purge(app: Celery, queue: str) -> None:
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(queue)


# -- profile ----------------------------------------------------------------------------------------------


def profile(b: Bench, runs: int) -> dict[str, Any]:
    """Small workflows again with py-spy on the worker processes, one profile per side."""
    if b.profiler is None or not b.profiler.available():
        return {"name": "profile", "skipped": "py-spy not available (pip install py-spy)"}
    tasks = runs * SMALL_TASKS
    noop = b.noop
    out: dict[str, Any] = {
        "name": "profile",
        "title": f"py-spy on the worker: {runs} small workflows per side",
        "params": {"runs": runs},
        "sides": {},
    }
    sides = {
        "wfcelery": b.submit_runs(small_workflow(), runs),
        "celery": b.submit_canvas(
            lambda: chain(noop.s(), chord([noop.s() for _ in range(SMALL_WIDTH)], noop.s())), runs
        ),
    }
    for name, submit in sides.items():
        with b.profiler.record(b.workers.main_pids(), f"small-{name}") as prof:
            side = b.measure(f"{name} (profiled)", tasks, runs, submit, _timeout(tasks))
        side["profile"] = prof
        out["sides"][name] = side
    return out
