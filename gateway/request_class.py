"""The app's request class: a JSON body that cannot be decoded is a 400, whatever the reason.

litestar decodes a handler's `data` with `Request.json()`. msgspec raises `UnicodeDecodeError`
for invalid UTF-8 and `RecursionError` for deep nesting, which litestar would let through as
500s; here every decoding failure is the gateway's own 400.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import SerializationException

from gateway._body import MAX_JSON_DEPTH
from gateway.errors import BadRequest


class GatewayRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        try:
            return await super().json()
        except (SerializationException, msgspec.DecodeError) as exc:
            raise BadRequest(f"malformed JSON: {exc}", code="invalid_json") from None
        except UnicodeDecodeError:
            raise BadRequest("the body is not valid UTF-8", code="invalid_json") from None
        except RecursionError:
            raise BadRequest(
                f"JSON nests deeper than {MAX_JSON_DEPTH} levels", code="nesting_too_deep"
            ) from None
