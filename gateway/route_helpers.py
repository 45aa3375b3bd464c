"""What the routes share: the runtime, the body stream with its timeouts, and bounded query
parameters."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypeVar

from litestar import Response
from litestar.connection import ASGIConnection

from gateway.errors import BadRequest, RequestTimeout

if TYPE_CHECKING:
    from gateway.runtime import Runtime

AnyResponse = TypeVar("AnyResponse", bound=Response[Any])

MAX_BODY = 64 * 1024
# query parameters: a userId may be as long as an event's identifier, anything else is short
MAX_USER_ID_PARAM = 1024
MAX_QUERY_PARAM = 256


def runtime_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Runtime:
    """The services, straight from the app. The hot routes take them so, with the caller as
    their one dependency: litestar resolves two or more dependencies of a handler in an anyio
    task group, on every request (OFREP's seven cost 40% of its throughput)."""
    runtime: Runtime = connection.app.state.runtime
    return runtime


def set_session_cookie(
    connection: ASGIConnection[Any, Any, Any, Any],
    response: AnyResponse,
    name: str,
    value: str,
    path: str,
    max_age: int,
) -> AnyResponse:
    """A pages' session cookie: HttpOnly, SameSite=Strict, scoped to `path`, and Secure
    whenever the page came over HTTPS."""
    response.set_cookie(
        name,
        value,
        path=path,
        httponly=True,
        samesite="strict",
        secure=connection.url.scheme == "https",
        max_age=max_age,
    )
    return response


def etag_of(data: bytes) -> str:
    """A strong ETag for an answer's content."""
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def not_modified(request: Any, etag: str) -> bool:
    """Whether the request's If-None-Match names `etag` (weak or strong)."""
    header = request.headers.get("if-none-match") or ""
    return etag in {tag.strip().removeprefix("W/") for tag in header.split(",")}


async def body_chunks(request: Any) -> AsyncIterator[bytes]:
    """The body as it arrives. A client gone (or cut off by a read timeout) before its end is
    a 408, not litestar's 500 "client disconnected prematurely"."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise RequestTimeout(
                "the connection closed before the body was complete", code="client_disconnected"
            )
        body: bytes = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


def bounded_query(connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, str]:
    """The query parameters, each within its size limit (400 otherwise)."""
    params = dict(connection.query_params)
    for name, value in params.items():
        limit = MAX_USER_ID_PARAM if name == "userId" else MAX_QUERY_PARAM
        if len(name) > MAX_QUERY_PARAM or len(value) > limit:
            raise BadRequest(
                f"query parameter {name[:40]!r} exceeds {limit} characters", code="invalid_query"
            )
    return params
