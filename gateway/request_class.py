"""The app's request class: a JSON body that cannot be decoded is a 400, whatever the reason.

litestar decodes a handler's `data` with `Request.json()`. msgspec raises `UnicodeDecodeError`
for invalid UTF-8 and `RecursionError` for deep nesting, which litestar would let through as
500s; here every decoding failure is the gateway's own 400.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import SerializationException

from gateway._body import DECODE_FAILURES, undecodable


class GatewayRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        try:
            return await super().json()
        except SerializationException as exc:
            raise undecodable(exc.__cause__ or exc) from None
        except DECODE_FAILURES as exc:
            raise undecodable(exc) from None
