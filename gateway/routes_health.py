"""Liveness and readiness."""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request, Response, get

from gateway.auth import bearer_token
from gateway.errors import Unauthorized
from gateway.route_helpers import runtime_of


@get("/healthz", operation_id="healthz", tags=["health"])
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@get("/readyz", operation_id="readyz", tags=["health"])
async def readyz(request: Request) -> Response[dict[str, Any]]:  # type: ignore[type-arg]
    """200 when the database and the bus are reachable, else 503 naming what is not."""
    runtime = runtime_of(request)
    checks = await runtime.check_ready()
    ready = all(value == "ok" for value in checks.values())
    return Response(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@get("/metrics", operation_id="metrics", tags=["health"], media_type="text/plain; version=0.0.4")
async def metrics(request: Request) -> Response[str]:  # type: ignore[type-arg]
    """Prometheus text format. With CONSENTGATE_METRICS_TOKEN set, it needs that bearer token."""
    runtime = runtime_of(request)
    expected = runtime.settings.metrics_token
    if expected:
        given = bearer_token(request.headers.get("authorization")) or ""
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise Unauthorized(
                "send the metrics token as a bearer token", code="invalid_metrics_token"
            )
    return Response(runtime.metrics.prometheus(), media_type="text/plain; version=0.0.4")
