from tests.helpers import DIAMOND_RESULTS, diamond, in_thread_worker
from wfcelery import Workflow


def test_fan_out_fan_in_results(app, engine):
    with in_thread_worker(app):
        results = engine.submit(diamond("smoke")).wait(timeout=30)
    assert results == DIAMOND_RESULTS


def test_celery_results_off_keeps_tracker_results_only(make_test_app, r):
    app = make_test_app(wfcelery_celery_results=False)
    engine = app._wfcelery_engine
    wf = Workflow("lean")
    a = wf.add("a", "proj.add", args=[1, 2])
    b = wf.add("b", "proj.add", kwargs={"y": 1})
    a >> b
    with in_thread_worker(app):
        run = engine.submit(wf)
        assert run.wait(timeout=30) == {"a": 3, "b": 4}
    ids = [n.task_id for n in run.state().nodes.values()]
    assert [r.exists(f"celery-task-meta-{i}") for i in ids] == [0, 0]
