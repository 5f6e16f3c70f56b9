"""The REST API of pools over HTTP (uvicorn on a free port, a real Redis): GET /api/pools (viewer) shows
slots, rate, used and waiting; PUT /api/pools/{name} (admin) resizes; bad input is a 422 naming it, and
changes nothing; a viewer may read but not resize."""

from __future__ import annotations

import pytest

from tests.helpers import in_thread_worker, wait_for
from tests.web.test_events import sse
from wfcelery import Engine, NodeStatus, Workflow
from wfcelery.web.roles import Role

pytestmark = pytest.mark.timeout(60)


def test_put_then_get_pools_and_bad_input_changes_nothing(http, engine: Engine):
    assert http.get("/api/pools").json() == []
    made = http.put("/api/pools/db", json={"slots": 5, "rate": "60/m"})
    assert made.status_code == 200, made.text
    assert made.json() == {
        "name": "db",
        "slots": 5,
        "rate": "60/m",
        "used": 0,
        "waiting": 0,
        "source": "set_pool",
    }
    for body, named in (
        ({"rate": "5/fortnight"}, "malformed rate '5/fortnight'"),
        ({"slots": 0}, "slots must be a whole number >= 1, got 0"),
        ({}, "give slots, rate or both"),
    ):
        bad = http.put("/api/pools/db", json=body)
        assert bad.status_code == 422, bad.text
        assert named in bad.json()["error"]
        assert "Traceback" not in bad.text
    assert http.put("/api/pools/no|pe", json={"slots": 1}).status_code == 422
    assert http.get("/api/pools").json() == [made.json()]
    assert http.put("/api/pools/db", json={"rate": "none"}).json()["rate"] is None


def test_a_viewer_reads_pools_and_only_an_admin_resizes_them(serve, engine: Engine):
    viewer = engine.create_token("v", Role.VIEWER)
    admin = engine.create_token("a", Role.ADMIN)
    with serve().client() as http:
        assert http.get("/api/pools", headers={"Authorization": f"Bearer {viewer}"}).status_code == 200
        refused = http.put("/api/pools/db", json={"slots": 2}, headers={"Authorization": f"Bearer {viewer}"})
        assert refused.status_code == 403
        done = http.put("/api/pools/db", json={"slots": 2}, headers={"Authorization": f"Bearer {admin}"})
        assert done.status_code == 200
    assert [p.slots for p in engine.pools()] == [2]
    assert any(e.action == "set_pool" and e.target == "pool db" for e in engine.audit_log(10))


@pytest.mark.parametrize("app", [{"wfcelery_pools": {"solo": 1}}], indirect=True)
def test_the_dashboard_says_a_node_waits_for_its_pool(app, engine: Engine, server, page, r, uid) -> None:
    hold = f"t{uid}:hold"
    wf = Workflow("queued-up")
    wf.add("first", "proj.block", kwargs={"key": hold, "timeout": 30}, pool="solo")
    wf.add("second", "proj.block", kwargs={"key": hold, "timeout": 30}, pool="solo")
    with in_thread_worker(app):
        run = engine.submit(wf)
        wait_for(lambda: engine.pool("solo").waiting == 1, message="one node waiting for the pool")
        waiting = next(n for n in run.state().nodes.values() if n.status is NodeStatus.WAITING)
        page.goto(f"{server.url}/runs/{run.id}?node={waiting.name}")
        page.wait_for_selector("#waiting-for", timeout=10_000)
        assert page.locator("#waiting-for").inner_text() == "Waiting for pool solo"
        pools = page.request.get(f"{server.url}/api/pools").json()
        assert pools == [
            {"name": "solo", "slots": 1, "rate": None, "used": 1, "waiting": 1, "source": "setting"}
        ]
        with server.client() as http:
            for message in sse(http, f"/api/runs/{run.id}/events"):  # the event stream says it too
                if message["data"].get("status") == "WAITING":
                    assert message["data"]["waiting"] == {"for": "pool", "pool": "solo"}
                    break
        r.rpush(hold, "go", "go")
        run.wait(timeout=30)
    wait_for(lambda: engine.pool("solo").used == 0, message="the slot given back")
