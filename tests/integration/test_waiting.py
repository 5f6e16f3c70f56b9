"""Wait nodes and signals, for real: a node that waits for a person or a partner, on a real worker and Redis.

The payload is the node's result and reaches its child; a second signal, and one of two concurrent ones,
is refused; so is a signal to a node that is not waiting or to a paused or finished run -- and a refusal
changes nothing (the event log is byte for byte the same); a timeout fails the node and the failure
policy applies; pause keeps the node waiting, cancel revokes it, retry makes it wait again; the CLI does
the round trip too.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from click.testing import CliRunner

from tests.helpers import status_of, wait_for
from wfcelery import ControlError, LimitError, NodeStatus, RunStatus, Workflow
from wfcelery.cli import cli
from wfcelery.errors import SignalRefused

pytestmark = pytest.mark.timeout(60)

APP: Any = None  # the current test's app, loaded by the CLI as tests.integration.test_waiting:APP


def approval(name: str = "release", timeout: Any = None, policy: str = "fail_fast") -> Workflow:
    """build -> approve (a wait) -> ship (gets the payload); ``side`` runs beside them."""
    wf = Workflow(name, on_failure=policy)
    wf.add("build", "proj.add", args=[1, 2])
    wf.wait("approve", after="build", timeout=timeout)
    wf.add("ship", "proj.echo", after="approve")
    wf.add("side", "proj.add", args=[10, 1])
    return wf


def waiting(run: Any, node: str = "approve") -> None:
    wait_for(lambda: status_of(run, node) is NodeStatus.WAITING, timeout=20, message=f"{node} WAITING")


def log_of(run: Any) -> str:
    _, events = run.events()
    return "".join(e.encode() for e in events)


def test_signal_round_trip_the_payload_is_the_result_and_reaches_the_child(engine: Any, worker: Any) -> None:
    run = engine.submit(approval())
    waiting(run)
    node = run.state().nodes["approve"]
    assert node.waiting is not None
    assert node.waiting.to_dict() == {"for": "signal", "until": None, "run": None}
    assert node.worker is None
    assert node.queue is None
    assert [(w.run_id, w.node) for w in engine.waiting()] == [(run.id, "approve")]
    state = run.signal("approve", {"by": "ops", "ticket": 42})
    assert state.nodes["approve"].status is NodeStatus.SUCCEEDED
    results = run.wait(timeout=20)
    assert results["approve"] == {"by": "ops", "ticket": 42}
    assert results["ship"] == {"args": [{"by": "ops", "ticket": 42}], "kwargs": {}}
    assert engine.waiting() == []


def test_of_two_concurrent_signals_one_wins_and_a_third_is_refused(engine: Any, worker: Any) -> None:
    run = engine.submit(approval())
    waiting(run)
    barrier = threading.Barrier(2)
    outcomes: dict[str, Any] = {}

    def send(who: str) -> None:
        barrier.wait()
        try:
            run.signal("approve", {"by": who})
            outcomes[who] = "won"
        except SignalRefused as e:
            outcomes[who] = e

    threads = [threading.Thread(target=send, args=(who,)) for who in ("alice", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    winners = [who for who, outcome in outcomes.items() if outcome == "won"]
    assert len(winners) == 1, outcomes
    loser = next(o for o in outcomes.values() if o != "won")
    assert "signalled already" in str(loser)
    assert loser.reason == "not_waiting"
    assert run.wait(timeout=20)["approve"] == {"by": winners[0]}
    with pytest.raises(SignalRefused, match="is SUCCEEDED: it takes no signal"):  # the run ended meanwhile
        run.signal("approve", {"by": "carol"})
    assert run.result("approve") == {"by": winners[0]}


def test_refused_signals_change_nothing(engine: Any, worker: Any, r: Any, uid: str) -> None:
    wf = Workflow("gated")
    wf.add("hold", "proj.block", args=[f"{uid}:go"])
    wf.wait("approve", after="hold")
    wf.add("ship", "proj.echo", after="approve")
    run = engine.submit(wf)
    wait_for(lambda: status_of(run, "hold") is NodeStatus.RUNNING, message="hold RUNNING")
    before = log_of(run)
    with pytest.raises(SignalRefused, match="PENDING: it was not reached yet") as refused:
        run.signal("approve", {"early": True})
    assert refused.value.reason == "not_waiting"
    with pytest.raises(SignalRefused, match="no wait node") as refused:
        run.signal("hold", 1)
    assert refused.value.reason == "not_a_wait"
    with pytest.raises(KeyError):
        run.signal("nope", 1)
    assert log_of(run) == before
    r.rpush(f"{uid}:go", "go")
    waiting(run)
    with pytest.raises(LimitError, match="wfcelery_max_result_bytes"):
        run.signal("approve", "x" * 2_000_000)
    run.pause()
    before = log_of(run)
    with pytest.raises(SignalRefused, match="is PAUSED: resume it") as refused:
        run.signal("approve", {"late": True})
    assert refused.value.reason == "paused"
    assert isinstance(refused.value, ControlError)  # 409 over HTTP, exit 2 in the CLI
    assert log_of(run) == before
    assert status_of(run, "approve") is NodeStatus.WAITING
    run.cancel()
    with pytest.raises(SignalRefused, match="is CANCELLED: it takes no signal"):
        run.signal("approve", {"late": True})


def test_a_wait_times_out_and_the_failure_policy_applies(engine: Any, worker: Any) -> None:
    run = engine.submit(approval("timeout", timeout=1, policy="continue"))
    waiting(run)
    until = run.state().nodes["approve"].waiting.until
    state = wait_for(lambda: (s := run.state()).finished and s, timeout=20, message="the run ends")
    approve = state.nodes["approve"]
    assert approve.status is NodeStatus.FAILED
    assert approve.error["type"] == "WaitTimeout"
    assert approve.error["message"] == "no signal within 1s"
    assert approve.finished_at >= until - 0.01  # not before its deadline (the bound after it: test_timers)
    assert state.nodes["ship"].status is NodeStatus.SKIPPED  # policy "continue": its branch is skipped
    assert state.nodes["side"].status is NodeStatus.SUCCEEDED  # the other branch finishes
    assert state.status is RunStatus.FAILED
    with pytest.raises(SignalRefused, match="FAILED"):
        run.signal("approve", {"late": True})


def test_pause_keeps_waiting_resume_signals_cancel_revokes_retry_waits_again(
    engine: Any, worker: Any, r: Any
) -> None:
    run = engine.submit(approval("control", timeout=30))
    waiting(run)
    until = run.state().nodes["approve"].waiting.until
    run.pause()
    assert status_of(run, "approve") is NodeStatus.WAITING  # it holds nothing: it keeps waiting
    run.resume()
    node = run.state().nodes["approve"]
    assert node.status is NodeStatus.WAITING
    assert node.waiting.until == until
    run.cancel()
    assert status_of(run, "approve") is NodeStatus.REVOKED
    assert engine.waiting() == []
    run.retry()
    waiting(run)
    assert run.state().nodes["approve"].waiting.until > until  # a new wait, its own deadline
    run.signal("approve", "go")
    assert run.wait(timeout=20)["ship"] == {"args": ["go"], "kwargs": {}}
    timers = engine.tracker.keys.timers
    assert r.zcard(timers) == 1  # the cancelled wait's, due in 30 s
    run.cleanup()
    assert r.zcard(timers) == 0


def test_cli_signal_round_trip(app: Any, engine: Any, worker: Any, tmp_path: Any, r: Any, uid: str) -> None:
    global APP
    APP = app
    a = ["-A", "tests.integration.test_waiting:APP"]
    wf = approval("cli")
    wf.add("hold", "proj.block", args=[f"{uid}:go"], after="ship", immutable=True)  # the run goes on
    run = engine.submit(wf)
    waiting(run)
    runner = CliRunner()
    status = runner.invoke(cli, [*a, "status", run.id])
    assert status.exit_code == 0, status.output
    assert "waiting for a signal" in status.output
    listed = runner.invoke(cli, [*a, "waiting", "--json"])
    assert [w["node"] for w in json.loads(listed.output)] == ["approve"]
    bad = runner.invoke(cli, [*a, "signal", run.id, "approve", "--data", "{oops"])
    assert bad.exit_code == 2
    assert "not JSON" in bad.output
    (tmp_path / "payload.json").write_text('{"by": "cli"}')
    sent = runner.invoke(cli, [*a, "signal", run.id, "approve", "--data", f"@{tmp_path / 'payload.json'}"])
    assert sent.exit_code == 0, sent.output
    again = runner.invoke(cli, [*a, "signal", run.id, "approve", "--data", "1"])
    assert again.exit_code == 2
    assert "signalled already" in again.output
    assert "Traceback" not in again.output
    unknown = runner.invoke(cli, [*a, "signal", run.id, "nope"])
    assert unknown.exit_code == 2
    assert "has no node 'nope'" in unknown.output
    r.rpush(f"{uid}:go", "go")
    assert run.wait(timeout=20)["ship"] == {"args": [{"by": "cli"}], "kwargs": {}}
