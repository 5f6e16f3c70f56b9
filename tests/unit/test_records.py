"""The stored formats (records.py): each one's encoder and decoder agree, and match what Lua writes."""

from __future__ import annotations

from wfcelery.tracker.records import (
    DroppedMark,
    Event,
    GateEntry,
    NodeRecord,
    RunKeyClaim,
    RunRecord,
    WorkerBeat,
    canvas_field,
    canvas_ids,
    canvas_value,
    dropped_field,
    kwargs_repr,
    message_headers,
    new_run,
    remaining_field,
    remaining_nodes,
)
from wfcelery.tracker.states import RunStatus


def test_node_record_round_trip_and_the_pending_default() -> None:
    node = NodeRecord("R", 2, 3, 15, None, "1")
    assert node.encode() == "R|2|3|15||1"
    assert NodeRecord.decode(node.encode()) == node
    assert NodeRecord("Q").encode() == "Q|0|0|||"  # what submit writes for a root
    assert NodeRecord.decode(None) == NodeRecord("P", 0, 0, None, None, "")  # no field: PENDING
    assert NodeRecord.decode("S|0|1|0|7|2") == NodeRecord("S", 0, 1, 0, 7, "2")  # 0 ms is a time


def test_event_lines_as_lua_writes_them() -> None:
    assert Event.parse("12 3 R") == Event(12, 3, "R", 0)
    assert Event.parse("40 run PAUSED 1") == Event(40, None, "PAUSED", 1)
    for line in ("12 3 R\n", "40 run PAUSED 1\n", "0 0 Q\n"):  # Lua omits epoch 0
        assert Event.parse(line.rstrip("\n")).encode() == line


def test_gate_entry_and_its_channel_message() -> None:
    entry = GateEntry.of(RunStatus.PAUSED, 2, 1_900_000_000)
    assert entry.encode() == "P2:1900000000"
    assert GateEntry.decode("P2:1900000000") == entry
    assert GateEntry.decode("R12:") == GateEntry("R", 12, 0)
    assert GateEntry.from_message("abc P2:1900000000 7") == ("abc", entry, 7)  # gate.lua's message
    halting = GateEntry.decode("H2147483648:0")
    assert (halting.letter, halting.status) == ("H", None)


def test_run_record_written_at_submit_reads_back() -> None:
    raw = new_run(
        name="etl",
        plan_digest="d1",
        total=3,
        created_ms=1000,
        params={"day": "x"},
        policy="continue",
        ttl=60,
        events_maxlen=100,
        on_failure={"task": "cb"},
    )
    assert "on_success" not in raw
    assert (raw["ttl"], raw["maxlen"]) == ("60", "100")
    stored = {k: str(v) for k, v in raw.items()} | {"w:host-a": "1", "finished": "2000"}
    record = RunRecord.decode(stored)
    assert (record.name, record.status, record.epoch, record.total, record.done) == (
        "etl",
        RunStatus.RUNNING,
        0,
        3,
        0,
    )
    assert (record.created_ms, record.finished_ms, record.started_ms) == (1000, 2000, None)
    assert (record.plan, record.params, record.policy) == ("d1", {"day": "x"}, "continue")
    assert record.workers == {"1": "host-a"}


def test_run_record_leaves_out_its_defaults_and_reads_them_back() -> None:
    raw = new_run(
        name="etl",
        plan_digest="d1",
        total=1,
        created_ms=1000,
        params={},
        policy="fail_fast",
        ttl=7 * 24 * 3600,
        events_maxlen=256 * 1024,
    )
    assert set(raw) == {"name", "status", "epoch", "total", "created", "plan", "done"}
    record = RunRecord.decode({k: str(v) for k, v in raw.items()})
    assert (record.params, record.policy, record.executor.value) == ({}, "fail_fast", "counters")


def test_message_headers() -> None:
    assert message_headers("r1", "load", "d1") == {"wf_run": "r1", "wf_node": "load", "wf_plan": "d1"}


def test_dropped_mark_round_trip_and_error_names_worker_and_task() -> None:
    mark = DroppedMark(2, 1_700_000_000_000, "w1@host", "unknown:shop.resize")
    assert DroppedMark.decode(mark.encode()) == mark
    error = mark.error()
    assert error["type"] == "NotRegistered"
    assert "'shop.resize' is not registered on worker w1@host (task_unknown)" in error["message"]
    rejected = DroppedMark(0, 1, "w2@host", "rejected").error()
    assert rejected["type"] == "MessageRejected"
    assert "w2@host" in rejected["message"]
    assert dropped_field(2) == "u:2"
    assert dropped_field("3:1") == "u:3:1"  # an instance of a mapped node


def test_worker_beat_round_trip_with_and_without_active_tasks() -> None:
    beat = WorkerBeat(1_700_000_000_000, frozenset({"r-1-0", "r-0-0"}), 1_700_000_005_000)
    assert beat.encode() == "1700000000000 @1700000005000,r-0-0,r-1-0"
    assert WorkerBeat.decode(beat.encode()) == beat
    idle = WorkerBeat(5, frozenset(), 7)
    assert idle.encode() == "5 @7"
    assert WorkerBeat.decode("5 @7") == idle


def test_worker_beat_without_its_time_and_as_a_reader_of_ids_alone_sees_it() -> None:
    """A value without the beat's time decodes (beat_ms None); a reader that splits ``<boot> <ids>``
    finds every task id intact beside one entry that is no task id."""
    assert WorkerBeat.decode("5 r-0-0,r-1-0") == WorkerBeat(5, frozenset({"r-0-0", "r-1-0"}))
    assert WorkerBeat.decode("5") == WorkerBeat(5, frozenset())
    boot, _, ids = WorkerBeat(5, frozenset({"r-0-0"}), 9).encode().partition(" ")
    assert (boot, set(ids.split(","))) == ("5", {"@9", "r-0-0"})


def test_canvas_executor_fields_as_written() -> None:
    record = {
        canvas_field(1, 0): canvas_value(["a", "b"]),
        canvas_field(2, 3): canvas_value(["c"]),
        remaining_field(2): "1,2,4",  # as replan.lua writes it
    }
    assert set(record) == {"x:1:0", "x:2:3", "r:2"}
    assert canvas_ids(record) == ["a", "b", "c"]
    assert canvas_ids(record, epoch=2) == ["c"]
    assert remaining_nodes(record["r:2"]) == {1, 2, 4}
    assert remaining_nodes("") == frozenset()
    assert remaining_nodes(None) is None


def test_run_key_claim_round_trip_and_the_flower_kwargs() -> None:
    claim = RunKeyClaim("0123456789abcdef0123456789abcdef", 1_764_621_712_518)
    assert claim.encode() == "0123456789abcdef0123456789abcdef|1764621712518"
    assert RunKeyClaim.decode(claim.encode()) == claim
    shown = kwargs_repr({"x": 1}, "r1", "load", {"run_key": "nightly:1"})
    assert shown == "{'x': 1, 'wf_run': 'r1', 'wf_node': 'load', 'wf_key': 'nightly:1'}"
    assert "wf_key" not in kwargs_repr({}, "r1", "load", {})
