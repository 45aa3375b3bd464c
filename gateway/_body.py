"""Reading request bodies within limits, gzip included (SDKs gzip by default), and
decoding JSON so that no input, however malformed or deep, escapes as anything but a 400."""

from __future__ import annotations

import re
import zlib
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from gateway.errors import BadRequest, PayloadTooLarge

_GZIP_MAGIC = b"\x1f\x8b"

# Objects and arrays nested in one event (the event itself is level 1). Deeper input is
# refused before anything recurses over it (the scrubber, the encoder, the database).
MAX_JSON_DEPTH = 32
_STRING_OR_BRACKET = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_OPENING = frozenset(b"[{")


# What decoding JSON raises when the input, not the code, is wrong.
DECODE_FAILURES = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def decode_json(
    decoder: msgspec.json.Decoder[Any], data: bytes | msgspec.Raw, *, invalid_code: str
) -> Any:
    """`decoder.decode(data)`, every failure a `BadRequest` (`invalid_code` for a wrong shape)."""
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise BadRequest(str(exc), code=invalid_code) from None
    except DECODE_FAILURES as exc:
        raise undecodable(exc) from None


def undecodable(exc: BaseException) -> BadRequest:
    """The 400 for a body that is not JSON we can read: malformed, not UTF-8, or too deep."""
    if isinstance(exc, UnicodeDecodeError):
        return BadRequest("the body is not valid UTF-8", code="invalid_json")
    if isinstance(exc, RecursionError):
        return BadRequest(
            f"JSON nests deeper than {MAX_JSON_DEPTH} levels", code="nesting_too_deep"
        )
    return BadRequest(f"malformed JSON: {exc}", code="invalid_json")


def check_depth(data: bytes, where: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON that nests objects and arrays deeper than `limit`.

    Counting brackets is enough for nearly every event (fewer brackets than the limit);
    only then are the brackets outside strings followed one by one.
    """
    if data.count(b"{") + data.count(b"[") <= limit:
        return
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(data):
        token = match.group()
        if len(token) != 1:
            continue  # a string
        if token[0] in _OPENING:
            depth += 1
            if depth > limit:
                raise BadRequest(
                    f"{where} nests deeper than {limit} levels", code="nesting_too_deep"
                )
        else:
            depth -= 1


def check_value_depth(value: Any, where: str, limit: int = MAX_JSON_DEPTH) -> None:
    """The same bound on an already decoded value (small, rare ones: a batch's context)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                raise BadRequest(
                    f"{where} nests deeper than {limit} levels", code="nesting_too_deep"
                )
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)


async def read_limited(
    chunks: AsyncIterator[bytes], limit: int, code: str = "request_too_large"
) -> bytes:
    """The whole body, or `PayloadTooLarge` as soon as it passes `limit` bytes."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes", code=code)
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
