"""What the JSON routes share: the runtime, a bounded typed body, and who is calling.

Credentials are told apart by their prefix: `sk_` server keys, `st_` subject tokens, `at_`
admin tokens (each is then verified by its own authenticator).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Request

from gateway._body import decode_json, read_limited
from gateway.auth import authenticate_server_key, bearer_token
from gateway.errors import BadRequest, RequestTimeout, Unauthorized
from gateway.runtime import Runtime
from gateway.sources import Source

MAX_BODY = 64 * 1024
# query parameters: a userId may be as long as an event's identifier, anything else is short
MAX_USER_ID_PARAM = 1024
MAX_QUERY_PARAM = 256


def runtime_of(request: Request) -> Runtime:  # type: ignore[type-arg]
    runtime: Runtime = request.app.state.runtime
    return runtime


async def read_body(request: Request, kind: type[Any]) -> Any:  # type: ignore[type-arg]
    """The body decoded as `kind`: 400 when too large, malformed or of the wrong shape."""
    body = await read_limited(body_chunks(request), MAX_BODY, code="body_too_large")
    return decode_json(_decoder(kind), body, invalid_code="invalid_body")


async def body_chunks(request: Request) -> AsyncIterator[bytes]:  # type: ignore[type-arg]
    """The body as it arrives. A client gone (or cut off by a read timeout) before its end is
    a 408, not litestar's 500 "client disconnected prematurely"."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise RequestTimeout(
                "the connection closed before the body was complete", code="client_disconnected"
            )
        body: bytes = message.get("body", b"")  # type: ignore[assignment]
        if body:
            yield body
        if not message.get("more_body", False):
            return


_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def _decoder(kind: type[Any]) -> msgspec.json.Decoder[Any]:
    """One decoder per body type, built on first use."""
    decoder = _DECODERS.get(kind)
    if decoder is None:
        decoder = _DECODERS[kind] = msgspec.json.Decoder(kind)
    return decoder


def bearer_kind(request: Request) -> str:  # type: ignore[type-arg]
    """The bearer credential's prefix (`sk_`, `st_`, `at_`), or "" without one."""
    token = bearer_token(request.headers.get("authorization")) or ""
    return token[:3]


async def server_source(request: Request) -> Source:  # type: ignore[type-arg]
    """The source whose server key authorizes the request (401 otherwise)."""
    return await authenticate_server_key(
        runtime_of(request).sources, request.headers.get("authorization")
    )


async def token_subject(request: Request) -> tuple[Source, str]:  # type: ignore[type-arg]
    """The source and subject pseudonym of the request's subject token (401 otherwise)."""
    runtime = runtime_of(request)
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise Unauthorized(
            "send a subject token as Authorization: Bearer st_…", code="missing_token"
        )
    claims = await runtime.tokens.verify(token)
    source = await runtime.sources.by_id(claims.source_id)
    if source is None:
        raise Unauthorized("the subject token is invalid", code="invalid_token")
    return source, claims.subject


def bounded_query(request: Request) -> dict[str, str]:  # type: ignore[type-arg]
    """The query parameters, each within its size limit (400 otherwise)."""
    params = dict(request.query_params)
    for name, value in params.items():
        limit = MAX_USER_ID_PARAM if name == "userId" else MAX_QUERY_PARAM
        if len(name) > MAX_QUERY_PARAM or len(value) > limit:
            raise BadRequest(
                f"query parameter {name[:40]!r} exceeds {limit} characters", code="invalid_query"
            )
    return params
