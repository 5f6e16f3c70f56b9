"""doctor's judgement of the tracker's replication topology (``INFO replication`` as ``topology()`` reads it;
the same check against a real Sentinel group: tests/integration/test_sentinel.py)."""

from __future__ import annotations

from typing import Any

from wfcelery.cli.doctor import MAX_REPLICA_LAG, judge_replication


def replica(lag: int = 0, state: str = "online") -> dict[str, Any]:
    return {"address": "10.0.0.2:6379", "state": state, "lag": lag}


def test_a_master_with_a_replica_in_step_is_healthy() -> None:
    found = judge_replication({"role": "master", "replicas": [replica(1)]}, sentinel=True)
    assert found.ok is True
    assert found.message == "tracker Redis role master, replicas: 10.0.0.2:6379 online lag 1 s"


def test_a_single_redis_is_reported_not_faulted() -> None:
    found = judge_replication({"role": "master", "replicas": []}, sentinel=False)
    assert found.ok is True
    assert "a single Redis" in found.message


def test_behind_sentinel_a_master_with_no_replica_is_a_problem() -> None:
    found = judge_replication({"role": "master", "replicas": []}, sentinel=True)
    assert found.ok is False
    assert "nothing to fail over to" in found.message
    assert "replicaof" in found.fix


def test_a_lagging_or_offline_replica_is_a_problem() -> None:
    for bad in (replica(MAX_REPLICA_LAG), replica(0, "wait_bgsave")):
        found = judge_replication({"role": "master", "replicas": [replica(0), bad]}, sentinel=False)
        assert found.ok is False
        assert "1 replica(s) behind" in found.message


def test_a_replica_as_the_tracker_is_a_problem() -> None:
    found = judge_replication({"role": "slave", "replicas": []}, sentinel=False)
    assert found.ok is False
    assert "a replica refuses the tracker's writes" in found.message
    assert "sentinel://" in found.fix
