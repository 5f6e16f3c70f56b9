"""Targets, the markdown report and the PNG chart, all computed from the results dict of one run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

GB = 1_000_000_000

#: Why each target is missed and what would close it: from py-spy profiles of this harness, from timing the
#: hooks' pieces in isolation and from runs with --conf variants (2 vCPU shared with other work, 2026-11-25,
#: wfcelery at 089280c; see benchmarks/README.md "Findings"). Printed under "Gaps" only for the targets a run
#: misses.
GAP_NOTES: dict[str, str] = {
    "small_vs_celery": (
        "With Celery's result keys kept (the default) wfcelery and the plain canvas cost about the same CPU "
        "per task (see the CPU-time estimate), so the wall-clock ratio swings with other load on the "
        "machine. With --conf wfcelery_celery_results=false wfcelery needs ~15% less CPU per task than the "
        "canvas."
    ),
    "small_vs_ceiling": (
        "Why: the ceiling's messages are published by the client, its tasks only run; a wfcelery node is the "
        "same task plus two Lua calls in the pool process (start gate before the body, succeed after: ~0.08 "
        "and ~0.09 ms CPU each, Python + Redis, timed in isolation) and the publishing of the children it "
        "releases (~0.4 ms per message, ~0.15 ms of it the task-sent event). py-spy on the pool processes "
        "(see Profile): Celery's own result writes 31-36% (STARTED and SUCCESS: a GET, then SETEX + PUBLISH, "
        "each), publishing released children 22-31%, succeed 8-11%, start gate 7-10%. What closes it: not "
        "writing Celery's result keys for nodes -- the tracker keeps every result -- which "
        "wfcelery_celery_results=False does (ignore_result on node messages, which also skips STARTED): "
        "measured 1.01x the ceiling wall-clock and 1.12x by CPU (quick run, --conf "
        "wfcelery_celery_results=false). Making that the default, or documenting it as the setting for "
        "volume, closes the gap."
    ),
    "long_chain": (
        "Why: a chain is serial, so its rate is 1 / per-step latency. A wfcelery step is one full Celery "
        "task round trip (delivery, start gate, body, result writes, succeed, publish of the next node, "
        "ack): ~2-2.5 ms here whatever the chain's length, while plain Celery slows with length (every "
        "message carries the rest of the chain: 12 ms of worker CPU per task at 2,000). 10x plain chain "
        "needs a serial chain to run above this machine's parallel no-op ceiling (bound below), which no "
        "design that runs every node as its own Celery task can do here; against plain chain at 60-70 "
        "tasks/s (issue #6's machine) the same ~480 tasks/s is ~7x. What shortens the step: "
        "wfcelery_celery_results=False (drops 4 of ~8 Redis round trips per step), then one Lua call per "
        "node instead of two (check the gate in memory, record RUNNING together with the success or in a "
        "pipeline with the body's first Redis call), and no task-sent event for worker-published nodes."
    ),
    "tracker_bytes": (
        "Per 10-node run at 089280c: run hash ~430 B, nodes hash ~520 B, event log ~460 B, run index ~120 B "
        "(null results are no longer stored). What would close the rest: intern worker hostnames, which "
        "every node's entry repeats (-12 B per task here, more with real hostnames like "
        "celery@ip-10-0-0-1.ec2.internal); drop run fields derivable from the run id or the settings (chan "
        "is <prefix>:{<run>}:done, ttl, maxlen, policy: ~-8 B); the event log repeats each node's start and "
        "finish times that the nodes hash already holds: keep run transitions, failures and retries only, or "
        "expire the log soon after the run ends (up to -45 B)."
    ),
    "projected_memory": (
        "Celery's own result key per node (~380 B per task, kept result_expires = the run TTL, 7 days) is "
        "~70% of the projection and duplicates the tracker's results. wfcelery_celery_results=False leaves "
        "the tracker's share alone: 0.153 GB measured (quick run at 089280c)."
    ),
}

#: Explanations for worker errors a run may hit (matched against the worker log line of a failed side).
KNOWN_ERRORS: dict[str, str] = {
    "too many results to unpack": (
        "wfcelery bug: lua/succeed.lua releases a fan-in node with HMGET K_RESULTS unpack(parents); Lua's "
        "unpack fails past ~8,000 values, after the script has already recorded the parent's success and "
        "counted it (Redis does not roll scripts back), so the join is never released and the run stays "
        "RUNNING. Fetch the parents' results in chunks (or after release, from the worker)."
    ),
}


def _scenario(out: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((s for s in out.get("scenarios", []) if s.get("name") == name), None)


def _side(out: dict[str, Any], name: str, side: str) -> dict[str, Any] | None:
    s = _scenario(out, name)
    return s["sides"].get(side) if s else None


def targets(out: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue #6 that this run measured: value, target, met, and by how much it is missed."""
    found: list[dict[str, Any]] = []

    def add(key: str, text: str, value: float | None, op: str, target: float, unit: str = "x") -> None:
        if value is None:
            found.append(
                {
                    "id": key,
                    "text": text,
                    "value": None,
                    "op": op,
                    "target": target,
                    "unit": unit,
                    "met": False,
                    "score": None,
                    "miss": "not measured: a side failed (see its error)",
                }
            )
            return
        met = value >= target if op == ">=" else value <= target
        if op == ">=":
            miss = (
                f"short by {100 * (1 - value / target):.0f}% (needs {target / value:.2f}x)"
                if value
                else "no data"
            )
        else:
            miss = f"over by {100 * (value / target - 1):.0f}% (needs {value / target:.2f}x less)"
        score = value / target if op == ">=" else (target / value if value else float("inf"))
        found.append(
            {
                "id": key,
                "text": text,
                "value": value,
                "op": op,
                "target": target,
                "unit": unit,
                "met": met,
                "score": round(score, 3),
                "miss": None if met else miss,
            }
        )

    small, ceiling = _scenario(out, "small"), _side(out, "ceiling", "celery")
    if small:
        wf_side = small["sides"]["wfcelery"]
        add(
            "small_vs_celery",
            "Small workflows: wfcelery tasks/s vs plain canvas",
            small["ratios"]["tasks_per_s"],
            ">=",
            1.0,
        )
        _cpu_estimate(found, wf_side, small["sides"]["celery"])
        if ceiling:
            wf_rate, top = wf_side["tasks_per_s"], ceiling["tasks_per_s"]
            add(
                "small_vs_ceiling",
                "Small workflows: wfcelery tasks/s vs ceiling (no-op group)",
                round(wf_rate / top, 3) if wf_rate and top else None,
                ">=",
                0.9,
            )
            _cpu_estimate(found, wf_side, ceiling)
        lean = _side(out, "ceiling", "celery_ignore_result")
        if lean:
            wf_rate, top = wf_side["tasks_per_s"], lean["tasks_per_s"]
            add(
                "small_vs_ignore_result_ceiling",
                "Small workflows: wfcelery tasks/s vs ignore_result ceiling (no-op group, no result keys)",
                round(wf_rate / top, 3) if wf_rate and top else None,
                ">=",
                0.85,
            )
            _cpu_estimate(found, wf_side, lean)
    chain = _scenario(out, "long_chain")
    if chain:
        sides = chain["sides"]
        add(
            "long_chain",
            "Long chain: wfcelery tasks/s vs plain chain",
            chain["ratios"]["tasks_per_s"],
            ">=",
            10.0,
        )
        _cpu_estimate(found, sides["wfcelery"], sides["celery"])
        if "celery_reference" in sides:
            add(
                "long_chain_vs_reference",
                "Long chain: wfcelery tasks/s vs the fastest Celery chain (self-publishing no-op)",
                chain["ratios"].get("vs_reference"),
                ">=",
                0.9,
            )
            _cpu_estimate(found, sides["wfcelery"], sides["celery_reference"])
        if "wfcelery_inline" in sides:
            depth = sides["wfcelery_inline"].get("inline_depth")
            if sides["wfcelery_inline"].get("setting_known") is False:
                depth = f"{depth} (setting unknown to this wfcelery: no effect)"
            add(
                "long_chain_inline_vs_reference",
                f"Long chain, wfcelery_inline_depth={depth}: tasks/s vs the fastest Celery chain",
                chain["ratios"].get("inline_vs_reference"),
                ">=",
                0.9,
            )
            add(
                "long_chain_inline",
                f"Long chain, wfcelery_inline_depth={depth}: tasks/s vs plain chain",
                chain["ratios"].get("inline_vs_chain"),
                ">=",
                10.0,
            )
    lat = _side(out, "latency", "wfcelery")
    if lat is not None:
        add(
            "latency_median",
            "Latency parent end -> child start, median (ms)",
            lat.get("median_ms"),
            "<=",
            1.0,
            "ms",
        )
        add("latency_p99", "Latency parent end -> child start, p99 (ms)", lat.get("p99_ms"), "<=", 3.0, "ms")
    scale = _scenario(out, "scale")
    if scale:
        p = scale["projection"] or {}
        add(
            "tracker_bytes",
            "Tracker state per no-op task (bytes)",
            p.get("tracker_bytes_per_task"),
            "<=",
            150.0,
            "B",
        )
        add(
            "projected_memory",
            "Projected Redis for 1M tasks / 100k runs incl. result keys (GB)",
            round(p["projected_total_bytes"] / GB, 3) if p else None,
            "<=",
            0.5,
            "GB",
        )
    return found


