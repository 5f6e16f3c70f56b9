"""doctor's clock check, on replies as workers send them to ``wfcelery_clock``: the arithmetic alone (the
healthy path against real workers is in tests/integration/test_adoption.py)."""

from __future__ import annotations

from wfcelery.cli.doctor import MAX_CLOCK_SKEW, clock_finding

BEFORE, AFTER = 1_800_000_000.0, 1_800_000_000.5  # Redis's clock before the broadcast and after the replies


def test_a_worker_5_s_behind_is_named_with_its_skew() -> None:
    finding = clock_finding({"w1@a": {"time": BEFORE + 0.2}, "w2@b": {"time": BEFORE - 5.0}}, BEFORE, AFTER)
    assert finding.ok is False
    assert "w2@b -5.0 s" in finding.message
    assert "w1@a" not in finding.message  # read inside the window: no skew
    assert "NTP" in finding.fix


def test_a_worker_5_s_ahead_counts_from_the_last_redis_time() -> None:
    finding = clock_finding({"w1@a": {"time": AFTER + 5.0}}, BEFORE, AFTER)
    assert finding.ok is False
    assert "w1@a +5.0 s" in finding.message


def test_skews_up_to_the_limit_are_healthy() -> None:
    replies = {"w1@a": {"time": BEFORE - MAX_CLOCK_SKEW}, "w2@b": {"time": AFTER + MAX_CLOCK_SKEW}}
    finding = clock_finding(replies, BEFORE, AFTER)
    assert finding.ok is True
    assert finding.message == f"2 worker clocks within {MAX_CLOCK_SKEW:g} s of Redis"


def test_no_usable_reply_is_not_a_finding() -> None:
    finding = clock_finding({"old@a": {"error": "unknown command"}, "odd@b": "pong"}, BEFORE, AFTER)
    assert finding.ok is True
    assert "no worker answered wfcelery_clock" in finding.message
