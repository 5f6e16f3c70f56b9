"""The web benchmark's check and report (``benchmarks/web_load.py``): every follower's event ids against the
run's log in the tracker, the API's latency figures, the markdown report."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

TARGET_P99_MS = 200.0
TARGET_RSS_GROWTH = 0.10
SAMPLE_EVERY = 5.0


def expected_ids(engine: Any, run_id: str) -> tuple[int, list[int]]:
    """(offset of the oldest kept line, the id of every transition the tracker's log of the run holds),
    computed as the server computes them (each id is the byte offset its line ends at)."""
    end, events = engine.run(run_id).events(0)
    position = end - sum(len(e.encode().encode()) for e in events)
    first, ids = position, []
    for event in events:
        position += len(event.encode().encode())
        ids.append(position)
    return first, ids


def check_followers(engine: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
    logs = {run: expected_ids(engine, run) for run in {r["run"] for r in records}}
    missed_followers, missed_events, duplicates, out_of_order, received = 0, 0, 0, 0, 0
    for rec in records:
        first, ids = logs[rec["run"]]
        seen = rec["ids"]
        received += len(seen)
        out_of_order += rec["out_of_order"]
        duplicates += len(seen) - len(set(seen))
        last = seen[-1] if seen else first
        missing = set(i for i in ids if i <= last) - set(seen)
        if missing:
            missed_followers += 1
            missed_events += len(missing)
    lags = sorted(x for rec in records for x in rec["lags"])
    return {
        "followers": len(records),
        "events_received": received,
        "followers_that_missed_an_event": missed_followers,
        "events_missed": missed_events,
        "events_duplicated": duplicates,
        "events_out_of_order": out_of_order,
        "followers_with_no_event": sum(1 for r in records if not r["ids"]),
        "runs_ended_early": len({r["run"] for r in records if r.get("ended")}),
        "reconnects": sum(r["reconnects"] for r in records),
        "drops": dict(Counter(d for r in records for d in r["drops"])),
        "refused": dict(sum((Counter(r["refused"]) for r in records), Counter())),
        "delivery_lag_ms": percentiles([x * 1000 for x in lags]),
    }


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None, "n": 0}
    values = sorted(values)

    def pick(q: float) -> float:
        return round(values[min(len(values) - 1, int(len(values) * q))], 1)

    return {
        "p50": pick(0.5),
        "p95": pick(0.95),
        "p99": pick(0.99),
        "max": round(values[-1], 1),
        "n": len(values),
    }


def api_figures(samples: list[list[Any]], seconds: float) -> dict[str, Any]:
    ok = [s for s in samples if s[3] == 200]
    minutes = []
    for m in range(math.ceil(seconds / 60)):
        part = [s[2] for s in ok if m * 60 <= s[0] < (m + 1) * 60]
        minutes.append({"minute": m + 1, **percentiles(part)})
    return {
        "requests": len(samples),
        "rate_per_s": round(len(samples) / seconds, 1),
        "errors": dict(Counter(str(s[3]) for s in samples if s[3] != 200)),
        "latency_ms": percentiles([s[2] for s in ok]),
        "by_kind": {k: percentiles([s[2] for s in ok if s[1] == k]) for k in sorted({s[1] for s in ok})},
        "by_minute": minutes,
    }


def baseline_line(base: dict[str, Any] | None) -> str:
    if base is None:
        return "No baseline (API load alone) was measured."
    lat = base["latency_ms"]
    return (
        f"Baseline, the same API load with no stream open, just before (same machine, same live runs; load "
        f"average {base['load_average_after']:.2f} at its end): p50 {lat['p50']} ms, p95 {lat['p95']} ms, "
        f"p99 {lat['p99']} ms, max {lat['max']} ms over {base['requests']} requests."
    )


def _yes(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def _targets(result: dict[str, Any]) -> list[str]:
    api, streams, rss, t = result["api"], result["followers"], result["server"], result["targets"]
    lat = api["latency_ms"]
    return [
        "| target | figure | |",
        "|---|---|---|",
        f"| API p99 < {TARGET_P99_MS:.0f} ms | p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms "
        f"over {api['requests']} requests ({api['rate_per_s']}/s; errors {api['errors'] or 'none'}) "
        f"| {_yes(t['api_p99'])} |",
        f"| no follower misses an event | {streams['followers_that_missed_an_event']} of "
        f"{streams['followers']} followers missed any; {streams['events_received']} events received, "
        f"{streams['events_missed']} missed, {streams['events_duplicated']} duplicated, "
        f"{streams['events_out_of_order']} out of order | {_yes(t['no_missed_event'])} |",
        f"| server RSS flat (end within {TARGET_RSS_GROWTH:.0%} of minute 1) | {rss['rss_mb_after_1_min']} "
        f"MB after 1 min, {rss['rss_mb_end']} MB at the end, peak {rss['rss_mb_peak']} MB "
        f"| {_yes(t['rss_flat'])} |",
    ]


def report(result: dict[str, Any]) -> str:
    api, streams, rss = result["api"], result["followers"], result["server"]
    cond, m, load = result["conditions"], result["machine"], result["load_average"]
    lag = streams["delivery_lag_ms"]
    lines = [
        f"# Web under load: {cond['followers']} event-stream followers + {cond['api_rate']} API requests/s "
        f"for {cond['seconds']:.0f} s",
        "",
        f"{result['date']}, commit {m['wfcelery_commit']}, {m['cpus']} CPUs ({m['cpu_model']}). Load average "
        f"at start {[round(x, 2) for x in m['load_average_at_start']]}, during the run "
        f"{load['min']:.2f}-{load['max']:.2f} (mean {load['mean']:.2f}). {cond['note']}",
        "",
        *_targets(result),
        "",
        f"Server CPU: {rss['cpu_percent_mean']}% of one core on average. Delivery lag (receipt minus the "
        f"transition's time): p50 {lag['p50']} ms, p99 {lag['p99']} ms. Reconnects {streams['reconnects']}, "
        f"refused {streams['refused'] or 'none'}. The {streams['followers']} followers took "
        f"{streams.get('seconds_to_connect_all')} s to connect and replay their runs.",
        "",
        baseline_line(result.get("api_without_streams")),
        "",
        "API latency by request (ms):",
        "",
        "| request | p50 | p95 | p99 | max | n |",
        "|---|---|---|---|---|---|",
        *(
            f"| `{k}` | {v['p50']} | {v['p95']} | {v['p99']} | {v['max']} | {v['n']} |"
            for k, v in api["by_kind"].items()
        ),
        "",
        "Per minute: " + ", ".join(f"{x['minute']}: p99 {x['p99']} ms" for x in api["by_minute"]) + ".",
        "",
        "Every minute, server RSS (MB) and the machine's 1-minute load average: "
        + ", ".join(
            f"{x['t']:.0f} s: {x['rss_mb']} MB, load {x.get('load_average', '?')}"
            for x in rss["samples"]
            if x["t"] % 60 < SAMPLE_EVERY
        )
        + ".",
    ]
    return "\n".join(lines) + "\n"
