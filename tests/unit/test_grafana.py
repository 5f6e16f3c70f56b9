"""The Grafana dashboard in the repository uses only the metrics the exporter exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from wfcelery.metrics import families
from wfcelery.tracker.counters import Snapshot

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "wfcelery.json"


def test_every_metric_the_dashboard_queries_is_exposed() -> None:
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in board["templating"]["list"] if "definition" in v]
    used = {m for e in exprs for m in re.findall(r"wfcelery_[a-z_]+", e)}
    exposed = set()
    for family in families(Snapshot()):
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
        exposed |= {family.name + s for s in suffixes}
    exposed.add("wfcelery_tracker_up")
    assert used <= exposed, used - exposed
    assert len(board["panels"]) >= 8
