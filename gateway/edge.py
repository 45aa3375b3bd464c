"""A source's edge settings (rate limit, browser origins) and the per-write-key rate limiter.

Write keys are public (they sit in browser JavaScript), so the limit is what keeps one key from
taking the gateway: a token bucket per source and process, refilled at `rate_per_second` up to
`burst`. A refused request gets 429 with `Retry-After`, on which Segment's and RudderStack's
SDKs back off and retry.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Annotated, Any

import msgspec

from gateway.errors import Forbidden, TooManyRequests

Origin = Annotated[str, msgspec.Meta(min_length=1, max_length=300, pattern=r"^https?://[^/\s]+$")]


class EdgeConfigError(ValueError):
    """A source's edge configuration is invalid; the message names the field."""


class EdgeConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Per-source overrides of the gateway's defaults; None keeps the default."""

    rate_limit_per_second: Annotated[float, msgspec.Meta(ge=0)] | None = None
    rate_limit_burst: Annotated[int, msgspec.Meta(ge=1)] | None = None
    # browser origins allowed to send this source's events (CORS); empty: any origin
    allowed_origins: tuple[Origin, ...] = ()

    def check_origin(self, origin: str | None) -> None:
        """Refuse a browser request from an origin the source does not allow."""
        if origin is not None and self.allowed_origins and origin not in self.allowed_origins:
            raise Forbidden(
                "this source does not accept events from the page's origin",
                code="origin_not_allowed",
            )


def load_edge_config(raw: dict[str, Any] | None) -> EdgeConfig:
    try:
        return msgspec.convert(raw or {}, EdgeConfig)
    except msgspec.ValidationError as exc:
        raise EdgeConfigError(f"edge configuration: {exc}") from None


class RateLimiter:
    """Token buckets keyed by source id; `admit` raises `TooManyRequests` when one is empty."""

    __slots__ = ("_buckets", "_burst", "_clock", "_rate")

    def __init__(
        self, rate_per_second: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate_per_second
        self._burst = burst
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, last refill]

    def admit(self, key: str, edge: EdgeConfig, who: str = "this write key") -> None:
        rate = self._rate if edge.rate_limit_per_second is None else edge.rate_limit_per_second
        if rate == 0:
            return  # no limit
        burst = self._burst if edge.rate_limit_burst is None else edge.rate_limit_burst
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [float(burst), now]
        tokens = min(float(burst), bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return
        bucket[0] = tokens
        wait = math.ceil((1.0 - tokens) / rate)
        raise TooManyRequests(
            f"{who} may send {rate:g} requests a second (bursts of {burst}); retry after {wait}s",
            retry_after=wait,
        )
