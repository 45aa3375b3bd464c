"""Per-request scope: a request id, and the raw identifiers the request carried.

The telemetry guards (the span processor and the log processor) scrub any value that equals
or holds one of the current request's raw identifiers. Our code never puts one on a span or
in a log line; this is defence in depth, beside the PII detectors.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, MutableMapping
from contextvars import ContextVar
from typing import Any

from anonymization import Scrubber

IDENTIFIER_PLACEHOLDER = "[identifier]"
# A caller's X-Request-Id is kept only when it cannot carry anything but an id.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_DEFAULT_SCRUBBER = Scrubber({})


class RequestScope:
    """What the guards know about the request being served."""

    __slots__ = ("_identifiers", "_scrubber", "request_id")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self._identifiers: set[str] = set()
        self._scrubber: Scrubber | None = _DEFAULT_SCRUBBER

    def remember(self, values: Iterable[str | None]) -> None:
        before = len(self._identifiers)
        self._identifiers.update(value.strip() for value in values if value and value.strip())
        if len(self._identifiers) != before:
            self._scrubber = None

    def scrubber(self) -> Scrubber:
        """A scrubber for detected PII and for this request's raw identifiers."""
        if self._scrubber is None:
            self._scrubber = Scrubber(dict.fromkeys(self._identifiers, IDENTIFIER_PLACEHOLDER))
        return self._scrubber


_CURRENT: ContextVar[RequestScope | None] = ContextVar("consentgate_request", default=None)


def request_id_from(header: str | None) -> str:
    """The caller's request id when it is a plain id, else a new one."""
    if header and _REQUEST_ID.fullmatch(header):
        return header
    return os.urandom(16).hex()  # 32 hex digits, as uuid4().hex, a fifth of its cost


def request_scope(request_id: str) -> _Serving:
    """Serve one request inside this scope: log lines carry its id (`add_request_id`), the
    guards know its raw identifiers."""
    return _Serving(RequestScope(request_id))


class _Serving:
    """The scope's context manager: one context variable set and reset (a quarter of what
    binding the id as a structlog context variable cost, on every request)."""

    __slots__ = ("_scope", "_token")

    def __init__(self, scope: RequestScope) -> None:
        self._scope = scope

    def __enter__(self) -> RequestScope:
        self._token = _CURRENT.set(self._scope)
        return self._scope

    def __exit__(self, *_exc: object) -> None:
        _CURRENT.reset(self._token)


def remember_raw_identifiers(values: Iterable[str | None]) -> None:
    """Tell the guards about raw identifiers the current request carries (no-op outside one)."""
    scope = _CURRENT.get()
    if scope is not None:
        scope.remember(values)


def current_scrubber() -> Scrubber:
    """The scrubber for the current request, or the detectors alone outside a request."""
    scope = _CURRENT.get()
    return scope.scrubber() if scope is not None else _DEFAULT_SCRUBBER


def current_request_id() -> str | None:
    scope = _CURRENT.get()
    return scope.request_id if scope is not None else None


def add_request_id(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: the request's id on every line written while serving it."""
    scope = _CURRENT.get()
    if scope is not None:
        event_dict.setdefault("request_id", scope.request_id)
    return event_dict
