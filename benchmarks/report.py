"""The targets and the markdown report of one run, computed from its results dict (tables: tables.py,
the explanations of missed targets: explain.py, the chart: chart.py)."""

from __future__ import annotations

from typing import Any

from .explain import gaps_md
from .tables import (
    EXTRA_SIDES,
    GB,
    control_md,
    cost_md,
    failures,
    latency_md,
    memory_md,
    num,
    profile_md,
    ratio_of,
    scenario,
    side,
    table,
    times,
)


def targets(out: dict[str, Any]) -> list[dict[str, Any]]:
    """Each performance goal this run measured: value, target, met, and by how much it is missed."""
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

    small, ceiling = scenario(out, "small"), side(out, "ceiling", "celery")
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
        lean = side(out, "ceiling", "celery_ignore_result")
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
    chain = scenario(out, "long_chain")
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
    for side_name, prefix in (("wfcelery", "latency"), ("wfcelery_inline", "latency_inline")):
        lat = side(out, "latency", side_name)
        if lat is None:
            continue
        setting = f" wfcelery_inline_depth={lat['inline_depth']}," if "inline_depth" in lat else ""
        for key, goal in (("median", 1.0), ("p99", 3.0)):
            text = f"Latency parent end -> child start,{setting} {key} (ms)"
            add(f"{prefix}_{key}", text, lat.get(f"{key}_ms"), "<=", goal, "ms")
    scale = scenario(out, "scale")
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
    lines += cost_md(out)
    lines += memory_md(out)
    lines += latency_md(out)
    lines += control_md(out)
    lines += profile_md(out)
    lines += gaps_md(out)
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
        *table(["target", "measured", "target", "status", "CPU-time estimate"], rows),
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
                    num(sides.get(k, {}).get("tasks_per_s"))
                    for k in ("wfcelery", "canvas_executor", "to_canvas", "celery")
                ),
                failures(*sides.values()),
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
        *table(header, rows),
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
                num(wf.get("tasks_per_s")),
                num(cel.get("tasks_per_s")),
                f"{ratio:.2f}x" if ratio else "-",
                num(wf.get("runs_per_s"), 1),
                num(cel.get("runs_per_s"), 1),
                num(wf.get("submit_runs_per_s"), 1) if "submit_runs_per_s" in wf else "-",
                failures(wf, cel),
            ]
        )
        for extra, d in sc["sides"].items():
            if extra in ("wfcelery", "celery"):
                continue
            label = EXTRA_SIDES.get(extra, extra)
            wf_col = extra.startswith("wfcelery")
            vs = ratio_of(d.get("tasks_per_s"), cel.get("tasks_per_s")) if wf_col else None
            rows.append(
                [
                    f"... {label}",
                    num(d.get("tasks_per_s")) if wf_col else "",
                    "" if wf_col else num(d.get("tasks_per_s")),
                    f"{vs:.2f}x" if vs else "",
                    "",
                    "",
                    "",
                    failures(d),
                ]
            )
    lines = [
        "## Throughput (end to end: first submit to last completion)",
        "",
        *table(
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
    chain = scenario(out, "long_chain")
    if chain and "vs_reference" in chain.get("ratios", {}):
        r = chain["ratios"]
        text = (
            f"Long chain: wfcelery is {times(r.get('vs_reference'))} the fastest Celery chain and "
            f"{times(r.get('tasks_per_s'))} plain `chain`; the reference itself is "
            f"{times(r.get('reference_vs_chain'))} plain `chain`."
        )
        if "inline_vs_reference" in r:
            text += (
                f" With inline continuation: {times(r['inline_vs_reference'])} the reference, "
                f"{times(r.get('inline_vs_chain'))} plain `chain`."
            )
        lines += [text, ""]
    ceiling = scenario(out, "ceiling")
    if ceiling and "ignore_result_vs_results" in ceiling.get("ratios", {}):
        lines += [
            f"Ceilings: the no-op group with ignore_result runs "
            f"{times(ceiling['ratios']['ignore_result_vs_results'])} the one that keeps result keys.",
            "",
        ]
    for sc in out["scenarios"]:
        for name, d in sc.get("sides", {}).items():
            if d.get("error"):
                cause = d.get("worker_error") or ""
                lines += [
                    f"- **{sc['name']} / {name} failed**: {d['error']}"
                    + (f"; worker log: `{cause}`" if cause else "")
                ]
    return [*lines, ""]