def _cpu_estimate(found: list[dict[str, Any]], wf: dict[str, Any], other: dict[str, Any]) -> None:
    """The throughput ratio implied by total CPU per task (workers + Redis + client): steadier than wall-clock
    rates on a machine shared with other work, and what the ratio would be if the machine were CPU-bound."""
    a, b = wf.get("total_cpu_ms_per_task"), other.get("total_cpu_ms_per_task")
    if found and a and b:
        found[-1]["cpu_estimate"] = round(b / a, 3)


def throughput_missed(out: dict[str, Any]) -> bool:
    return any(
        not t["met"]
        for t in out.get("targets", [])
        if t["id"] in ("small_vs_celery", "small_vs_ceiling", "long_chain")
    )


# -- markdown ---------------------------------------------------------------------------------------------


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    if isinstance(value, int | float):
        return f"{value:,.0f}" if abs(value) >= 100 or digits == 0 else f"{value:,.2f}"
    return str(value)


def _x(value: float | None) -> str:
    return f"{value:.2f}x" if value else "-"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def markdown(out: dict[str, Any], chart_name: str | None = None) -> str:
    m, s = out["machine"], out.get("settings", {})
    lines = [
        f"# wfcelery benchmarks: {out['date']} ({out['mode']})",
        "",
        (
            f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['platform']}, load average at start "
            f"{', '.join(f'{x:.2f}' for x in m['load_average_at_start'])}; Python {m['python']}, Celery "
            f"{m['celery']}, kombu {m['kombu']}, redis-py {m['redis_py']}, "
            f"Redis server {m.get('redis_server')}; "
            f"wfcelery at {m.get('wfcelery_commit') or 'unknown commit'}."
        ),
        "",
        "Settings, the same for both sides (one app, one Redis, the same worker subprocesses): "
        + ", ".join(f"`{k}={v}`" for k, v in s.items())
        + ".",
        "",
    ]
    lines += _targets_md(out)
    lines += _throughput_md(out)
    lines += _translator_md(out)
    lines += _cost_md(out)
    lines += _memory_md(out)
    lines += _latency_md(out)
    lines += _control_md(out)
    lines += _profile_md(out)
    lines += _gaps_md(out)
    if chart_name:
        lines += ["", f"![ratios]({chart_name})"]
    lines += ["", f"Total benchmark time {out.get('duration_s', '?')} s."]
    return "\n".join(lines) + "\n"


