"""Run limits without Redis: the admission keys and run-record fields, the group of a run, the QUEUED run
status in the transition table, and the event log check that the test suite runs on every run."""

from __future__ import annotations

from tests.conftest import illegal_transitions
from wfcelery.definition.runlimits import RunLimits
from wfcelery.ops.admission import group_of
from wfcelery.tracker.keys import Keys
from wfcelery.tracker.outcomes import Finish
from wfcelery.tracker.records import RunRecord, first_events
from wfcelery.tracker.runlimits import Admission, RunLimitFields
from wfcelery.tracker.states import RUN_TRANSITIONS, RunStatus


def test_the_admission_and_deadline_keys() -> None:
    keys = Keys("p")
    assert keys.admission_active("g1") == "p:adm:{g1}:active"
    assert keys.admission_queue("g1") == "p:adm:{g1}:queue"
    assert keys.deadlines == "p:deadlines"


def test_a_group_is_one_workflow_and_one_key_value() -> None:
    limits = RunLimits.check(2, "params.customer")
    acme = group_of("etl", limits, {"customer": "acme"})
    assert acme is not None
    assert acme.limit == 2
    assert acme == group_of("etl", limits, {"customer": "acme", "day": 1})
    assert acme != group_of("etl", limits, {"customer": "globex"})
    assert acme != group_of("other", limits, {"customer": "acme"})
    assert group_of("etl", RunLimits(), {"customer": "acme"}) is None
    whole = RunLimits.check(1)
    assert group_of("etl", whole, {"customer": "a"}) == group_of("etl", whole, {"customer": "b"})


def test_the_run_record_fields_round_trip() -> None:
    admission = Admission("abc", 3)
    fields = RunLimitFields(queued=True, admission=admission, deadline_ms=1234).fields()
    assert fields == {"status": "QUEUED", "adm": "abc|3", "dl": 1234}
    record = RunRecord.decode(
        {"name": "etl", "status": "QUEUED", "epoch": "0", "total": "2", "created": "1", "plan": "d",
         "policy": "fail_fast", "adm": "abc|3", "dl": "1234", "dlx": "1",
         "err": '{"type": "DeadlineExceeded", "message": "deadline exceeded"}'}
    )  # fmt: skip
    assert record.status is RunStatus.QUEUED
    assert (record.admission, record.deadline_ms, record.deadline_fired) == (admission, 1234, True)
    assert record.error == {"type": "DeadlineExceeded", "message": "deadline exceeded"}
    assert first_events({"status": "QUEUED"}, [0, 1]) == "0 run QUEUED\n"
    assert first_events({"status": "RUNNING"}, [0, 1]) == "0 0 Q\n0 1 Q\n"


def test_a_finish_names_its_admission_group() -> None:
    finish = Finish.from_reply(["SUCCEEDED", False, 0, False, 5, False, "abc|3"])
    assert finish is not None
    assert finish.admission == Admission("abc", 3)
    old = Finish.from_reply(["SUCCEEDED", False, 0])
    assert old is not None
    assert old.admission is None


def test_queued_runs_move_only_as_the_table_says() -> None:
    assert RUN_TRANSITIONS[RunStatus.QUEUED] == {RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.FAILED}
    admitted = "0 run QUEUED\n40 run RUNNING\n41 0 Q\n50 0 R\n60 0 S\n60 run SUCCEEDED\n"
    assert illegal_transitions(admitted) == []
    assert illegal_transitions("0 run QUEUED\n9 0 X\n9 run CANCELLED\n") == []
    assert illegal_transitions("0 run QUEUED\n5 run PAUSED\n") == ["run: QUEUED -> PAUSED"]
    assert illegal_transitions("0 0 Q\n5 run SUCCEEDED\n7 run QUEUED\n") == ["run: SUCCEEDED -> QUEUED"]
