"""When schedules fire: cron in a real time zone across both DST changes, the every=N grid, bad input."""

from __future__ import annotations

import itertools

import pytest

from wfcelery import ScheduleError, SchemaError, Workflow
from wfcelery.definition.schedule import Timing, iso, parse_every, parse_instant


def at(text: str) -> int:
    return parse_instant(text, "t")


def test_a_0230_slot_on_the_spring_forward_day_fires_once_at_0300_local() -> None:
    """Europe/Paris, 2026-03-29: 02:00 CET becomes 03:00 CEST, so 02:30 does not exist that day."""
    paris = Timing.parse(cron="30 2 * * *", timezone="Europe/Paris")
    slots = [iso(s) for s in paris.slots(at("2026-03-27T00:00Z"), at("2026-03-31T00:00Z"))]
    assert slots == [
        "2026-03-27T01:30:00Z",  # 02:30 CET (UTC+1)
        "2026-03-28T01:30:00Z",
        "2026-03-29T01:00:00Z",  # the skipped 02:30: once, at 03:00 CEST, the first instant after the gap
        "2026-03-30T00:30:00Z",  # 02:30 CEST (UTC+2)
    ]


def test_a_0230_slot_on_the_fall_back_day_fires_once_not_in_both_passes() -> None:
    """Europe/Paris, 2026-10-25: 03:00 CEST becomes 02:00 CET, so 02:30 happens twice."""
    paris = Timing.parse(cron="30 2 * * *", timezone="Europe/Paris")
    slots = [iso(s) for s in paris.slots(at("2026-10-24T00:00Z"), at("2026-10-27T00:00Z"))]
    assert slots == ["2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
    # the same through next_after, the way the loop walks
    assert iso(paris.next_after(at("2026-10-25T00:30Z"))) == "2026-10-26T01:30:00Z"


def test_a_wildcard_hour_keeps_its_pace_through_the_repeated_hour() -> None:
    every_half_hour = Timing.parse(cron="*/30 * * * *", timezone="Europe/Paris")
    slots = every_half_hour.slots(at("2026-10-24T23:30Z"), at("2026-10-25T02:00Z"))
    assert [b - a for a, b in itertools.pairwise(slots)] == [1_800_000] * (len(slots) - 1)
    assert len(slots) == 6  # 01:30 .. 03:00 local: the repeated 02:00 and 02:30 both fire, as instants


def test_six_fields_is_seconds_last() -> None:
    five_seconds = Timing.parse(cron="* * * * * */5")
    assert [iso(s) for s in five_seconds.slots(at("2026-01-01T00:00:01Z"), at("2026-01-01T00:00:15Z"))] == [
        "2026-01-01T00:00:05Z",
        "2026-01-01T00:00:10Z",
        "2026-01-01T00:00:15Z",
    ]


def test_every_sits_on_an_epoch_aligned_grid_whatever_the_time_asked() -> None:
    quarter = Timing.parse(every="15m")
    assert quarter.every == 900
    assert iso(quarter.next_after(at("2026-05-01T10:07:31Z"))) == "2026-05-01T10:15:00Z"
    assert iso(quarter.next_after(at("2026-05-01T10:15:00Z"))) == "2026-05-01T10:30:00Z"
    seven = Timing.parse(every=7)
    for t in (at("2026-05-01T10:07:31Z"), at("2026-05-01T10:07:31Z") + 4321):
        assert seven.next_after(t) % 7000 == 0


def test_only_the_latest_slots_up_to_a_limit() -> None:
    daily = Timing.parse(cron="0 2 * * *", timezone="Europe/Paris")
    slots = daily.slots(at("2026-01-01T00:00Z"), at("2026-01-31T12:00Z"), limit=3)
    assert [iso(s) for s in slots] == ["2026-01-29T01:00:00Z", "2026-01-30T01:00:00Z", "2026-01-31T01:00:00Z"]
    second = Timing.parse(every=1)
    assert len(second.slots(at("2026-01-01T00:00Z"), at("2026-01-02T00:00Z"), limit=100)) == 100


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "not a cron"}, "cron"),
        ({"cron": "* * * *"}, "cron"),
        ({"every": 0}, "every"),
        ({"every": -5}, "every"),
        ({"every": "soon"}, "every"),
        ({"cron": "0 2 * * *", "timezone": "Europe/Atlantis"}, "timezone"),
        ({}, "cron"),
        ({"cron": "0 2 * * *", "every": 5}, "cron"),
    ],
)
def test_bad_timing_is_one_error_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        Timing.parse(**kwargs)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_every_durations() -> None:
    assert [parse_every(v) for v in (5, "90", "30s", "15m", "1h30m", "1d")] == [5, 90, 30, 900, 5400, 86400]


def test_a_definition_s_schedule_is_checked_when_it_loads() -> None:
    spec = {"name": "nightly", "tasks": [{"name": "a", "task": "proj.noop"}]}
    wf = Workflow.from_dict({**spec, "schedule": {"cron": "0 2 * * *", "timezone": "Europe/Paris"}})
    assert wf.schedule is not None
    assert wf.schedule.timing.cron == "0 2 * * *"
    with pytest.raises(ScheduleError, match=r"flows/n.yaml: schedule.cron: invalid cron"):
        Workflow.from_dict({**spec, "schedule": {"cron": "0 25 * * *"}}, source="flows/n.yaml")
    with pytest.raises(ScheduleError, match="unknown key 'cronn'"):
        Workflow.from_dict({**spec, "schedule": {"cronn": "0 2 * * *"}})
    assert isinstance(ScheduleError("x", "y"), SchemaError.__mro__[1])  # a DefinitionError: exit 2 / 422


def test_scheduled_at_and_run_key_are_params_every_workflow_accepts() -> None:
    wf = Workflow("w")
    wf.add("a", "proj.noop", args=["${scheduled_at}"])
    resolved = wf.resolve_params({"scheduled_at": "2026-01-01T00:00:00Z", "run_key": "k"})
    assert resolved["scheduled_at"] == "2026-01-01T00:00:00Z"
