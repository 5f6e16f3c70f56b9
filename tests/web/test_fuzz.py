"""Schemathesis against the served ``/openapi.json``: no generated request gets a 5xx but the documented 503.

Every operation of the document gets hypothesis-generated requests (valid and invalid by the schema:
wrong types, missing fields, odd strings in paths and queries). The tracker's Redis is up, so any 5xx is
a bug. Kept small (a few examples per operation) so it runs in seconds.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.timeout(120)

#: Generated requests per API operation.
EXAMPLES = 5


def test_no_generated_request_gets_a_server_error(server, engine):
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    failures: list[str] = []
    for operation in operations:
        check = _fuzz(operation.as_strategy(), server.url, failures)
        check()
    assert not failures, "\n".join(failures)
    assert engine.runs() == [], "a fuzzed request started a run"


def _fuzz(strategy: Any, base_url: str, failures: list[str]) -> Any:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        case = data.draw(strategy)
        response = case.call(base_url=base_url, timeout=10)
        if response.status_code >= 500:
            where = f"{case.method} {case.formatted_path} {case.query or ''}"
            failures.append(f"{where} -> {response.status_code}: {response.text[:300]}")

    return check
