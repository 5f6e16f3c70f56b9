"""Where the difference is, for each target a run misses: every sentence is built from that run's own figures
(CPU per task, rates, memory by key kind, the profile) and settings, so a report never explains today's run
with another day's findings."""

from __future__ import annotations

from typing import Any

from .tables import GB, scenario, side

#: For each small-workflow target: the scenario and side it compares wfcelery with, and how to name it.
SMALL_REFERENCES = {
    "small_vs_celery": ("small", "celery", "the plain canvas"),
    "small_vs_ceiling": ("ceiling", "celery", "the no-op ceiling"),
    "small_vs_ignore_result_ceiling": ("ceiling", "celery_ignore_result", "the ignore_result ceiling"),
}


def gaps_md(out: dict[str, Any]) -> list[str]:
    missed = [t for t in out.get("targets", []) if not t["met"]]
    if not missed:
        return ["## Gaps", "", "Every target measured in this run was met.", ""]
    lines = ["## Gaps: where the difference is, in this run's figures", ""]
    for t in missed:
        value = "-" if t["value"] is None else f"{t['value']:,}"
        lines.append(f"- **{t['text']}**: {value} vs {t['op']} {t['target']:,} -- {t['miss']}.")
        lines += [f"  {sentence}" for sentence in explain(out, t)]
    return [*lines, ""]


def explain(out: dict[str, Any], target: dict[str, Any]) -> list[str]:
    """Sentences about one missed target, from the run's figures; none when the run lacks them."""
    key = target["id"]
    if key in SMALL_REFERENCES:
        return _small(out, target, *SMALL_REFERENCES[key])
    if key.startswith("long_chain"):
        return _chain(out, target)
    if key.startswith("latency"):
        return _latency(out)
    if key == "tracker_bytes":
        return _tracker_bytes(out)
    if key == "projected_memory":
        return _projection(out)
    return []


def _cpu(d: dict[str, Any]) -> str:
    return (
        f"{d.get('worker_cpu_ms_per_task')} ms in the workers + {d.get('redis_cpu_ms_per_task')} ms Redis + "
        f"{d.get('client_cpu_ms_per_task')} ms client = {d.get('total_cpu_ms_per_task')} ms"
    )


def _machine(out: dict[str, Any]) -> str:
    m = out.get("machine", {})
    load = m.get("load_average_at_start") or [None]
    first = f"{load[0]:.2f}" if isinstance(load[0], int | float) else "unknown"
    return f"load average {first} at the start on {m.get('cpus')} CPUs"


def _settings_said(out: dict[str, Any]) -> list[str]:
    """What this run's settings add to every node, as the settings say."""
    s = out.get("settings", {})
    said = []
    if s.get("wfcelery_celery_results"):
        said.append("Celery's result backend also stored every node's result (wfcelery_celery_results=True).")
    if s.get("task_send_sent_event"):
        said.append("Every published node also sent a task-sent event (task_send_sent_event=True).")
    return said


def _small(out: dict[str, Any], target: dict[str, Any], name: str, other_side: str, label: str) -> list[str]:
    wf, other = side(out, "small", "wfcelery"), side(out, name, other_side)
    if not wf or not other:
        return []
    said = [f"CPU per task: wfcelery {_cpu(wf)}; {label} {_cpu(other)}."]
    shares = [d.get("worker_cpu_ms_per_task", 0) / (d.get("total_cpu_ms_per_task") or 1) for d in (wf, other)]
    said.append(f"Share of that CPU spent in the workers: wfcelery {shares[0]:.0%}, {label} {shares[1]:.0%}.")
    estimate = target.get("cpu_estimate")
    if estimate and estimate >= target["target"]:
        said.append(
            f"By CPU the ratio is {estimate:.2f}x, which meets the target: the difference is in wall-clock "
            f"time, not in CPU per task ({_machine(out)})."
        )
    elif estimate:
        said.append(f"By CPU the ratio is {estimate:.2f}x: the gap is in the cost per task.")
    said += _settings_said(out)
    said += _profile(out)
    return said


def _profile(out: dict[str, Any]) -> list[str]:
    prof = (out.get("profile") or {}).get("sides", {}).get("wfcelery", {}).get("profile", {})
    buckets = prof.get("roles", {}).get("pool", {}).get("buckets", [])
    if not buckets:
        return []
    top = ", ".join(f"{bucket} {pct}%" for bucket, pct in buckets[:4])
    return [f"Where wfcelery's pool processes spent their samples (py-spy, below): {top}."]


