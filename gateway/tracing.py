"""A server span for every HTTP request outside ingestion (which traces its own pipeline).

The span is named after the route's template once routing chose it (`HTTP GET
/v1/consent/{user_id:str}`), never after the raw path, which may hold a user id.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.routes_ingest import INGEST_ROUTES
from observability import current_request_id

_INGEST_PATHS = frozenset(path for paths in INGEST_ROUTES.values() for path in paths)
_PROPAGATOR = TraceContextTextMapPropagator()

ASGIApp = Any


def traced(app: ASGIApp, tracer: Tracer) -> ASGIApp:
    async def middleware(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in _INGEST_PATHS:
            await app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        method = scope.get("method", "GET")
        status: dict[str, int] = {}

        async def send_and_watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        with tracer.start_as_current_span(
            f"HTTP {method}",
            context=_PROPAGATOR.extract(headers),
            kind=SpanKind.SERVER,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                await app(scope, receive, send_and_watch)
            finally:
                handler = scope.get("route_handler")
                paths = sorted(getattr(handler, "paths", ()) or ())
                if paths:
                    span.update_name(f"HTTP {method} {paths[0]}")
                    span.set_attribute("http.route", paths[0])
                span.set_attribute("http.request.method", method)
                request_id = current_request_id()
                if request_id is not None:
                    span.set_attribute("consentgate.request_id", request_id)
                code = status.get("code", 500)
                span.set_attribute("http.response.status_code", code)
                if code >= 500:
                    span.set_status(Status(StatusCode.ERROR))

    return middleware
