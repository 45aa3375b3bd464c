"""Credentials: the write key (ingestion) and the server key (server-side reads)."""

from __future__ import annotations

import base64
import binascii

import msgspec

from gateway._wire import WriteKeyOnly
from gateway.errors import Unauthorized
from gateway.sources import Source, SourceRegistry

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
    except (msgspec.MsgspecError, UnicodeDecodeError, RecursionError):
        return None


def bearer_token(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class WriteKeyAuthenticator:
    """The authenticate stage: the Basic username, else `writeKey` in the body."""

    __slots__ = ("_sources",)

    def __init__(self, sources: SourceRegistry) -> None:
        self._sources = sources

    async def __call__(self, authorization: str | None, body: bytes) -> Source:
        key = basic_username(authorization) or body_write_key(body)
        if not key:
            raise Unauthorized(
                "missing write key: send it as the HTTP Basic username or as writeKey in the body",
                code="missing_write_key",
            )
        source = await self._sources.by_write_key(key)
        if source is None:
            raise Unauthorized("unknown write key", code="invalid_write_key")
        return source


async def authenticate_server_key(sources: SourceRegistry, authorization: str | None) -> Source:
    token = bearer_token(authorization)
    if token is None:
        raise Unauthorized(
            "send the server key as Authorization: Bearer sk_…", code="missing_server_key"
        )
    source = await sources.by_server_key(token)
    if source is None:
        raise Unauthorized("unknown server key", code="invalid_server_key")
    return source
