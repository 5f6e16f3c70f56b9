"""The REST API of pools over HTTP (uvicorn on a free port, a real Redis): GET /api/pools (viewer) shows
slots, rate, used and waiting; PUT /api/pools/{name} (admin) resizes; bad input is a 422 naming it, and
changes nothing; a viewer may read but not resize."""

from __future__ import annotations

import pytest

from wfcelery import Engine
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
