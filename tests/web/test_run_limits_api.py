"""Run limits over the REST API (real uvicorn, real Redis): a run waiting for max_active_runs is QUEUED in
GET /api/runs/<id> and in the runs list's status filter; a run's deadline and its error are in its state;
a bad limit or deadline answers 422 naming it, and writes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.timeout(60)

DEFINITION = {
    "name": "limited",
    "max_active_runs": 1,
    "concurrency_key": "params.customer",
    "deadline": "1h",
    "tasks": [{"name": "a", "task": "proj.add", "args": [1, 2]}],
}


def test_a_queued_run_is_shown_queued_with_its_deadline(http: httpx.Client, engine: Any) -> None:
    # no worker: the first run of a customer stays RUNNING (its node QUEUED), the second waits its turn
    ids = [
        http.post("/api/runs", json={"definition": DEFINITION, "params": {"customer": c}}).json()["id"]
        for c in ("acme", "acme", "globex")
    ]
    states = [http.get(f"/api/runs/{i}").json() for i in ids]
    assert [s["status"] for s in states] == ["RUNNING", "QUEUED", "RUNNING"]
    assert all(s["deadline_at"] and s["deadline_at"] > s["created_at"] + 3500 for s in states)
    assert states[1]["error"] is None
    assert states[1]["counts"]["PENDING"] == 1
    listed = http.get("/api/runs", params={"status": "QUEUED"}).json()["runs"]
    assert [r["id"] for r in listed] == [ids[1]]
    cancelled = http.post(f"/api/runs/{ids[1]}/cancel").json()
    assert cancelled["status"] == "CANCELLED"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"definition": {**DEFINITION, "max_active_runs": 0}}, "max_active_runs: must be an integer >= 1"),
        ({"definition": {**DEFINITION, "concurrency_key": "params.["}}, "concurrency_key: invalid JMESPath"),
        (
            {"definition": {**DEFINITION, "deadline": "5/fortnight"}},
            "deadline: '5/fortnight' is not a duration",
        ),
        ({"definition": DEFINITION, "deadline": "soon"}, "submit: deadline: 'soon' is not a duration"),
    ],
)
def test_bad_limits_answer_422_naming_them(
    http: httpx.Client, engine: Any, body: dict[str, Any], fragment: str
) -> None:
    resp = http.post("/api/runs", json={"params": {"customer": "acme"}, **body})
    assert resp.status_code == 422, resp.text
    assert fragment in resp.json()["error"]
    assert engine.runs() == []
