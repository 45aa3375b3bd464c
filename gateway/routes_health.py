"""Liveness, readiness and metrics."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get
from litestar.params import HeaderParameter

from gateway.auth import bearer_token
from gateway.dependencies import MetricsDep, SettingsDep
from gateway.errors import Unauthorized
from gateway.route_helpers import runtime_of
from gateway.runtime import check_ready


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: str


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    status: str  # ready | not_ready
    checks: dict[str, str]  # dependency -> "ok" or why not


@get("/healthz", operation_id="healthz", tags=["health"])
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@get("/readyz", operation_id="readyz", tags=["health"])
async def readyz(request: Request[Any, Any, Any]) -> Response[Readiness]:
    """200 when the database and the bus are reachable (and `serve`'s core child has
    started, with `core_process`), else 503 naming what is not."""
    runtime = runtime_of(request)
    checks = await check_ready(runtime.database, runtime.bus)
    if runtime.core_child is not None:
        checks["core"] = "ok" if runtime.core_child.heard else "starting"
    ready = all(value == "ok" for value in checks.values())
    return Response(
        Readiness(status="ready" if ready else "not_ready", checks=checks),
        status_code=200 if ready else 503,
    )


@get("/metrics", operation_id="metrics", tags=["health"], media_type="text/plain; version=0.0.4")
async def metrics(
    settings: SettingsDep,
    metrics: MetricsDep,
    authorization: Annotated[str | None, HeaderParameter(name="authorization")] = None,
) -> Response[str]:
    """Prometheus text format. With CONSENTGATE_METRICS_TOKEN set, it needs that bearer token."""
    expected = settings.metrics_token
    if expected:
        given = bearer_token(authorization) or ""
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise Unauthorized(
                "send the metrics token as a bearer token", code="invalid_metrics_token"
            )
    return Response(metrics.prometheus(), media_type="text/plain; version=0.0.4")


HEALTH_HANDLERS = [healthz, readyz, metrics]
