"""The worker-local outbox: durable, ordered, shared by a worker's processes, replayed until delivered."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from wfcelery.worker.outbox import Outbox, Report, ReportKind, with_retry


def _put_from_child(path: str, n: int) -> None:
    box = Outbox(path)
    for i in range(n):
        box.put(ReportKind.SUCCEEDED, {"task_id": f"child-{i}"})


def test_reports_survive_a_new_process_and_replay_in_order(tmp_path: Path) -> None:
    box = Outbox.for_worker(tmp_path, "celery@host/1")
    assert box.path.name == "celery@host_1.sqlite"
    box.put(ReportKind.SUCCEEDED, {"task_id": "a", "result": [1, {"z": 1, "a": 2}]})
    child = multiprocessing.get_context("fork").Process(target=_put_from_child, args=(str(box.path), 3))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    box.put(ReportKind.FAILED, {"task_id": "b"})

    reopened = Outbox(box.path)  # a restarted worker of the same name
    seen: list[str] = []
    assert reopened.replay(lambda r: seen.append(r.payload["task_id"])) == 5
    assert seen == ["a", "child-0", "child-1", "child-2", "b"]
    assert len(reopened) == 0
    assert reopened.replay(lambda r: seen.append("again")) == 0


def test_replay_stops_at_the_first_failure_and_keeps_the_rest(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "w.sqlite")
    for name in "abc":
        box.put(ReportKind.SUCCEEDED, {"task_id": name})
    delivered: list[str] = []

    def deliver(report: Report) -> None:
        if report.payload["task_id"] == "b":
            raise ConnectionError("tracker still down")
        delivered.append(report.payload["task_id"])

    assert box.replay(deliver) == 1
    assert [r.payload["task_id"] for r in box.pending()] == ["b", "c"]  # order kept for the next replay
    assert box.replay(lambda r: delivered.append(r.payload["task_id"])) == 2
    assert delivered == ["a", "b", "c"]


def test_payload_key_order_is_kept(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "w.sqlite")
    box.put(ReportKind.SUCCEEDED, {"z": 1, "a": 2, "m": {"y": 1, "b": 2}})
    (report,) = box.pending()
    assert list(report.payload) == ["z", "a", "m"]
    assert list(report.payload["m"]) == ["y", "b"]


def test_empty_outbox_creates_no_file(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "none.sqlite")
    assert box.pending() == []
    assert len(box) == 0
    assert not box.path.exists()


def test_with_retry_backs_off_then_gives_up() -> None:
    calls: list[float] = []

    def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ConnectionError("down")
        return "ok"

    assert with_retry(flaky, (ConnectionError,), budget=5, first_delay=0.01) == "ok"
    assert len(calls) == 3

    def down() -> None:
        raise ConnectionError("down")

    started = time.monotonic()
    with pytest.raises(ConnectionError):
        with_retry(down, (ConnectionError,), budget=0.3, first_delay=0.01, max_delay=0.05)
    assert 0.25 < time.monotonic() - started < 3
    with pytest.raises(ValueError, match="not retried"):
        with_retry(lambda: (_ for _ in ()).throw(ValueError("not retried")), (ConnectionError,), budget=5)


def test_check_result_refuses_what_the_tracker_cannot_keep() -> None:
    from wfcelery.definition.limits import Limits
    from wfcelery.worker.side import check_result

    assert check_result({"b": 1, "a": [1, 2]}, Limits()) == ('{"b": 1, "a": [1, 2]}', None)
    _, error = check_result({1, 2}, Limits())
    assert error is not None
    assert "cannot be stored as JSON (set)" in error["message"]
    deep: object = 1
    for _ in range(70):
        deep = [deep]
    _, error = check_result(deep, Limits())
    assert error is not None
    assert "nested more than 64 levels deep" in error["message"]
    _, error = check_result("x" * 2000, Limits(max_result_bytes=1000))
    assert error is not None
    assert "2,002 bytes as JSON, over the limit of 1,000" in error["message"]