def _rate_ms(d: dict[str, Any] | None) -> float | None:
    return 1000 / d["tasks_per_s"] if d and d.get("tasks_per_s") else None


def _chain(out: dict[str, Any], target: dict[str, Any]) -> list[str]:
    sc = scenario(out, "long_chain")
    if not sc:
        return []
    sides = sc["sides"]
    wf, plain, ref = sides.get("wfcelery"), sides.get("celery"), sides.get("celery_reference")
    steps = {label: _rate_ms(d) for label, d in (("wfcelery", wf), ("plain chain", plain), ("fastest", ref))}
    shown = ", ".join(f"{label} {ms:.2f} ms" for label, ms in steps.items() if ms)
    said = [f"A chain runs one step at a time, so its rate is one step per step time: {shown} a step."]
    if wf and plain:
        said.append(
            f"Worker CPU per task: wfcelery {wf.get('worker_cpu_ms_per_task')} ms, plain chain "
            f"{plain.get('worker_cpu_ms_per_task')} ms (a plain chain message carries the rest of the chain)."
        )
    if ref and plain and ref.get("tasks_per_s") and plain.get("tasks_per_s") and target["unit"] == "x":
        best = ref["tasks_per_s"] / plain["tasks_per_s"]
        if target["id"] in ("long_chain", "long_chain_inline") and best < target["target"]:
            said.append(
                f"The fastest Celery chain itself is {best:.1f}x plain chain here: a design that runs every "
                f"node as its own Celery task cannot reach {target['target']:g}x on this machine."
            )
    ceiling = side(out, "ceiling", "celery")
    if target["id"] == "long_chain" and ceiling and plain and plain.get("tasks_per_s"):
        bound = ceiling["tasks_per_s"] / plain["tasks_per_s"]
        said.append(f"The parallel no-op ceiling is {bound:.1f}x the plain chain's rate in this run.")
    inline = sides.get("wfcelery_inline")
    if inline:
        said.append(
            f"With wfcelery_inline_depth={inline.get('inline_depth')}: {inline.get('tasks_per_s')} tasks/s, "
            f"{_rate_ms(inline) or 0:.2f} ms a step."
        )
    elif not out.get("settings", {}).get("wfcelery_inline_depth"):
        said.append("Inline continuation was off in this run (`--inline-depth N` measures it).")
    return said


def _latency(out: dict[str, Any]) -> list[str]:
    wf, plain = side(out, "latency", "wfcelery"), side(out, "latency", "celery")
    if not wf or not plain:
        return []
    said = [
        f"Plain chain in the same run: median {plain.get('median_ms')} ms, p99 {plain.get('p99_ms')} ms; "
        f"wfcelery median {wf.get('median_ms')} ms, p99 {wf.get('p99_ms')} ms ({_machine(out)})."
    ]
    if not out.get("settings", {}).get("wfcelery_inline_depth"):
        said.append("Inline continuation was off: every child went through the broker.")
    return said


def _tracker_bytes(out: dict[str, Any]) -> list[str]:
    wf = side(out, "scale", "wfcelery")
    mem = (wf or {}).get("memory") or {}
    tasks = (wf or {}).get("tasks")
    kinds = {k: v["bytes"] / tasks for k, v in mem.items() if k.startswith("tracker") and v["keys"] and tasks}
    if not kinds:
        return []
    shown = ", ".join(
        f"{k.removeprefix('tracker ')} {b:.1f} B" for k, b in sorted(kinds.items(), key=lambda kv: -kv[1])
    )
    return [f"Tracker bytes per task by kind of key in this run: {shown}."]


def _projection(out: dict[str, Any]) -> list[str]:
    sc = scenario(out, "scale")
    p = (sc or {}).get("projection") or {}
    if not p:
        return []
    total = p["projected_total_bytes"] or 1
    said = [
        f"Projected: tracker {p['projected_tracker_bytes'] / GB:.3f} GB + Celery result keys "
        f"{p['projected_result_bytes'] / GB:.3f} GB ({100 * p['projected_result_bytes'] / total:.0f}% of it)."
    ]
    if p["projected_result_bytes"] and out.get("settings", {}).get("wfcelery_celery_results"):
        said.append("Celery's result keys are there because wfcelery_celery_results=True in this run.")
    return said
