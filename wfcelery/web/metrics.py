"""``GET /metrics``: the fleet-wide Prometheus metrics (``wfcelery.metrics``), on the dashboard's server.

Needs the extra ``wfcelery[metrics]`` (prometheus-client); without it the route answers 501 naming the
extra. Each scrape reads the tracker's counters (one HGETALL; the shards on a Redis Cluster); while the
tracker's Redis is away it answers 200 with ``wfcelery_tracker_up 0`` and nothing else.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

metrics_router = APIRouter(include_in_schema=False)


@metrics_router.get("/metrics")
def metrics(request: Request) -> Response:
    try:
        from wfcelery.metrics import CONTENT_TYPE_LATEST, exposition, registry_for
    except ImportError as e:
        return JSONResponse({"error": str(e), "type": "MissingExtra"}, status_code=501)
    state: Any = request.app.state
    registry = getattr(state, "metrics_registry", None)
    if registry is None:  # one registry per app: prometheus-client keeps no state between scrapes here
        registry = state.metrics_registry = registry_for(state.engine.metrics)
    return Response(exposition(registry), media_type=CONTENT_TYPE_LATEST)
