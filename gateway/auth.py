"""Credentials: the write key (ingestion) and the server key (server-side reads)."""

from __future__ import annotations

import base64
import binascii

import msgspec
from litestar import Request

from gateway._wire import WriteKeyOnly
from gateway.errors import Unauthorized
from gateway.runtime import Runtime
from gateway.sources import Source

_write_key_decoder = msgspec.json.Decoder(WriteKeyOnly)


def basic_username(authorization: str | None) -> str | None:
    """The username of an HTTP Basic header (Segment puts the write key there)."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("malformed Basic credentials", code="invalid_credentials") from None
    return decoded.partition(":")[0] or None


def body_write_key(body: bytes) -> str | None:
    """`writeKey` from a JSON body, or None when absent or unreadable (validate says why)."""
    try:
        return _write_key_decoder.decode(body).writeKey
    except msgspec.MsgspecError:
        return None


async def authenticate_write_key(runtime: Runtime, key: str | None) -> Source:
    if not key:
        raise Unauthorized(
            "missing write key: send it as the HTTP Basic username or as writeKey in the body",
            code="missing_write_key",
        )
    source = await runtime.sources.by_write_key(key)
    if source is None:
        raise Unauthorized("unknown write key", code="invalid_write_key")
    return source


def bearer_token(request: Request) -> str | None:  # type: ignore[type-arg]
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate_server_key(request: Request) -> Source:  # type: ignore[type-arg]
    runtime: Runtime = request.app.state.runtime
    token = bearer_token(request)
    if token is None:
        raise Unauthorized(
            "send the server key as Authorization: Bearer sk_…", code="missing_server_key"
        )
    source = await runtime.sources.by_server_key(token)
    if source is None:
        raise Unauthorized("unknown server key", code="invalid_server_key")
    return source
