"""Consent signals carried by an event or its request, parsed into one purpose model.

- Segment: `context.consent.categoryPreferences`. A category named like a purpose maps to it;
  others map through the source's `category_purposes`.
- RudderStack: `context.consentManagement`. Ids map through `consent_id_purposes` (an id named
  like a purpose maps to it), resolved by `resolutionStrategy`: `and` (the default) needs every
  id of the purpose allowed, `or` needs one.
- Global Privacy Control: `Sec-GPC: 1`, `context.gpc`, `context.consent.gpc`. It refuses
  `sale_sharing` and `marketing`.
- IAB TCF v2.2: `context.consent.tcf` or `context.gdpr_consent`, mapped by `TCF_PURPOSES`.
- Google Consent Mode v2: in `context.consent` or `context.consent.googleConsentMode`, mapped by
  `GOOGLE_CONSENT_MODE`.

When several signals speak of one purpose, a refusal wins. Parsers never raise: a malformed
signal becomes a reason code and never counts as consent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import msgspec

from consent._purposes import DEFAULT_CONFIG, ConsentConfig
from consent._tcf import TCStringError, decode_tc_string

# Our purpose -> the TCF v2.2 purposes that must all have consent (1 is storage on the device).
TCF_PURPOSES: dict[str, tuple[int, ...]] = {
    "analytics": (1, 8, 9),  # measure content performance; understand audiences
    "personalization": (1, 5, 6),  # create and use profiles for personalised content
    "marketing": (1, 2, 3, 4, 7),  # advertising: select, profile, personalise, measure
}

# Our purpose -> the Google Consent Mode v2 fields that must all be "granted" (when present).
GOOGLE_CONSENT_MODE: dict[str, tuple[str, ...]] = {
    "analytics": ("analytics_storage",),
    "marketing": ("ad_storage", "ad_user_data", "ad_personalization"),
}
_GCM_FIELDS = frozenset(field for fields in GOOGLE_CONSENT_MODE.values() for field in fields)
_TRUE_STRINGS = frozenset({"1", "true"})
_GCM_VALUES = frozenset({"granted", "denied"})


class Signals(msgspec.Struct, frozen=True, kw_only=True):
    """What the event says: explicit choices per purpose, GPC, and malformed signals."""

    choices: dict[str, bool] = {}
    gpc: bool = False
    malformed: tuple[str, ...] = ()


NO_SIGNALS = Signals()  # nothing said in the request: stored choices and defaults decide


class _Collector:
    __slots__ = ("choices", "malformed")

    def __init__(self) -> None:
        self.choices: dict[str, bool] = {}
        self.malformed: list[str] = []

    def choose(self, purposes: Iterable[str], granted: bool) -> None:
        for purpose in purposes:
            self.choices[purpose] = self.choices.get(purpose, True) and granted


def parse_signals(
    context: Mapping[str, Any], sec_gpc_header: str | None, config: ConsentConfig = DEFAULT_CONFIG
) -> Signals:
    consent = context.get("consent")
    others = "consentManagement" in context or "gdpr_consent" in context or "gpc" in context
    if consent is None and not others:
        return _GPC_ONLY if _is_gpc(sec_gpc_header) else _NO_SIGNALS
    if (
        not others
        and not sec_gpc_header
        and type(consent) is dict
        and len(consent) == 1
        and not config.category_purposes
        and not config.purposes
    ):
        # The common case, categoryPreferences alone, maps by name only: memoize it.
        preferences = consent.get("categoryPreferences")
        if type(preferences) is dict:
            key = tuple(preferences.items())
            try:
                known = _MEMO.get(key)
            except TypeError:  # unhashable values: malformed, never remembered
                return _parse(context, sec_gpc_header, config)
            if known is None:
                known = _parse(context, sec_gpc_header, config)
                if len(_MEMO) < _MEMO_LIMIT and len(key) <= _MEMO_MAX_ITEMS:
                    _MEMO[key] = known
            return known
    return _parse(context, sec_gpc_header, config)


_MEMO: dict[tuple[tuple[Any, Any], ...], Signals] = {}
_MEMO_LIMIT = 4096
_MEMO_MAX_ITEMS = 16


def _parse(
    context: Mapping[str, Any], sec_gpc_header: str | None, config: ConsentConfig
) -> Signals:
    found = _Collector()
    consent = context.get("consent")
    if consent is not None and not isinstance(consent, dict):
        found.malformed.append("malformed_consent_context")
        consent = None
    consent = consent or {}
    if "categoryPreferences" in consent:
        _segment_categories(consent["categoryPreferences"], config, found)
    if "consentManagement" in context:
        _rudderstack(context["consentManagement"], config, found)
    tcf = consent.get("tcf", context.get("gdpr_consent"))
    if tcf is not None:
        _tcf(tcf, found)
    _google_consent_mode(consent.get("googleConsentMode", consent), found)
    gpc = _is_gpc(sec_gpc_header) or _is_gpc(context.get("gpc")) or _is_gpc(consent.get("gpc"))
    if not found.choices and not found.malformed and not gpc:
        return _NO_SIGNALS
    return Signals(choices=found.choices, gpc=gpc, malformed=tuple(found.malformed))


_NO_SIGNALS = Signals()
_GPC_ONLY = Signals(gpc=True)


def _segment_categories(preferences: object, config: ConsentConfig, found: _Collector) -> None:
    if not isinstance(preferences, dict):
        found.malformed.append("malformed_category_preferences")
        return
    known = config.known_purposes()
    for category, granted in preferences.items():
        name = str(category)
        purposes = config.category_purposes.get(name)
        if purposes is None:
            lowered = name.strip().lower()
            purposes = [lowered] if lowered in known else []
        if not purposes:
            continue  # a category this source does not map is none of our purposes
        if isinstance(granted, bool):
            found.choose(purposes, granted)
        else:
            found.malformed.append(f"malformed_category_preference:{name[:40]}")


def _rudderstack(management: object, config: ConsentConfig, found: _Collector) -> None:
    if not isinstance(management, dict):
        found.malformed.append("malformed_consent_management")
        return
    allowed = _ids(management.get("allowedConsentIds"))
    denied = _ids(management.get("deniedConsentIds"))
    if allowed is None or denied is None:
        found.malformed.append("malformed_consent_management")
        return
    strategy = str(management.get("resolutionStrategy") or "and").lower()
    if strategy not in {"and", "or"}:
        found.malformed.append("malformed_resolution_strategy")
        return
    by_purpose: dict[str, list[str]] = {}
    for consent_id, purposes in config.consent_id_purposes.items():
        for purpose in purposes:
            by_purpose.setdefault(purpose, []).append(consent_id)
    for purpose in config.known_purposes():
        by_purpose.setdefault(purpose, [purpose])  # unmapped: an id named like the purpose
    for purpose, ids in by_purpose.items():
        if not any(i in allowed or i in denied for i in ids):
            continue  # the consent manager said nothing about this purpose
        if strategy == "and":
            found.choose([purpose], all(i in allowed and i not in denied for i in ids))
        else:
            found.choose([purpose], any(i in allowed and i not in denied for i in ids))


def _ids(value: object) -> set[str] | None:
    """An id list; older RudderStack SDKs send an object instead of an array."""
    if value is None:
        return set()
    if isinstance(value, list):
        return {str(item) for item in value if isinstance(item, str | int)}
    if isinstance(value, dict):
        if all(isinstance(item, str) for item in value.values()):
            return {str(item) for item in value.values()}
        return {str(key) for key, item in value.items() if item is True}
    return None


def _tcf(value: object, found: _Collector) -> None:
    choices = _tcf_choices(value) if isinstance(value, str) else None
    if choices is None:
        found.malformed.append("malformed_tcf")
        return
    for purpose, granted in choices:
        found.choose([purpose], granted)


@lru_cache(maxsize=1024)
def _tcf_choices(value: str) -> tuple[tuple[str, bool], ...] | None:
    """Our purposes' choices in a TC string, None when malformed. A batch repeats one
    string in every event: it is decoded once, then remembered."""
    try:
        tc = decode_tc_string(value)
    except TCStringError:
        return None
    return tuple(
        (purpose, all(p in tc.purpose_consents for p in needed))
        for purpose, needed in TCF_PURPOSES.items()
    )


def _google_consent_mode(fields: object, found: _Collector) -> None:
    if not isinstance(fields, dict) or not _GCM_FIELDS.intersection(fields):
        return
    for purpose, names in GOOGLE_CONSENT_MODE.items():
        present = [fields[name] for name in names if name in fields]
        if not present:
            continue
        if any(not isinstance(value, str) or value not in _GCM_VALUES for value in present):
            found.malformed.append(f"malformed_google_consent_mode:{purpose}")
            continue
        found.choose([purpose], all(value == "granted" for value in present))


def _is_gpc(value: object) -> bool:
    if value is True:
        return True
    return isinstance(value, str) and value.strip().lower() in _TRUE_STRINGS
