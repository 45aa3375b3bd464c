"""The purposes taxonomy and which purposes each call needs (first cut: by call type)."""

from __future__ import annotations

from typing import Literal

Purpose = Literal["necessary", "analytics", "personalization", "marketing", "sale_sharing"]

PURPOSES: tuple[Purpose, ...] = (
    "necessary",
    "analytics",
    "personalization",
    "marketing",
    "sale_sharing",
)

# Global Privacy Control is a refusal of sale/sharing and of targeted advertising.
GPC_REFUSED: frozenset[Purpose] = frozenset({"sale_sharing", "marketing"})

_BY_CALL_TYPE: dict[str, tuple[Purpose, ...]] = {
    "track": ("analytics",),
    "page": ("analytics",),
    "screen": ("analytics",),
    "identify": ("personalization",),
    "group": ("personalization",),
    "alias": ("personalization",),
}


def required_purposes(call_type: str) -> tuple[Purpose, ...]:
    """The purposes an event of this call type needs before it may be forwarded."""
    return _BY_CALL_TYPE[call_type]