def _targets_md(out: dict[str, Any]) -> list[str]:
    rows = []
    for t in out.get("targets", []):
        unit = "x" if t["unit"] == "x" else f" {t['unit']}"
        rows.append(
            [
                t["text"],
                "-" if t["value"] is None else f"{t['value']:,}{unit}",
                f"{t['op']} {t['target']:,}{unit}",
                "met" if t["met"] else f"**missed**: {t['miss']}",
                f"{t['cpu_estimate']:.2f}x" if t.get("cpu_estimate") else "",
            ]
        )
    if not rows:
        return []
    return [
        "## Targets (ratios measured in this run)",
        "",
        *_table(["target", "measured", "target", "status", "CPU-time estimate"], rows),
        "",
        "CPU-time estimate: the same ratio computed from total CPU per task (workers + Redis + client), "
        "which "
        "other load on the machine disturbs less than wall-clock rates.",
        "",
    ]


def _translator_md(out: dict[str, Any]) -> list[str]:
    """The same shapes run by the counters executor, as the raw ``to_canvas`` signature and (where a user
    would write it by hand) as plain canvas."""
    rows = []
    for sc in out["scenarios"]:
        if sc["name"] not in ("translator", "translator_stages"):
            continue
        sides = sc["sides"]
        rows.append(
            [
                sc["title"],
                *(
                    _n(sides.get(k, {}).get("tasks_per_s"))
                    for k in ("wfcelery", "canvas_executor", "to_canvas", "celery")
                ),
                _fail(*sides.values()),
            ]
        )
    if not rows:
        return []
    header = [
        "shape",
        "counters tasks/s",
        "canvas executor tasks/s",
        "to_canvas tasks/s",
        "hand-written canvas tasks/s",
        "failures",
    ]
    return [
        "## Executors: counters vs to_canvas (the translator) vs hand-written canvas",
        "",
        *_table(header, rows),
        "",
        "Tasks/s count workflow nodes only (barriers are extra tasks on the canvas sides). The canvas "
        "executor is tracked like counters (same RunState) but publishes each segment as native canvas.",
        "",
    ]


