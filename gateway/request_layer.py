"""The one ASGI layer around the app: CORS on the ingestion paths, the request scope, and the
server span of every request outside ingestion. One layer, not three, because each layer costs
a coroutine, a wrapped `send` and a copy of the response's start message on every request.

- **CORS, ingestion paths only**: analytics.js posts from the app's own origin. Any origin may
  send events (write keys are public, and no cookie or credential is ever allowed); a source
  can narrow that to its own origins (`EdgeConfig.allowed_origins`, checked by the pipeline
  once the write key names the source: a preflight carries no write key). Every other path
  sends no CORS header, so browsers keep it same-origin. Preflights are answered first, with
  nothing else.
- **Request ids**: every HTTP request is served inside a request scope (observability). The id
  is the caller's `X-Request-Id` when it is a plain id, else a new one; it is on every log line
  written while serving the request, on the request's span, and sent back in the
  `X-Request-Id` response header.
- **A server span** for every request outside ingestion (which traces its own pipeline), named
  after the route's template once routing chose it (`HTTP GET /v1/consent/{user_id:str}`),
  never after the raw path, which may hold a user id.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any, Protocol

from opentelemetry.trace import Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from observability import request_id_from, request_scope, server_span

ASGIApp = Any


class Direct(Protocol):
    """Answers some routed requests itself, past litestar's handling (`gateway.ofrep_direct`)."""

    def take(self, scope: dict[str, Any]) -> ASGIApp | None: ...


# what a Segment or RudderStack browser SDK may send, and what a page may read back
_ALLOWED_HEADERS = b"authorization, content-type, content-encoding, traceparent, x-request-id"
_EXPOSED_HEADERS = b"retry-after, x-request-id"
PREFLIGHT_MAX_AGE_SECONDS = 86_400
_REQUEST_ID = b"x-request-id"
_CORS_HEADERS = (
    (b"access-control-allow-origin", b"*"),
    (b"access-control-expose-headers", _EXPOSED_HEADERS),
)


def request_layer(
    app: ASGIApp,
    *,
    tracer: Tracer,
    cors_paths: Iterable[str],
    untraced_paths: Iterable[str],
    direct: Direct | None = None,
) -> ASGIApp:
    """`app` inside the layer: CORS on `cors_paths`, a span on every path but `untraced_paths`;
    what `direct` takes it serves instead of `app` (in the same scope and span)."""
    cors = frozenset(cors_paths)
    untraced = frozenset(untraced_paths)

    async def layer(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        path = scope["path"]
        with_cors = path in cors
        given = None
        preflight = False
        for name, value in scope["headers"]:
            if name == _REQUEST_ID:
                given = value
            elif name == b"access-control-request-method":
                preflight = True
        if with_cors and preflight and scope["method"] == "OPTIONS":
            await _preflight(send)
            return
        request_id = request_id_from(given.decode("latin-1") if given is not None else None)
        added = [(_REQUEST_ID, request_id.encode()), *(_CORS_HEADERS if with_cors else ())]
        status = [500]

        async def send_labelled(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                kept = [h for h in message.get("headers", ()) if h[0].lower() != _REQUEST_ID]
                message = {**message, "headers": [*kept, *added]}
            await send(message)

        serving = (direct.take(scope) if direct is not None else None) or app
        with request_scope(request_id):
            if path in untraced:
                await serving(scope, receive, send_labelled)
            else:
                await _traced(serving, tracer, request_id, status, (scope, receive, send_labelled))

    return layer


async def _traced(
    app: ASGIApp,
    tracer: Tracer,
    request_id: str,
    status: list[int],
    call: tuple[dict[str, Any], Any, Any],
) -> None:
    scope = call[0]
    carrier = {  # what the W3C propagator reads, not every header decoded
        name.decode(): value.decode("latin-1")
        for name, value in scope["headers"]
        if name in _TRACE_HEADERS
    }
    method = scope.get("method", "GET")
    with server_span(tracer, f"HTTP {method}", carrier) as span:
        try:
            await app(*call)
        finally:
            route = _route_of(scope.get("route_handler"))
            attributes: dict[str, AttributeValue] = {
                "http.request.method": method,
                "consentgate.request_id": request_id,
                "http.response.status_code": status[0],
            }
            if route is not None:
                span.update_name(f"HTTP {method} {route}")
                attributes["http.route"] = route
            span.set_attributes(attributes)  # at once: each set_attribute takes the span's lock
            if status[0] >= 500:
                span.set_status(Status(StatusCode.ERROR))


_TRACE_HEADERS = frozenset((b"traceparent", b"tracestate"))


def _route_of(handler: object) -> str | None:
    """The route template a span is named by (the first, when a handler has several)."""
    try:
        return _known_route(handler)
    except TypeError:  # a handler that cannot be a cache key
        return _route(handler)


def _route(handler: object) -> str | None:
    paths = sorted(getattr(handler, "paths", ()) or ())
    return paths[0] if paths else None


# route handlers live as long as their app: a few dozen of them
_known_route = functools.lru_cache(maxsize=512)(_route)


async def _preflight(send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 204,
            "headers": [
                (b"access-control-allow-origin", b"*"),
                (b"access-control-allow-methods", b"POST"),
                (b"access-control-allow-headers", _ALLOWED_HEADERS),
                (b"access-control-max-age", str(PREFLIGHT_MAX_AGE_SECONDS).encode()),
                (b"vary", b"origin, access-control-request-headers"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})
