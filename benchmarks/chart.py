"""The PNG chart of one run's ratios (matplotlib, from the bench extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .tables import scenario


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
    wide = scenario(out, "wide")
    if wide and wide["ratios"]["tasks_per_s"]:
        bars.append(("wide\nvs chord", wide["ratios"]["tasks_per_s"], None))
    lat = scenario(out, "latency")
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
