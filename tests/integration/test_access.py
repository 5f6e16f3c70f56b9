"""Tokens with roles and the audit trail, through the CLI and the Python API, on a real Redis.

The web server's side (Bearer tokens, roles per endpoint) is tested in tests/web.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery

from tests.helpers import in_thread_worker
from tests.integration import test_cli
from tests.integration.test_cli import assert_clean_error, invoke
from wfcelery import Workflow
from wfcelery.cli import EXIT_BAD_INPUT, EXIT_OK
from wfcelery.client.audit import acting_as


@pytest.fixture
def cli_app(app: Celery) -> Iterator[Celery]:
    """The app the CLI loads (``-A tests.integration.test_cli:APP``)."""
    test_cli.APP = app
    yield app
    test_cli.APP = None


def _values(r: redis.Redis, prefix: str) -> list[str]:
    """Every value stored under the app's key prefix, whatever the key's type."""
    found: list[str] = []
    for key in r.scan_iter(f"{prefix}:*"):
        kind = r.type(key)
        if kind == "string":
            found.append(r.get(key))
        elif kind == "hash":
            found += [f"{k}={v}" for k, v in r.hgetall(key).items()]
        elif kind == "stream":
            found += [str(fields) for _, fields in r.xrange(key)]
        elif kind == "list":
            found += r.lrange(key, 0, -1)
        elif kind == "set":
            found += r.smembers(key)
        elif kind == "zset":
            found += r.zrange(key, 0, -1)
    assert found, "nothing scanned: the check would prove nothing"
    return found


def test_a_token_is_printed_once_and_stored_only_as_a_hash(
    cli_app: Celery, engine: Any, r: redis.Redis
) -> None:
    result = invoke("token", "create", "grafana", "--role", "viewer")
    assert result.exit_code == EXIT_OK, result.output
    secret = result.stdout.split()[-1]
    assert secret.startswith("wfc_")
    assert len(secret) > 40
    assert not [v for v in _values(r, cli_app.conf.wfcelery_key_prefix) if secret in v]
    owner = engine.authenticate(secret)
    assert (owner.name, owner.role.value) == ("grafana", "viewer")
    listed = invoke("token", "list", "--json")
    assert [t["name"] for t in json.loads(listed.stdout)] == ["grafana"]
    assert secret not in listed.output


def test_a_revoked_token_is_refused_at_once(cli_app: Celery, engine: Any) -> None:
    secret = engine.create_token("ci", "operator")
    assert engine.authenticate(secret) is not None
    assert invoke("token", "revoke", "ci").exit_code == EXIT_OK
    assert engine.authenticate(secret) is None
    assert engine.authenticate("wfc_" + "x" * 43) is None


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["token", "create", "x", "--role", "root"], "root"),
        (["token", "create", "bad name!", "--role", "viewer"], "bad name!"),
        (["token", "revoke", "nobody"], "nobody"),
    ],
)
def test_bad_token_input_is_one_clear_error(cli_app: Celery, args: list[str], fragment: str) -> None:
    result = invoke(*args)
    assert result.exit_code == EXIT_BAD_INPUT
    assert fragment in result.stderr
    assert "Traceback" not in result.output


def test_a_taken_token_name_is_refused_and_changes_nothing(cli_app: Celery, engine: Any) -> None:
    first = engine.create_token("dup", "admin")
    assert_clean_error(invoke("token", "create", "dup", "--role", "viewer"), EXIT_BAD_INPUT, "dup")
    assert engine.authenticate(first).role.value == "admin"


def test_every_write_is_audited_with_its_actor(cli_app: Celery, engine: Any) -> None:
    wf = Workflow("audited")
    wf.add("a", "proj.add", args=[1, 2])
    with in_thread_worker(cli_app):
        run = engine.submit(wf)  # the Python API: actor "api"
        run.wait(timeout=30)
        with acting_as("bob"), pytest.raises(Exception, match="cannot pause"):
            run.pause()  # refused (finished): audited with its error
        assert invoke("cleanup", run.id).exit_code == EXIT_OK  # the CLI: cli:<os user>
    entries = engine.audit_log(10)
    got = [(e.actor, e.action, e.target, e.outcome.split(":")[0]) for e in reversed(entries)]
    assert got == [
        ("api", "submit", f"run {run.id}", "ok"),
        ("bob", "pause", f"run {run.id}", "error"),
        (f"cli:{getpass.getuser()}", "cleanup", f"run {run.id}", "ok"),
    ]
    shown = invoke("audit", "--json")
    assert [e["action"] for e in json.loads(shown.stdout)][:3] == ["cleanup", "pause", "submit"]
    lines = invoke("audit").stdout.splitlines()
    assert lines[0].split() == ["WHEN", "ACTOR", "ACTION", "TARGET", "OUTCOME"]
    column = lines[0].index("TARGET")
    assert [line[column:].split()[:2] for line in lines[1:4]] == [["run", run.id]] * 3  # aligned
