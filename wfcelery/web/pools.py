"""The REST API of pools and rate limits: ``GET /api/pools`` (slots, rate, slots used and nodes waiting,
per pool) and ``PUT /api/pools/{name}`` (resize at run time; admin).

Errors answer as the rest of the API: 422 a bad name, slots < 1 or a malformed rate (named; nothing
changed), 503 the tracker unreachable.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from wfcelery.web.api import EngineDep

router = APIRouter(prefix="/api", tags=["pools"])

Name = Annotated[str, Path(max_length=100, description="The pool's name")]


class PoolRequest(BaseModel):
    """New limits of a pool: slots, rate or both (a field left out keeps its value)."""

    model_config = ConfigDict(extra="forbid")

    slots: int | None = Field(None, description="Nodes RUNNING in the pool at once at most (>= 1)")
    rate: str | None = Field(
        None, max_length=40, description="Starts per s, m or h: 10/s, 60/m; none: no rate"
    )


@router.get("/pools", summary="Pools: slots, rate, slots used and nodes waiting, across every worker and run")
def list_pools(engine: EngineDep) -> list[dict[str, Any]]:
    return [info.to_dict() for info in engine.pools()]


@router.put(
    "/pools/{name}",
    summary="Set a pool's slots and/or rate from the next release on (a resize down preempts nothing)",
    responses={422: {"description": "A bad name, slots < 1 or a malformed rate (nothing changed)"}},
)
def set_pool(engine: EngineDep, name: Name, body: PoolRequest) -> dict[str, Any]:
    return dict(engine.set_pool(name, slots=body.slots, rate=body.rate).to_dict())
