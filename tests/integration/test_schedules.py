"""Schedules fired by the elected loop inside real workers, on a real Redis: once per slot, whatever fails."""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import wfcelery
from tests.helpers import in_thread_worker, wait_for
from wfcelery import Workflow
from wfcelery.definition.schedule import parse_instant


def ticker(name: str = "tick", task: str = "proj.noop", **kwargs: Any) -> Workflow:
    wf = Workflow(name)
    wf.add("a", task, args=["${scheduled_at}"], **kwargs)
    return wf


def slots_of(engine: Any, name: str) -> list[int]:
    """The slot (ms) of every run of workflow ``name``, from its ``scheduled_at`` param, sorted."""
    runs = engine.runs(name=name, limit=10_000)
    return sorted(parse_instant(engine.run(r.id).state(False).params["scheduled_at"], "") for r in runs)


def created_by_slot(engine: Any, name: str) -> dict[int, float]:
    out = {}
    for r in engine.runs(name=name, limit=10_000):
        out[parse_instant(engine.run(r.id).state(False).params["scheduled_at"], "")] = r.created_at
    return out


def contiguous(slots: list[int], step_ms: int = 1000) -> bool:
    return all(b - a == step_ms for a, b in itertools.pairwise(slots))


def test_one_second_schedule_on_two_workers_fires_each_slot_once_and_survives_a_sigkill(
    app, engine, worker_process, r
):
    conf = {"wfcelery_heartbeat": 1.0}  # the lease lives 3 s: a dead leader is replaced within ~4 s
    queue = app.conf.task_default_queue
    workers = [worker_process(app, [queue], f"w{i}", concurrency=2, conf=conf) for i in range(2)]
    engine.schedule("tick", ticker(), every=1, catchup=True)
    wait_for(lambda: len(slots_of(engine, "tick")) >= 8, timeout=30, message="8 slots fired")
    leader = r.get(engine.tracker.keys.scheduler)
    victim = next(w for w in workers if w.hostname == leader)
    killed_at = engine.tracker.server_ms()
    os.kill(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait()
    wait_for(
        lambda: len([s for s in slots_of(engine, "tick") if s > killed_at]) >= 4,
        timeout=30,
        message="the other worker fires after the kill",
    )
    assert r.get(engine.tracker.keys.scheduler) != leader
    slots = slots_of(engine, "tick")
    assert len(slots) == len(set(slots)), f"a slot fired twice: {Counter(slots).most_common(3)}"
    assert contiguous(slots), "a slot is missing"
    created = created_by_slot(engine, "tick")
    lag = {s: created[s] - s / 1000 for s in slots}
    before = [lag[s] for s in slots if s < killed_at - 1000]
    assert sorted(before)[len(before) // 2] < 1.0  # firing precision on a quiet machine: under a second
    gap = max(lag[s] for s in slots if s > killed_at)
    assert gap < 15.0, f"slots after the kill fired up to {gap:.1f} s late"


def test_catchup_true_fires_the_missed_slots_up_to_the_bound_and_false_only_the_latest(make_test_app):
    app = make_test_app(wfcelery_schedule_catchup=3)
    engine = wfcelery.install(app)
    engine.schedule("all", ticker("all"), every=1, catchup=True)
    engine.schedule("latest", ticker("latest"), every=1, catchup=False)
    first = engine.schedule_info("all").next_at
    assert first is not None
    start = first.timestamp() * 1000
    # no worker runs: every loop is down while five slots pass
    wait_for(lambda: engine.tracker.server_ms() > start + 5000, timeout=10)
    assert slots_of(engine, "all") == slots_of(engine, "latest") == []
    with in_thread_worker(app):
        wait_for(lambda: len(slots_of(engine, "latest")) >= 3, timeout=20, message="firing again")
    caught_up, latest = slots_of(engine, "all"), slots_of(engine, "latest")
    assert contiguous(caught_up)
    assert contiguous(latest)
    assert latest[0] >= start + 5000  # the missed slots were skipped but the latest
    assert caught_up[0] == latest[0] - 2000  # the latest three missed ones (wfcelery_schedule_catchup)
    assert caught_up[-1] >= latest[-1] - 1000


def test_max_active_runs_never_lets_two_runs_of_a_schedule_live_at_once(app, engine):
    slow = ticker("slow", task="proj.count", kwargs={"sleep": 1.6})
    engine.schedule("slow", slow, every=1, max_active_runs=1)
    with in_thread_worker(app, concurrency=4):  # room for overlapping runs, were they allowed
        wait_for(lambda: len(engine.runs(name="slow", status="succeeded")) >= 3, timeout=30)
        engine.pause_schedule("slow")
    runs = sorted(engine.runs(name="slow", limit=100), key=lambda s: s.created_at)
    for before, after in itertools.pairwise(runs):
        assert before.finished_at is not None
        assert after.created_at >= before.finished_at, "two runs of the schedule were live at once"
        assert after.created_at - before.finished_at < 1.5  # the waiting slot fires when the run ends


def test_bad_schedules_are_one_error_naming_the_field_and_store_nothing(app, engine):
    wf = ticker()
    cases = [
        ({"cron": "0 25 * * *"}, "cron"),
        ({"cron": "0 2 * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"every": 0}, "every"),
        ({"every": -1}, "every"),
        ({"every": 1, "params": {"nope": 1}}, "params"),
        ({"every": 1, "max_active_runs": 0}, "max_active_runs"),
    ]
    for kwargs, field in cases:
        with pytest.raises(wfcelery.ScheduleError) as caught:
            engine.schedule("bad", wf, **kwargs)
        assert caught.value.field == field
    with pytest.raises(wfcelery.ScheduleError, match="workflow: unknown workflow 'nope'"):
        engine.schedule("bad", "nope", every=1)
    with pytest.raises(wfcelery.ScheduleError, match="name"):
        engine.schedule("bad name!", wf, every=1)
    assert engine.schedules() == []
    with pytest.raises(wfcelery.ScheduleNotFound):
        engine.pause_schedule("bad")


def test_pause_resume_and_unschedule(app, engine):
    info = engine.schedule("p", ticker("p"), cron="0 2 * * *", timezone="Europe/Paris", params={})
    assert (info.name, info.workflow, info.paused, info.last_at) == ("p", "p", False, None)
    assert info.next_at is not None
    assert info.next_at.hour in (0, 1)  # 02:00 Paris is 00:00 or 01:00 UTC
    paused = engine.pause_schedule("p")
    assert (paused.paused, paused.next_at) == (True, None)
    assert engine.resume_schedule("p").next_at == info.next_at
    engine.unschedule("p")
    assert engine.schedules() == []


def test_backfill_of_ten_slots_twice_makes_ten_runs(app, engine):
    engine.schedule("daily", ticker("daily"), cron="0 2 * * *", timezone="UTC")
    dry = engine.backfill("daily", "2026-01-01", "2026-01-10T12:00", dry_run=True)
    assert [s.slot for s in dry][:2] == ["2026-01-01T02:00:00Z", "2026-01-02T02:00:00Z"]
    assert (len(dry), engine.runs(name="daily")) == (10, [])
    first = engine.backfill("daily", "2026-01-01", "2026-01-10T12:00")
    again = engine.backfill("daily", "2026-01-01", "2026-01-10T12:00")
    assert all(s.created for s in first)
    assert not any(s.created for s in again)
    assert [s.run_id for s in again] == [s.run_id for s in first]
    assert len(engine.runs(name="daily", limit=100)) == 10
    run = engine.run(first[0].run_id).state(False)
    assert run.run_key == "schedule:daily:2026-01-01T02:00:00Z"
    assert run.params["scheduled_at"] == "2026-01-01T02:00:00Z"
    with pytest.raises(wfcelery.ScheduleError, match="end"):
        engine.backfill("daily", "2026-01-10", "2026-01-01")


def test_a_definition_file_owns_its_schedule(make_test_app, tmp_path: Path):
    folder = tmp_path / "flows"
    folder.mkdir()
    app = make_test_app(wfcelery_definitions=str(folder), wfcelery_schedule_scan=0.3)
    engine = wfcelery.install(app)
    engine.schedule("by-api", ticker("by-api"), cron="0 3 * * *")
    flow = folder / "nightly.yaml"
    body = (
        "name: nightly\ntasks: [{name: a, task: proj.noop}]\nschedule: {cron: '0 2 * * *', timezone: UTC}\n"
    )
    flow.write_text(body)

    def schedule(name: str) -> Any:
        return next((s for s in engine.schedules() if s.name == name), None)

    with in_thread_worker(app):
        found = wait_for(lambda: schedule("nightly"), timeout=10, message="the file's schedule")
        assert (found.cron, found.source) == ("0 2 * * *", "file:nightly.yaml")
        with pytest.raises(wfcelery.ScheduleError, match=r"definition file nightly\.yaml"):
            engine.schedule("nightly", ticker("nightly"), every=5)
        with pytest.raises(wfcelery.ScheduleError, match=r"definition file nightly\.yaml"):
            engine.unschedule("nightly")  # the next scan would put it back: the file decides
        assert schedule("nightly") is not None
        engine.pause_schedule("nightly")
        flow.write_text(body.replace("0 2 * * *", "30 4 * * *"))
        changed = wait_for(lambda: (s := schedule("nightly")) and s.cron == "30 4 * * *" and s, timeout=10)
        assert changed.paused  # an edit keeps the paused state
        flow.write_text("name: nightly\ntasks: [{name: a, task: proj.noop}]\nschedule: {cron: 'nope'}\n")
        time.sleep(1.0)  # three scans: a file that does not load keeps its schedule as it was
        assert schedule("nightly").cron == "30 4 * * *"
        flow.unlink()
        wait_for(lambda: schedule("nightly") is None, timeout=10, message="the schedule goes with its file")
    assert [s.name for s in engine.schedules()] == ["by-api"]  # untouched by the scans


def test_a_tick_fires_many_schedules_at_once_and_reuses_or_takes_over_their_keys(app, engine, r):
    """The loop creates a tick's runs in one pipeline: a slot fired already keeps its run, a slot whose
    key names a run that never came to be (its creator died) is taken over."""
    from wfcelery.ops.runkeys import CLAIM_GRACE
    from wfcelery.ops.scheduler import Scheduler
    from wfcelery.ops.store import run_key_of
    from wfcelery.tracker.records import RunKeyClaim

    # created early in one second, so all five share their first slot (the next whole second)
    wait_for(lambda: engine.tracker.server_ms() % 1000 < 500, timeout=5, message="a second's first half")
    for i in range(5):
        engine.schedule(f"m{i}", ticker("many"), every=1)
    slot = int(engine.schedule_info("m0").next_at.timestamp() * 1000)
    assert {s.next_at for s in engine.schedules()} == {engine.schedule_info("m0").next_at}
    wait_for(lambda: engine.tracker.server_ms() >= slot, timeout=5)
    old = engine.tracker.server_ms() - int(CLAIM_GRACE * 1000) - 1000
    r.set(engine.tracker.keys.run_key(run_key_of("m1", slot)), RunKeyClaim("d" * 32, old).encode())
    kept = engine.backfill("m2", slot / 1000, slot / 1000)[0].run_id
    loop = Scheduler(engine.tracker, engine.dispatch, "test")
    loop.tick()
    fired = {s.name: engine.run_by_key(run_key_of(s.name, slot)) for s in engine.schedules()}
    assert all(run is not None for run in fired.values())
    assert fired["m2"].id == kept
    assert fired["m1"].id != "d" * 32
    assert len(engine.runs(name="many")) == 5
    assert all(s.last_at is not None for s in engine.schedules())