def _throughput_md(out: dict[str, Any]) -> list[str]:
    rows = []
    for sc in out["scenarios"]:
        if sc["name"] not in ("ceiling", "small", "long_chain", "wide", "map", "scale", "latency"):
            continue
        wf, cel = sc["sides"].get("wfcelery", {}), sc["sides"].get("celery", {})
        ratio = sc.get("ratios", {}).get("tasks_per_s")
        rows.append(
            [
                sc["title"],
                _n(wf.get("tasks_per_s")),
                _n(cel.get("tasks_per_s")),
                f"{ratio:.2f}x" if ratio else "-",
                _n(wf.get("runs_per_s"), 1),
                _n(cel.get("runs_per_s"), 1),
                _n(wf.get("submit_runs_per_s"), 1) if "submit_runs_per_s" in wf else "-",
                _fail(wf, cel),
            ]
        )
        for extra, d in sc["sides"].items():
            if extra in ("wfcelery", "celery"):
                continue
            label = EXTRA_SIDES.get(extra, extra)
            wf_col = extra.startswith("wfcelery")
            vs = _ratio_of(d.get("tasks_per_s"), cel.get("tasks_per_s")) if wf_col else None
            rows.append(
                [
                    f"... {label}",
                    _n(d.get("tasks_per_s")) if wf_col else "",
                    "" if wf_col else _n(d.get("tasks_per_s")),
                    f"{vs:.2f}x" if vs else "",
                    "",
                    "",
                    "",
                    _fail(d),
                ]
            )
    lines = [
        "## Throughput (end to end: first submit to last completion)",
        "",
        *_table(
            [
                "scenario",
                "wfcelery tasks/s",
                "plain Celery tasks/s",
                "wfcelery / plain",
                "wfcelery runs/s",
                "plain runs/s",
                "wfcelery submits/s",
                "failures",
            ],
            rows,
        ),
        "",
    ]
    chain = _scenario(out, "long_chain")
    if chain and "vs_reference" in chain.get("ratios", {}):
        r = chain["ratios"]
        text = (
            f"Long chain: wfcelery is {_x(r.get('vs_reference'))} the fastest Celery chain and "
            f"{_x(r.get('tasks_per_s'))} plain `chain`; the reference itself is "
            f"{_x(r.get('reference_vs_chain'))} plain `chain`."
        )
        if "inline_vs_reference" in r:
            text += (
                f" With inline continuation: {_x(r['inline_vs_reference'])} the reference, "
                f"{_x(r.get('inline_vs_chain'))} plain `chain`."
            )
        lines += [text, ""]
    ceiling = _scenario(out, "ceiling")
    if ceiling and "ignore_result_vs_results" in ceiling.get("ratios", {}):
        lines += [
            f"Ceilings: the no-op group with ignore_result runs "
            f"{_x(ceiling['ratios']['ignore_result_vs_results'])} the one that keeps result keys.",
            "",
        ]
    for sc in out["scenarios"]:
        for side, d in sc.get("sides", {}).items():
            if d.get("error"):
                cause = d.get("worker_error") or ""
                known = next((v for k, v in KNOWN_ERRORS.items() if k in cause), None)
                lines += [
                    f"- **{sc['name']} / {side} failed**: {d['error']}"
                    + (f"; worker log: `{cause}`" if cause else "")
                    + (f". {known}" if known else "")
                ]
    return [*lines, ""]


