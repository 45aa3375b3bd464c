"""The gateway's errors, mapped to `{"error": CODE, "detail": TEXT}` in one place (app.py)."""

from __future__ import annotations

import msgspec


class ErrorBody(msgspec.Struct, frozen=True):
    """Every error answer: a stable code and a sentence for people."""

    error: str
    detail: str


class GatewayError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class BadRequest(GatewayError):
    status_code = 400
    code = "bad_request"


class PayloadTooLarge(GatewayError):
    status_code = 413
    code = "payload_too_large"


class RequestTimeout(GatewayError):
    status_code = 408
    code = "request_timeout"


class TooManyRequests(GatewayError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, detail: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(detail, code=code)
        self.retry_after = retry_after


class Unauthorized(GatewayError):
    status_code = 401
    code = "unauthorized"


class Forbidden(GatewayError):
    status_code = 403
    code = "forbidden"


class NotFound(GatewayError):
    status_code = 404
    code = "not_found"


class Unavailable(GatewayError):
    """503: a dependency (the database, the bus) is down; nothing was accepted. SDKs retry a
    503, after `Retry-After` seconds."""

    status_code = 503
    code = "unavailable"
    retry_after = 2
