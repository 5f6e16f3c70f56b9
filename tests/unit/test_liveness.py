"""The reconciler's verdicts on heartbeats (wfcelery/worker/heartbeat.py): a worker is gone from its last
beat's age on Redis's clock, only while the reconciler's own Redis calls have succeeded for a while; a
restart under the same name shows in the boot time."""

from __future__ import annotations

import time

from wfcelery.tracker.records import WorkerBeat
from wfcelery.worker.heartbeat import GONE_BEATS, HEARTBEAT_BEATS, Liveness

NOW = 1_800_000_000_000


def beat(age_s: float, boot_ms: int = 1_000) -> WorkerBeat:
    return WorkerBeat(boot_ms, frozenset(), NOW - int(age_s * 1000))


def steady(interval: float = 0.01) -> Liveness:
    liveness = Liveness(interval)
    liveness.reached()
    time.sleep(interval + 1.01)  # Redis has answered for a beat and a second
    return liveness


def test_a_worker_is_gone_once_its_last_beat_is_gone_beats_old() -> None:
    liveness = steady(interval=0.02)
    interval = liveness.interval
    assert liveness.silent("w", beat(GONE_BEATS * interval - 0.01), NOW) is None
    why = liveness.silent("w", beat(GONE_BEATS * interval + 1), NOW)
    assert why == f"worker w is gone (no heartbeat for {GONE_BEATS * interval + 1:.0f} s)"


def test_no_verdict_on_ages_until_redis_has_answered_steadily() -> None:
    liveness = Liveness(0.01)
    old = beat(3600)
    assert liveness.silent("w", old, NOW) is None  # never reached Redis yet
    liveness.reached()
    assert liveness.silent("w", old, NOW) is None  # not for a beat and a second yet
    time.sleep(1.02)
    assert liveness.silent("w", old, NOW) is not None
    liveness.lost()  # a failed call: every beat may be old because nobody could beat
    liveness.reached()
    assert liveness.silent("w", old, NOW) is None


def test_sweep_by_hand_judges_at_once_after_a_ttl() -> None:
    liveness = Liveness(1.0, patient=False)
    assert liveness.silent("w", beat(HEARTBEAT_BEATS - 0.5), NOW) is None
    assert liveness.silent("w", beat(HEARTBEAT_BEATS + 0.5), NOW) is not None
    assert liveness.silent("w", None, NOW) == "worker w is gone (no heartbeat)"


def test_a_missing_key_is_acted_on_after_a_ttl_of_sightings() -> None:
    liveness = steady(interval=0.01)
    assert liveness.silent("w", None, NOW) is None  # first seen missing now
    time.sleep(HEARTBEAT_BEATS * 0.01 + 0.01)
    assert liveness.silent("w", None, NOW) == "worker w is gone (no heartbeat)"


def test_a_beat_without_its_time_is_alive_while_its_key_lives() -> None:
    liveness = steady()
    assert liveness.silent("w", WorkerBeat(1, frozenset()), NOW) is None


def test_a_restart_under_the_same_name_is_told_by_the_boot_time() -> None:
    assert Liveness.restarted("w", beat(0, boot_ms=5_000), started_ms=4_000) == (
        "worker w restarted since the node started"
    )
    assert Liveness.restarted("w", beat(0, boot_ms=3_000), started_ms=4_000) is None
    assert Liveness.restarted("w", None, started_ms=4_000) is None
