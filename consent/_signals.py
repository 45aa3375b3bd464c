"""Consent signals carried by an event or its request, parsed into one purpose model.

Parsers never raise: a malformed signal becomes a reason code and never counts as consent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from consent._purposes import PURPOSES, Purpose

_PURPOSE_NAMES: dict[str, Purpose] = {p: p for p in PURPOSES}
_TRUE_STRINGS = frozenset({"1", "true"})


class Signals(msgspec.Struct, frozen=True, kw_only=True):
    """What the event says: explicit choices per purpose, GPC, and malformed signals."""

    choices: dict[str, bool] = {}
    gpc: bool = False
    malformed: tuple[str, ...] = ()


def parse_signals(context: Mapping[str, Any], sec_gpc_header: str | None) -> Signals:
    """Read Segment's `context.consent.categoryPreferences` and Global Privacy Control."""
    malformed: list[str] = []
    consent = context.get("consent")
    if consent is not None and not isinstance(consent, dict):
        malformed.append("malformed_consent_context")
        consent = None
    consent = consent or {}

    choices: dict[str, bool] = {}
    preferences = consent.get("categoryPreferences")
    if preferences is not None:
        if isinstance(preferences, dict):
            for category, granted in preferences.items():
                purpose = _PURPOSE_NAMES.get(str(category).strip().lower())
                if purpose is None:
                    continue  # categories the source does not map are not our purposes
                if isinstance(granted, bool):
                    choices[purpose] = granted
                else:
                    malformed.append(f"malformed_category_preference:{purpose}")
        else:
            malformed.append("malformed_category_preferences")

    gpc = _is_gpc(sec_gpc_header) or _is_gpc(context.get("gpc")) or _is_gpc(consent.get("gpc"))
    return Signals(choices=choices, gpc=gpc, malformed=tuple(malformed))


def _is_gpc(value: object) -> bool:
    if value is True:
        return True
    return isinstance(value, str) and value.strip().lower() in _TRUE_STRINGS
