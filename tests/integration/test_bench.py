"""The benchmark harness still runs (``python -m benchmarks.run --quick``): every scenario, both sides, a
JSON report. No performance assertions -- numbers on a shared machine are noise; this only keeps the
harness alive."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = {
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
}


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_quick_benchmark_runs_every_scenario(tmp_path: Path) -> None:
    # A subprocess: the runner changes process-wide Celery state (task_join_will_block) and starts its own
    # Redis and workers; a hang here must not take the rest of the suite with it.
    # Its own session: on a timeout the runner's Redis server and worker processes are killed with it.
    runner = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--profile", "off", "--out", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = runner.communicate(timeout=400)
    except subprocess.TimeoutExpired:
        os.killpg(runner.pid, signal.SIGKILL)
        stdout, stderr = runner.communicate()
        pytest.fail(f"the quick benchmark did not finish within 400 s:\n{stdout[-3000:]}{stderr[-3000:]}")
    assert runner.returncode == 0, stdout[-3000:] + stderr[-3000:]

    [report_json] = tmp_path.glob("*-quick.json")
    report = json.loads(report_json.read_text())
    assert report["mode"] == "quick"
    assert report["settings"]["pool"]
    assert report["settings"]["concurrency"] >= 1
    by_name = {s["name"]: s for s in report["scenarios"]}
    assert set(by_name) == SCENARIOS

    for name, scenario in by_name.items():
        if name == "control":
            continue
        for side, data in scenario["sides"].items():
            assert not data.get("error"), f"{name}/{side}: {data.get('error')} ({data.get('worker_error')})"
            assert data["failures"] == 0, f"{name}/{side}: {data.get('failure_examples')}"
            assert data["tasks_per_s"] > 0, f"{name}/{side}"
        expected = {
            "ceiling": {"celery", "celery_ignore_result"},
            "long_chain": {"wfcelery", "celery_reference", "celery"},
            "scale": {"wfcelery"},
            "translator": {"wfcelery", "canvas_executor", "to_canvas", "celery"},
            "translator_stages": {"wfcelery", "canvas_executor", "to_canvas"},
        }.get(name, {"wfcelery", "celery"})
        assert set(scenario["sides"]) == expected, name

    control = by_name["control"]
    assert control["ok"], control["sides"]["wfcelery"]
    assert control["sides"]["wfcelery"]["pause_s"] > 0
    assert control["sides"]["wfcelery"]["resume_s"] > 0

    memory = by_name["scale"]["projection"]
    assert memory["tracker_bytes_per_task"] > 0
    assert memory["result_bytes_per_task"] >= 0
    assert by_name["latency"]["sides"]["wfcelery"]["samples"] == report["sizes"]["latency"] - 1
    assert {t["id"] for t in report["targets"]} == {
        "small_vs_celery",
        "small_vs_ceiling",
        "small_vs_ignore_result_ceiling",
        "long_chain",
        "long_chain_vs_reference",
        "latency_median",
        "latency_p99",
        "tracker_bytes",
        "projected_memory",
    }

    markdown = report_json.with_suffix(".md").read_text()
    assert "## Targets" in markdown
    assert "## Throughput" in markdown
    assert "fastest Celery chain" in markdown  # the long chain's reference row and its ratios
    assert "## Executors: counters vs to_canvas" in markdown
    assert "pool=" in stdout  # the settings are printed with the results
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert report_json.with_suffix(".png").stat().st_size > 0
