from wfcelery import Workflow
from tests.conftest import in_thread_worker


def test_fan_out_fan_in_results(app, engine):
    wf = Workflow("smoke")
    a = wf.add("a", "proj.add", args=[1, 2])
    b = wf.add("b", "proj.add", kwargs={"y": 10})
    c = wf.add("c", "proj.add", kwargs={"y": 100})
    d = wf.add("d", "proj.total")
    a >> [b, c] >> d
    with in_thread_worker(app):
        results = engine.submit(wf).wait(timeout=30)
    assert results == {"a": 3, "b": 13, "c": 103, "d": 116}
