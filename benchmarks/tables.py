"""The report's tables and their formatting: cost per task, Redis memory, latency, control and the profile,
each rendered from the results dict of one run."""

from __future__ import annotations

from typing import Any

GB = 1_000_000_000


def scenario(out: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((s for s in out.get("scenarios", []) if s.get("name") == name), None)


def side(out: dict[str, Any], name: str, side: str) -> dict[str, Any] | None:
    s = scenario(out, name)
    return s["sides"].get(side) if s else None


def num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    if isinstance(value, int | float):
        return f"{value:,.0f}" if abs(value) >= 100 or digits == 0 else f"{value:,.2f}"
    return str(value)


def times(value: float | None) -> str:
    return f"{value:.2f}x" if value else "-"


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


#: Labels of the sides beyond wfcelery / plain Celery (references and variants).
EXTRA_SIDES = {
    "celery_ignore_result": "same no-op group with ignore_result (the ceiling for nodes without result keys)",
    "celery_reference": "fastest Celery chain: a no-op with ignore_result that publishes its own successor",
    "wfcelery_inline": "wfcelery with inline continuation (wfcelery_inline_depth)",
}


def ratio_of(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def failures(*sides: dict[str, Any]) -> str:
    n = sum(s.get("failures", 0) for s in sides)
    return "0" if not n else f"**{n}**"


def cost_md(out: dict[str, Any]) -> list[str]:
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
                    num(d.get("lua_us_per_call"), 1),
                    calls,
                ]
            )
    if not rows:
        return []
    return [
        "## Cost per task (CPU milliseconds per task; Redis commands per task)",
        "",
        *table(
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


def memory_md(out: dict[str, Any]) -> list[str]:
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
                        num(v["keys"]),
                        num(v["bytes"]),
                        num(v["bytes"] / tasks, 1),
                        num(v["bytes"] / runs, 1),
                        num(v["memory_usage_bytes"] / tasks, 1),
                    ]
                )
            total = sum(v["bytes"] for v in mem.values())
            rows.append(
                [
                    sc["name"],
                    side,
                    "**all keys**",
                    num(sum(v["keys"] for v in mem.values())),
                    num(total),
                    num(total / tasks, 1),
                    num(total / runs, 1),
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
                        num(buf),
                        num(buf / tasks, 1),
                        num(buf / runs, 1),
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
    lines += table(
        ["scenario", "side", "keys", "count", "bytes", "B/task", "B/run", "MEMORY USAGE B/task"], rows
    )
    scale = scenario(out, "scale")
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


def latency_md(out: dict[str, Any]) -> list[str]:
    sc = scenario(out, "latency")
    if not sc:
        return []
    rows = [
        [side, d.get("samples"), d.get("median_ms"), d.get("p99_ms"), d.get("mean_ms"), d.get("max_ms")]
        for side, d in sc["sides"].items()
    ]
    return [
        f"## {sc['title']}",
        "",
        *table(["side", "samples", "median ms", "p99 ms", "mean ms", "max ms"], rows),
        "",
    ]


def control_md(out: dict[str, Any]) -> list[str]:
    sc = scenario(out, "control")
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
    return [f"## {sc['title']}", "", *table(["operation", "seconds"], rows), "", note, ""]


def profile_md(out: dict[str, Any]) -> list[str]:
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
        lines += cpu_split(d)
        for role, r in sorted(p.get("roles", {}).items(), key=lambda kv: kv[0] != "pool"):
            lines += [
                f"{side}, {role} process(es), {r['samples']:,} samples -- "
                "where they go, then the top frames:",
                "",
            ]
            lines += table(["% of samples", "bucket"], [[pct, b] for b, pct in r.get("buckets", [])])
            lines += [""]
            lines += table(["inclusive %", "frame"], [[pct, f"`{f}`"] for f, pct in r["inclusive"][:10]])
            lines += [""]
    return lines


def cpu_split(side: dict[str, Any]) -> list[str]:
    """A profiled side's worker CPU per task split by where its samples went: each bucket's share of all
    the worker processes' samples times the side's worker CPU per task (ms). py-spy samples the threads
    it sees running at a fixed rate; a thread waiting for the GIL, or in a socket read py-spy does not
    take for idle, counts too: a bucket's figure is its share of the workers' time, waits included."""
    roles = (side.get("profile") or {}).get("roles") or {}
    total = sum(r["samples"] for r in roles.values())
    ms = side.get("worker_cpu_ms_per_task")
    if not total or not ms:
        return []
    rows = []
    for role, r in sorted(roles.items(), key=lambda kv: kv[0] != "pool"):
        for bucket, pct in r.get("buckets", []):
            rows.append([role, bucket, f"{ms * r['samples'] / total * pct / 100:.2f}"])
    return [
        f"Worker CPU per task by where it goes ({ms} ms in all; samples' share times that):",
        "",
        *table(["process", "bucket", "ms per task (share x worker CPU)"], rows),
        "",
    ]
