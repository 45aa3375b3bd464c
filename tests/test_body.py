"""Reading bodies: size limits and gzip, including hostile gzip."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway._body import decode_content, read_limited
from gateway.errors import BadRequest, PayloadTooLarge


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_read_limited_stops_past_the_limit() -> None:
    """A streamed body past the limit raises PayloadTooLarge."""
    with pytest.raises(PayloadTooLarge):
        await read_limited(_chunks(b"a" * 60, b"b" * 60), limit=100)
    assert await read_limited(_chunks(b"a" * 50, b"b" * 50), limit=100) == b"a" * 50 + b"b" * 50


@given(st.binary(max_size=4096))
def test_gzip_round_trip(data: bytes) -> None:
    """Any gzipped body inflates to what was sent, with or without the header."""
    packed = gzip.compress(data)
    assert decode_content(packed, "gzip", limit=10_000) == data
    assert decode_content(packed, None, limit=10_000) == data


def test_gzip_bomb_is_413() -> None:
    """A small gzip that inflates past the limit is refused without inflating it all."""
    bomb = gzip.compress(b"\0" * 5_000_000)
    assert len(bomb) < 10_000
    with pytest.raises(PayloadTooLarge):
        decode_content(bomb, "gzip", limit=512_000)


def test_truncated_gzip_is_400() -> None:
    """A gzip stream cut short is refused as invalid_gzip."""
    packed = gzip.compress(b'{"userId": "u"}' * 100)
    with pytest.raises(BadRequest, match="truncated"):
        decode_content(packed[: len(packed) // 2], "gzip", limit=10_000)


def test_unknown_encoding_is_400() -> None:
    """Content-Encoding: br is refused with a clear code."""
    with pytest.raises(BadRequest) as caught:
        decode_content(b"{}", "br", limit=100)
    assert caught.value.code == "unsupported_encoding"
