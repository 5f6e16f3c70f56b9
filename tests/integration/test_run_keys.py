"""Run keys on a real Redis and real workers: at most one run per key, whoever submits and however often."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import Celery

import wfcelery
from tests.helpers import in_thread_worker, wait_for
from wfcelery import RunStatus, Workflow
from wfcelery._redis_server import ClusterServer
from wfcelery.install import engine_of
from wfcelery.ops.runkeys import CLAIM_GRACE
from wfcelery.tracker.records import RunKeyClaim


def small(name: str = "keyed") -> Workflow:
    wf = Workflow(name)
    wf.add("a", "proj.add", args=[1, 2]) >> wf.add("b", "proj.add", kwargs={"y": 10})
    return wf


def concurrent_submits(engine: Any, wf: Workflow, key: str, n: int = 20) -> list[Any]:
    """``n`` threads submit the same key at the same instant (a barrier releases them together)."""
    barrier = threading.Barrier(n)
    runs: list[Any] = [None] * n
    errors: list[BaseException] = []

    def submit(i: int) -> None:
        barrier.wait()
        try:
            runs[i] = engine.submit(wf, run_key=key)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    return runs


def test_twenty_concurrent_submits_of_one_key_make_one_run(app, engine, r):
    runs = concurrent_submits(engine, small(), "nightly:2026-12-06")
    assert len({run.id for run in runs}) == 1
    assert sum(run.created for run in runs) == 1
    assert len(engine.runs(name="keyed")) == 1  # one run record in the tracker, not twenty
    with in_thread_worker(app):
        assert runs[0].wait(timeout=30) == {"a": 3, "b": 13}
    state = runs[0].state()
    assert state.run_key == "nightly:2026-12-06"
    assert state.params["run_key"] == "nightly:2026-12-06"
    assert engine.run_by_key("nightly:2026-12-06").id == runs[0].id
    assert engine.run_by_key("nightly:2026-12-07") is None


def test_use_existing_returns_the_holder_whatever_its_state(app, engine):
    wf = Workflow("failing")
    wf.add("boom", "proj.fail")
    with in_thread_worker(app):
        first = engine.submit(wf, run_key="k1")
        with pytest.raises(wfcelery.RunFailed):
            first.wait(timeout=30)
        again = engine.submit(wf, run_key="k1")  # default policy: use_existing
    assert (again.id, again.created) == (first.id, False)
    assert again.state().status is RunStatus.FAILED
    assert len(engine.runs(name="failing")) == 1


def test_fail_raises_run_key_conflict_naming_the_holder(app, engine):
    first = engine.submit(small(), run_key="k2")
    with pytest.raises(wfcelery.RunKeyConflict) as caught:
        engine.submit(small(), run_key="k2", on_conflict="fail")
    assert caught.value.run_id == first.id
    assert "k2" in str(caught.value)
    assert len(engine.runs(name="keyed")) == 1


def test_retry_failed_retries_the_same_run_and_uses_a_live_or_succeeded_one(app, engine, r):
    key = f"{app.conf.wfcelery_key_prefix}:flaky"
    wf = Workflow("flaky")
    wf.add("f", "proj.flaky", args=[1, key])  # fails once (no retries), then succeeds
    with in_thread_worker(app):
        first = engine.submit(wf, run_key="k3")
        with pytest.raises(wfcelery.RunFailed):
            first.wait(timeout=30)
        retried = engine.submit(wf, run_key="k3", on_conflict="retry_failed")
        assert (retried.id, retried.created) == (first.id, False)
        assert retried.wait(timeout=30) == {"f": 2}
        # SUCCEEDED now: retry_failed uses it, runs nothing again
        same = engine.submit(wf, run_key="k3", on_conflict="retry_failed")
    assert same.id == first.id
    assert same.state().status is RunStatus.SUCCEEDED
    assert int(r.get(key) or 0) == 2  # one failure, one success: nothing ran a third time
    assert len(engine.runs(name="flaky")) == 1


def test_an_unknown_policy_or_key_is_refused_before_anything_is_written(app, engine):
    with pytest.raises(wfcelery.DefinitionError, match="on_conflict"):
        engine.submit(small(), run_key="k4", on_conflict="replace")
    with pytest.raises(wfcelery.DefinitionError, match="run_key"):
        engine.submit(small(), run_key="")
    assert engine.runs() == []


def test_cleanup_deletes_the_key_with_its_run_and_the_key_is_free_again(app, engine, r):
    with in_thread_worker(app):
        first = engine.submit(small(), run_key="k5")
        first.wait(timeout=30)
    keys = engine.tracker.keys
    assert r.exists(keys.run_key("k5"))
    ttl = r.ttl(keys.run_key("k5"))
    assert engine.settings.run_ttl <= ttl <= engine.settings.run_ttl + 3600  # lives as long as its run
    first.cleanup()
    assert not r.exists(keys.run_key("k5"))
    second = engine.submit(small(), run_key="k5")
    assert second.created
    assert second.id != first.id


def test_a_claim_whose_run_was_never_created_is_taken_over_once_old(app, engine, r):
    """A submitter that died between claiming the key and creating its run (the Cluster path) left a
    claim naming a run that does not exist: a young one is waited for, an old one is taken over."""
    keys = engine.tracker.keys
    now = engine.tracker.server_ms()
    dead = RunKeyClaim("f" * 32, now - int(CLAIM_GRACE * 1000) - 1000)
    r.set(keys.run_key("k6"), dead.encode())
    run = engine.submit(small(), run_key="k6")
    assert run.created
    assert run.id != dead.run_id
    assert RunKeyClaim.decode(r.get(keys.run_key("k6"))).run_id == run.id

    young = RunKeyClaim("e" * 32, engine.tracker.server_ms())
    r.set(keys.run_key("k7"), young.encode())
    timer = threading.Timer(0.5, lambda: r.delete(keys.run_key("k7")))  # its claimer gives up
    timer.start()
    taken = engine.submit(small(), run_key="k7")  # waits for the young claim rather than stealing it
    timer.join()
    assert taken.created
    assert len(engine.runs(name="keyed")) == 2


def test_the_key_is_in_flower_s_kwargs_of_every_task(app, engine):
    """Flower shows and searches kwargsrepr: the key is there, beside the run id and the node."""
    seen: list[str] = []
    from celery.signals import before_task_publish

    def grab(headers: dict[str, Any] | None = None, **_: Any) -> None:
        seen.append(str((headers or {}).get("kwargsrepr")))

    before_task_publish.connect(grab, weak=False)
    try:
        with in_thread_worker(app):
            engine.submit(small(), run_key="flower-key").wait(timeout=30)
    finally:
        before_task_publish.disconnect(grab)
    assert len(seen) == 2
    assert all("'wf_key': 'flower-key'" in s for s in seen)


@pytest.fixture
def cluster() -> Iterator[ClusterServer]:
    if shutil.which("redis-cli") is None:
        pytest.skip("redis-cli creates the cluster")
    server = ClusterServer(3).start()
    yield server
    server.stop()


def test_concurrent_keyed_submits_make_one_run_on_a_cluster(
    make_test_app: Callable[..., Celery], cluster: ClusterServer
) -> None:
    app = make_test_app(wfcelery_redis_cluster=True, wfcelery_redis_url=cluster.url)
    engine = engine_of(app)
    assert engine is not None
    runs = concurrent_submits(engine, small(), "cluster-key")
    assert len({run.id for run in runs}) == 1
    with in_thread_worker(app):
        assert runs[0].wait(timeout=30) == {"a": 3, "b": 13}
    wait_for(lambda: engine.run_by_key("cluster-key") is not None)
    assert len(engine.runs(name="keyed")) == 1


def test_the_key_is_the_run_key_param_and_history_finds_the_run_by_it(app, engine):
    """``${run_key}`` is a built-in param: a keyed submit hands its key to the tasks, and the history
    search finds the run by its key (and lists the key)."""
    wf = Workflow("keyed-echo")
    wf.add("a", "proj.echo", args=["${run_key}"])
    with in_thread_worker(app):
        run = engine.submit(wf, run_key="nightly:2026-12-06")
        assert run.wait(timeout=30) == {"a": {"args": ["nightly:2026-12-06"], "kwargs": {}}}
    page = engine.search_runs(run_key="nightly:2026-12-06")
    assert [(row.id, row.run_key) for row in page.runs] == [(run.id, "nightly:2026-12-06")]
    assert [row.run_key for row in engine.search_runs(workflow="keyed-echo").runs] == ["nightly:2026-12-06"]
    with pytest.raises(wfcelery.DefinitionError, match="run_key"):
        engine.submit(wf)  # no key given: the placeholder has no value
