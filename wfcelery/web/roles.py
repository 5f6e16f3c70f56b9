"""What each role may do over REST: one rule per API route, checked on every request.

:class:`~wfcelery.web.security.Guard` identifies the caller (a Bearer token, a token as a Basic password,
or the ``--auth`` admin login) and stores a :class:`Principal` in the request's state; the
:func:`authorize` dependency, on every ``/api`` route, looks the matched route up in :data:`RULES` and
answers 403 in the documented error shape when the caller's role is below the rule's. A route without a
rule is refused to everyone (and the role test, generated from the OpenAPI document, fails), so a new
endpoint cannot be served open by mistake.

A viewer reads; an operator also submits, controls and signals runs; an admin also deletes, cleans up,
and manages pools, schedules and tokens -- and reads the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from wfcelery.client.engine import Engine
from wfcelery.tracker.access import Role
from wfcelery.web.errors import Forbidden


@dataclass(frozen=True)
class Principal:
    """Who sent a request: the actor name the audit trail records, and the role it holds."""

    name: str
    role: Role


#: The caller of a server that needs no credentials (no ``--auth``, no token created yet).
ANONYMOUS = Principal("anonymous", Role.ADMIN)

#: (method, route path) -> the least role that may call it. Every ``/api`` route must be listed.
RULES: dict[tuple[str, str], Role] = {
    ("GET", "/api/health"): Role.VIEWER,
    ("GET", "/api/me"): Role.VIEWER,
    ("GET", "/api/runs"): Role.VIEWER,
    ("GET", "/api/runs/{run_id}"): Role.VIEWER,
    ("GET", "/api/runs/{run_id}/graph"): Role.VIEWER,
    ("GET", "/api/runs/{run_id}/results"): Role.VIEWER,
    ("GET", "/api/runs/{run_id}/nodes/{node}"): Role.VIEWER,
    ("GET", "/api/runs/{run_id}/events"): Role.VIEWER,
    ("GET", "/api/definitions"): Role.VIEWER,
    ("GET", "/api/definitions/{name}"): Role.VIEWER,
    ("POST", "/api/runs"): Role.OPERATOR,
    ("POST", "/api/runs/{run_id}/pause"): Role.OPERATOR,
    ("POST", "/api/runs/{run_id}/resume"): Role.OPERATOR,
    ("POST", "/api/runs/{run_id}/cancel"): Role.OPERATOR,
    ("POST", "/api/runs/{run_id}/retry"): Role.OPERATOR,
    ("POST", "/api/runs/{run_id}/nodes/{node}/signal"): Role.OPERATOR,
    ("GET", "/api/waiting"): Role.VIEWER,
    ("GET", "/api/schedules"): Role.VIEWER,
    ("GET", "/api/schedules/{name}"): Role.VIEWER,
    ("GET", "/api/run-keys/{key}"): Role.VIEWER,
    ("GET", "/api/pools"): Role.VIEWER,
    ("GET", "/api/history/runs"): Role.VIEWER,
    ("GET", "/api/history/workflows/{name}"): Role.VIEWER,
    ("GET", "/api/history/workflows/{name}/nodes/{node}"): Role.VIEWER,
    ("DELETE", "/api/runs/{run_id}"): Role.ADMIN,
    ("POST", "/api/schedules"): Role.ADMIN,
    ("DELETE", "/api/schedules/{name}"): Role.ADMIN,
    ("POST", "/api/schedules/{name}/pause"): Role.ADMIN,
    ("POST", "/api/schedules/{name}/resume"): Role.ADMIN,
    ("POST", "/api/schedules/{name}/backfill"): Role.ADMIN,
    ("PUT", "/api/pools/{name}"): Role.ADMIN,
    ("GET", "/api/audit"): Role.ADMIN,
}


def principal_of(request: Request) -> Principal:
    found = getattr(request.state, "principal", None)
    return found if isinstance(found, Principal) else ANONYMOUS


def authorize(request: Request) -> Principal:
    """The caller, when its role may call the matched route; else :class:`Forbidden` (403)."""
    principal = principal_of(request)
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    method = "GET" if request.method == "HEAD" else request.method
    needed = RULES.get((method, path))
    if needed is None:
        raise Forbidden(f"{method} {path} has no access rule: refused to every role")
    if not principal.role.allows(needed):
        raise Forbidden(
            f"{principal.name!r} ({principal.role}) may not {method} {path}: it needs the {needed} role"
        )
    return principal


PrincipalDep = Annotated[Principal, Depends(authorize)]

access = APIRouter(prefix="/api", dependencies=[Depends(authorize)])


@access.get("/me", summary="Who the credentials of this request are: name and role")
def me(principal: PrincipalDep) -> dict[str, str]:
    return {"name": principal.name, "role": principal.role.value}


@access.get("/audit", summary="The audit trail, newest first: who did what, to what, when, with what outcome")
def audit(
    request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, list[dict[str, Any]]]:
    engine: Engine = request.app.state.engine
    return {"entries": [e.to_dict() for e in engine.audit_log(limit)]}
