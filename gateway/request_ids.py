"""Request ids: every HTTP request is served inside a request scope (observability).

The id is the caller's `X-Request-Id` when it is a plain id, else a new one; it is on every
log line written while serving the request, on the request's root span, and sent back in the
`X-Request-Id` response header.
"""

from __future__ import annotations

from typing import Any

from observability import request_id_from, request_scope

ASGIApp = Any
_HEADER = b"x-request-id"


def with_request_id(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers", []) if k == _HEADER), None)
        request_id = request_id_from(given.decode("latin-1") if given is not None else None)

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != _HEADER]
                message = {**message, "headers": [*headers, (_HEADER, request_id.encode())]}
            await send(message)

        with request_scope(request_id):
            await app(scope, receive, send_with_id)

    return middleware
