"""What the worker's postrun hook drops after a canvas-executor task: the result subscriptions of the ids
frozen in that task's own continuation (its chain's next steps, its chord's body), found by walking the
signatures as they arrive in a worker's request (plain dicts, after the broker's JSON), never the task's
arguments, and never a subscription that is not in the continuation."""

from __future__ import annotations

import json
from typing import Any

from celery import Celery, chain, chord

from wfcelery.messaging.dispatch import _frozen_ids

APP = Celery("continuation-unit", set_as_current=False)


@APP.task(name="t.work", shared=False)
def work(*args: Any) -> None:
    return None


def _sig(task_id: str, *args: Any) -> Any:
    return work.si(*args).set(task_id=task_id)


def _over_the_wire(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def _ids(obj: Any) -> list[str]:
    out: list[str] = []
    _frozen_ids(obj, out)
    return out


def test_every_frozen_id_of_a_chain_with_a_chord_of_chains() -> None:
    header = [_sig("b"), chain(_sig("c"), _sig("d"))]
    body = chain(_sig("e"), _sig("f"))
    continuation = chain(chord(header, body), _sig("g"))
    assert set(_ids(_over_the_wire(continuation))) >= {"b", "c", "d", "e", "f", "g"}


def test_a_request_chain_list_and_a_chord_body() -> None:
    request_chain = _over_the_wire([_sig("later"), chord([_sig("h1"), _sig("h2")], _sig("body"))])
    assert set(_ids(request_chain)) == {"later", "h1", "h2", "body"}
    assert _ids(_over_the_wire(_sig("just-body"))) == ["just-body"]


def test_arguments_are_not_walked() -> None:
    """A node's arguments may hold anything, including a big result shaped like a signature."""
    lookalike = {"options": {"task_id": "not-a-task"}, "subtask_type": "chain", "kwargs": {"tasks": []}}
    sig = _over_the_wire(_sig("real", lookalike, [lookalike] * 3))
    assert _ids(sig) == ["real"]


def test_nothing_to_walk() -> None:
    assert _ids(None) == []
    assert _ids([]) == []
    assert _ids("text") == []
