"""`POST /ofrep/v1/evaluate/flags/{key}` answered past litestar's handler machinery.

It is the read apps make most, and after routing, litestar's handling of it (the request
object, the signature model, the kwargs, the response object) cost more than the evaluation:
the route took 187-196 us of CPU a request, 128 this way, where bare litestar's whole request
is 80 (`make bench`'s `ofrep_vs_bare`). The request layer runs where litestar runs app
middleware, after routing: the router has matched the route, parsed `key` and put the route's
exception handlers in the scope. What decides the answer stays the route's own:
- its request class, its guard (the caller) and the app's `before_request` hook;
- the body as `Request.body` reads it, with the app's limit (`read_limited`);
- `resolve_one`, the routed handler's body;
- any failure goes to litestar's exception middleware with that scope, so every error answer
  is the routed one and passes the request layer's `send` like any other.

The route stays registered: it documents the endpoint (OpenAPI) and serves it when
`enabled` is off. `tests/test_ofrep_direct.py` holds the two to the same answers.
"""

from __future__ import annotations

import math
from typing import Any

from litestar import Litestar
from litestar.exceptions import ClientException, InternalServerException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.handlers import HTTPRouteHandler
from litestar.middleware._internal.exceptions import ExceptionHandlerMiddleware
from litestar.serialization import encode_json

from gateway.callers import caller_of
from gateway.routes_ofrep import resolve_one

ROUTE = "/ofrep/v1/evaluate/flags"
TEMPLATE = ROUTE + "/{key}"  # as the router names it
ASGIApp = Any


class DirectEvaluation:
    """Takes the requests it can serve (`take`); bound to the app once litestar built it."""

    def __init__(self) -> None:
        self.enabled = True  # False: every request to the router (the tests compare the two)
        self.served = 0
        self._handler: Any = None
        self._max_body: float = math.inf
        self._asgi: ASGIApp = ExceptionHandlerMiddleware(self._serve, debug=None)  # type: ignore[arg-type]

    def bind(self, app: Litestar) -> None:
        """The routed handler of the single-flag evaluation, as the router finds it."""
        _, handler, _, _, template = app.asgi_router.handle_routing(ROUTE + "/key", "POST")
        if template != TEMPLATE or not isinstance(handler, HTTPRouteHandler):
            raise RuntimeError(f"{ROUTE}/{{key}} routes to {template}, not to {TEMPLATE}")
        self._handler = handler
        self._max_body = handler.resolve_request_max_body_size() or math.inf

    def take(self, scope: dict[str, Any]) -> ASGIApp | None:
        """The ASGI app serving this request directly, or None (the route's own handling).

        The request layer runs where litestar runs app middleware: after routing. So the
        router has matched the route, parsed `key` and set the route's exception handlers in
        the scope; only the handling after that is skipped."""
        if not self.enabled or scope.get("route_handler") is not self._handler:
            return None
        self.served += 1
        return self._asgi

    async def _serve(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        handler = self._handler
        request = handler.resolve_request_class()(scope=scope, receive=receive, send=send)
        await handler.authorize_connection(connection=request)
        before = handler.resolve_before_request()
        if before is not None and await before(request) is not None:
            raise RuntimeError("a before_request hook answered: the router must serve this")

        async def read_body() -> bytes:
            return await read_limited(scope, receive, self._max_body)

        runtime = scope["app"].state.runtime
        key = scope["path_params"]["key"]
        body = encode_json(await resolve_one(runtime, caller_of(request), key, read_body))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def read_limited(scope: dict[str, Any], receive: Any, limit: float) -> bytes:
    """The body as litestar's `Request.body` reads it, with its refusals: an unreadable or
    too large Content-Length, too many bytes, a client gone before the end."""
    announced = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                announced = int(value)
            except ValueError:
                raise ClientException(
                    f"Invalid content-length: {value.decode('latin-1')!r}"
                ) from None
            break
    if announced is not None and announced > limit:
        raise RequestEntityTooLarge
    chunks = []
    total = 0
    while True:
        event = await receive()
        if event["type"] == "http.request":
            chunk = event["body"]
            if chunk:
                total += len(chunk)
                if total > limit:
                    raise RequestEntityTooLarge
                chunks.append(chunk)
            if not event.get("more_body", False):
                return b"".join(chunks)
        if event["type"] == "http.disconnect":
            raise InternalServerException("client disconnected prematurely")
