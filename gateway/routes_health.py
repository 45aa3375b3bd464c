"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from gateway.runtime import Runtime


@get("/healthz", operation_id="healthz", tags=["health"])
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@get("/readyz", operation_id="readyz", tags=["health"])
async def readyz(request: Request) -> Response[dict[str, Any]]:  # type: ignore[type-arg]
    """200 when the database and the bus are reachable, else 503 naming what is not."""
    runtime: Runtime = request.app.state.runtime
    checks = await runtime.check_ready()
    ready = all(value == "ok" for value in checks.values())
    return Response(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )
