"""OpenTelemetry traces from a real (in-thread) worker: one trace per run, its id the run id, a run span,
one span per node attempt under it, the task's own spans under those; and nothing imported without OTel.

Each case runs in a process of its own (``tracing_probe.py``): a tracer provider is set once per process,
and the no-import check needs a process that never loaded OpenTelemetry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.helpers import ROOT


def probe(mode: str, redis_url: str, uid: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tests.integration.tracing_probe", mode, redis_url, f"t{uid}"]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=100, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def test_one_trace_per_run_with_a_span_per_node_attempt(redis_url: str, uid: str) -> None:
    pytest.importorskip("opentelemetry.sdk")
    out = probe("traced", redis_url, uid)
    spans = out["spans"]
    for run in out["runs"]:
        mine = [s for s in spans if s["trace_id"] == run["id"]]  # the trace id is the run id
        (root,) = [s for s in mine if s["name"] == "wfcelery.run"]
        assert root["parent"] is None
        assert root["span_id"] == run["id"][16:]
        assert root["attributes"]["wfcelery.workflow"] == run["name"]
        assert root["status"] == ("UNSET" if run["status"] == "SUCCEEDED" else "ERROR")
        nodes = [s for s in mine if s["name"].startswith("wfcelery.node ")]
        attempts = {name: n["attempts"] for name, n in run["nodes"].items() if n["attempts"]}
        seen = {}
        for span in nodes:
            a = span["attributes"]
            assert span["parent"] == root["span_id"]
            assert a["wfcelery.run_id"] == run["id"]
            assert a["wfcelery.workflow"] == run["name"]
            seen.setdefault(a["wfcelery.node"], []).append(a["wfcelery.attempt"])
            assert "started" in span["events"]
            assert span["start"] <= span["end"]
            failed = run["nodes"][a["wfcelery.node"]]["status"] == "FAILED"
            assert span["status"] == ("ERROR" if failed else "UNSET")
            # the task's own span (opentelemetry-instrumentation-celery) nests under the attempt's
            tasks = [s for s in mine if s["parent"] == span["span_id"] and s["name"].startswith("run/")]
            assert len(tasks) == 1, span
        assert {n: sorted(v) for n, v in seen.items()} == {
            n: list(range(1, k + 1)) for n, k in attempts.items()
        }
    assert sorted(r["status"] for r in out["runs"]) == ["FAILED", "SUCCEEDED"]


def test_without_opentelemetry_set_up_wfcelery_imports_none_of_it(redis_url: str, uid: str) -> None:
    """OpenTelemetry's API installed, no SDK, no tracer provider: wfcelery loads none of it (redis-py 8
    loads part of the API by itself; the baseline is what redis, kombu and celery load alone)."""
    out = probe("plain", redis_url, uid)
    assert [r["status"] for r in out["runs"]] == ["SUCCEEDED", "FAILED"]
    assert "opentelemetry.trace" not in out["otel_modules"]
    assert set(out["otel_modules"]) - set(out["baseline"]) == set()


def test_without_opentelemetry_installed_runs_are_unchanged(redis_url: str, uid: str) -> None:
    out = probe("absent", redis_url, uid)
    assert [r["status"] for r in out["runs"]] == ["SUCCEEDED", "FAILED"]
