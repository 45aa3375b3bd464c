"""Reading request bodies within limits, gzip included (SDKs gzip by default)."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

from gateway.errors import BadRequest, PayloadTooLarge

_GZIP_MAGIC = b"\x1f\x8b"


async def read_limited(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The whole body, or `PayloadTooLarge` as soon as it passes `limit` bytes."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes", code="request_too_large")
        parts.append(chunk)
    return b"".join(parts)


def decode_content(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Gunzip when the body is gzip, whatever its labels say; cap the inflated size."""
    encoding = (content_encoding or "").strip().lower()
    if encoding not in {"", "identity", "gzip", "x-gzip"}:
        raise BadRequest(f"unsupported Content-Encoding {encoding!r}", code="unsupported_encoding")
    if encoding in {"gzip", "x-gzip"} or body.startswith(_GZIP_MAGIC):
        return _gunzip(body, limit)
    return body


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"body is not valid gzip: {exc}", code="invalid_gzip") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(
            f"decompressed request body exceeds {limit} bytes", code="request_too_large"
        )
    if not inflater.eof:
        raise BadRequest("gzip body is truncated", code="invalid_gzip")
    return data