#: Labels of the sides beyond wfcelery / plain Celery (references and variants).
EXTRA_SIDES = {
    "celery_ignore_result": "same no-op group with ignore_result (the ceiling for nodes without result keys)",
    "celery_reference": "fastest Celery chain: a no-op with ignore_result that publishes its own successor",
    "wfcelery_inline": "wfcelery with inline continuation (wfcelery_inline_depth)",
}


def _ratio_of(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _fail(*sides: dict[str, Any]) -> str:
    n = sum(s.get("failures", 0) for s in sides)
    return "0" if not n else f"**{n}**"


def _cost_md(out: dict[str, Any]) -> list[str]:
    rows = []
    for sc in out["scenarios"]:
        for side, d in sc.get("sides", {}).items():
            if "worker_cpu_ms_per_task" not in d:
                continue
            calls = ", ".join(f"{k} {v}" for k, v in list(d["redis_calls_per_task"].items())[:6])
            rows.append(
                [
                    sc["name"],
                    side,
                    d["worker_cpu_ms_per_task"],
                    d["redis_cpu_ms_per_task"],
                    d["client_cpu_ms_per_task"],
                    d.get("total_cpu_ms_per_task", ""),
                    d["redis_commands_per_task"],
                    _n(d.get("lua_us_per_call"), 1),
                    calls,
                ]
            )
    if not rows:
        return []
    return [
        "## Cost per task (CPU milliseconds per task; Redis commands per task)",
        "",
        *_table(
            [
                "scenario",
                "side",
                "worker CPU ms",
                "Redis CPU ms",
                "client CPU ms",
                "total CPU ms",
                "Redis cmds",
                "EVALSHA us/call",
                "top Redis calls",
            ],
            rows,
        ),
        "",
    ]


def _memory_md(out: dict[str, Any]) -> list[str]:
    rows = []
    for sc in out["scenarios"]:
        for side, d in sc.get("sides", {}).items():
            mem = d.get("memory")
            if not mem:
                continue
            tasks, runs = d["tasks"], d.get("runs") or 1
            for cat, v in mem.items():
                if not v["keys"]:
                    continue
                rows.append(
                    [
                        sc["name"],
                        side,
                        cat,
                        _n(v["keys"]),
                        _n(v["bytes"]),
                        _n(v["bytes"] / tasks, 1),
                        _n(v["bytes"] / runs, 1),
                        _n(v["memory_usage_bytes"] / tasks, 1),
                    ]
                )
            total = sum(v["bytes"] for v in mem.values())
            rows.append(
                [
                    sc["name"],
                    side,
                    "**all keys**",
                    _n(sum(v["keys"] for v in mem.values())),
                    _n(total),
                    _n(total / tasks, 1),
                    _n(total / runs, 1),
                    "",
                ]
            )
            if d.get("pubsub_subscriptions_added"):
                buf = d.get("pubsub_buffer_bytes_added", 0)
                rows.append(
                    [
                        sc["name"],
                        side,
                        "pub/sub left by the side (not keys)",
                        f"{d['pubsub_subscriptions_added']:,} subscriptions",
                        _n(buf),
                        _n(buf / tasks, 1),
                        _n(buf / runs, 1),
                        "",
                    ]
                )
    if not rows:
        return []
    lines = [
        "## Redis memory left after the runs",
        "",
        (
            "Bytes = drop in `used_memory` when the category's keys are deleted (values, names, dict and "
            "expiry entries); MEMORY USAGE = sampled `MEMORY USAGE` per task, as a cross-check. Pub/sub: "
            "result-channel subscriptions still held after the side (by the worker: Celery subscribes a "
            "worker that publishes a chord to every header result and never unsubscribes) and the output "
            "buffers Redis keeps for them."
        ),
        "",
    ]
    lines += _table(
        ["scenario", "side", "keys", "count", "bytes", "B/task", "B/run", "MEMORY USAGE B/task"], rows
    )
    scale = _scenario(out, "scale")
    if scale and scale["projection"]:
        p = scale["projection"]
        lines += [
            "",
            (
                f"Projection to 1M tasks / 100k runs: tracker {p['projected_tracker_bytes'] / GB:.3f} GB + "
                f"Celery result keys {p['projected_result_bytes'] / GB:.3f} GB = "
                f"**{p['projected_total_bytes'] / GB:.3f} GB**; at the measured rate 1M tasks take "
                f"{p['minutes_for_1M_tasks']} minutes on this machine. Peak `used_memory` during the scale "
                f"run was {scale['sides']['wfcelery']['peak_memory_delta_bytes'] / 1e6:.1f} MB above the "
                "start."
                + (
                    f" Without Celery's result keys (`wfcelery_celery_results=False`) the projection would "
                    f"be the tracker's {p['projected_tracker_bytes'] / GB:.3f} GB."
                    if p.get("celery_results_kept", True) and p["projected_result_bytes"]
                    else ""
                )
            ),
        ]
    return [*lines, ""]


def _latency_md(out: dict[str, Any]) -> list[str]:
    sc = _scenario(out, "latency")
    if not sc:
        return []
    rows = [
        [side, d.get("samples"), d.get("median_ms"), d.get("p99_ms"), d.get("mean_ms"), d.get("max_ms")]
        for side, d in sc["sides"].items()
    ]
    return [
        f"## {sc['title']}",
        "",
        *_table(["side", "samples", "median ms", "p99 ms", "mean ms", "max ms"], rows),
        "",
    ]


def _control_md(out: dict[str, Any]) -> list[str]:
    sc = _scenario(out, "control")
    if not sc:
        return []
    wf, cel = sc["sides"]["wfcelery"], sc["sides"]["celery"]
    rows = [[op, f"{wf[op + '_s']:.3f}"] for op in ("submit", "pause", "resume", "cancel", "cleanup")]
    rows.append(
        [f"plain Celery: `control.revoke()` of {sc['params']['nodes']:,} ids", f"{cel['revoke_s']:.3f}"]
    )
    note = (
        "states as expected (PAUSED, RUNNING, CANCELLED)"
        if sc.get("ok")
        else (f"**unexpected states**: {wf['after_pause']}, {wf['after_resume']}, {wf['after_cancel']}")
    )
    return [f"## {sc['title']}", "", *_table(["operation", "seconds"], rows), "", note, ""]


def _profile_md(out: dict[str, Any]) -> list[str]:
    prof = out.get("profile")
    if not prof:
        return []
    if prof.get("skipped"):
        return ["## Profile", "", f"Skipped: {prof['skipped']}", ""]
    lines = [
        f"## Profile: {prof['title']}",
        "",
        (
            "py-spy (non-blocking, ~100 Hz, idle excluded) on every worker process, split into the worker's "
            "main process and its pool processes; inclusive % of that role's samples, frames present in "
            "nearly every sample (the bootstrap) left out. A profiled run is slower than an unprofiled one."
        ),
        "",
    ]
    for side, d in prof["sides"].items():
        if d.get("error"):
            lines += [f"**{side}** failed: {d['error']}", ""]
            continue
        p = d.get("profile", {})
        lines += [
            (
                f"**{side}**: {d['tasks_per_s']:,.0f} tasks/s while profiled, worker CPU "
                f"{d['worker_cpu_ms_per_task']} ms/task, Redis CPU {d['redis_cpu_ms_per_task']} ms/task"
            ),
            "",
        ]
        for role, r in sorted(p.get("roles", {}).items(), key=lambda kv: kv[0] != "pool"):
            lines += [
                f"{side}, {role} process(es), {r['samples']:,} samples -- "
                "where they go, then the top frames:",
                "",
            ]
            lines += _table(["% of samples", "bucket"], [[pct, b] for b, pct in r.get("buckets", [])])
            lines += [""]
            lines += _table(["inclusive %", "frame"], [[pct, f"`{f}`"] for f, pct in r["inclusive"][:10]])
            lines += [""]
    return lines


def _gaps_md(out: dict[str, Any]) -> list[str]:
    missed = [t for t in out.get("targets", []) if not t["met"]]
    if not missed:
        return ["## Gaps", "", "Every target measured in this run was met.", ""]
    lines = ["## Gaps and what would close them", ""]
    for t in missed:
        value = "-" if t["value"] is None else f"{t['value']:,}"
        lines += [
            f"- **{t['text']}**: {value} vs {t['op']} {t['target']:,} -- {t['miss']}.",
            *([f"  {GAP_NOTES[t['id']]}"] if t["id"] in GAP_NOTES else []),
            *_bound(out, t["id"]),
        ]
    return [*lines, ""]


def _bound(out: dict[str, Any], target: str) -> list[str]:
    """What this machine allows at best, from the same run."""
    ceiling, chain = _side(out, "ceiling", "celery"), _side(out, "long_chain", "celery")
    if (
        target == "long_chain"
        and ceiling
        and chain
        and ceiling.get("tasks_per_s")
        and chain.get("tasks_per_s")
    ):
        bound = ceiling["tasks_per_s"] / chain["tasks_per_s"]
        return [f"  Bound in this run: the parallel no-op ceiling is {bound:.1f}x the plain chain's rate."]
    return []


# -- chart ------------------------------------------------------------------------------------------------


def chart_bars(out: dict[str, Any]) -> list[tuple[str, float, float | None]]:
    """(label, ratio, target ratio or None): every ratio is 'higher is better for wfcelery'."""
    bars: list[tuple[str, float, float | None]] = []
    by_id = {t["id"]: t for t in out.get("targets", [])}
    for key, label in (
        ("small_vs_celery", "small wf\nvs canvas"),
        ("small_vs_ceiling", "small wf\nvs ceiling"),
        ("long_chain", "long chain\nvs chain"),
    ):
        if key in by_id and by_id[key]["value"] is not None:
            bars.append((label, by_id[key]["value"], by_id[key]["target"]))
    wide = _scenario(out, "wide")
    if wide and wide["ratios"]["tasks_per_s"]:
        bars.append(("wide\nvs chord", wide["ratios"]["tasks_per_s"], None))
    lat = _scenario(out, "latency")
    if lat and lat["ratios"]["median_celery_over_wfcelery"]:
        bars.append(("latency\n(chain/wf)", lat["ratios"]["median_celery_over_wfcelery"], None))
    for key, label in (("tracker_bytes", "150 B /\ntracker B"), ("projected_memory", "0.5 GB /\nprojected")):
        if key in by_id and by_id[key]["score"]:
            bars.append((label, by_id[key]["score"], 1.0))
    return bars


def chart(out: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no chart")
        return False
    bars = chart_bars(out)
    if not bars:
        return False
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(bars)), 4.5))
    xs = range(len(bars))
    colors = ["#999999" if t is None else ("#2e8b57" if v >= t else "#c0392b") for _, v, t in bars]
    ax.bar(xs, [v for _, v, _ in bars], color=colors)
    for x, (_, v, t) in zip(xs, bars, strict=True):
        ax.annotate(f"{v:.2f}x", (x, v), ha="center", va="bottom", fontsize=8)
        if t is not None:
            ax.hlines(t, x - 0.4, x + 0.4, colors="black", linestyles="dashed", linewidth=1)
    ax.set_yscale("log")
    ax.axhline(1.0, color="#555555", linewidth=0.5)
    ax.set_xticks(list(xs), [label for label, _, _ in bars], fontsize=8)
    ax.set_ylabel("ratio (higher is better for wfcelery; dashed = target)")
    ax.set_title(
        f"wfcelery vs plain Celery, {out['date']} ({out['mode']}, {out['machine']['cpus']} CPUs)", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
