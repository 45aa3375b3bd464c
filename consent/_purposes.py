"""The purposes taxonomy, and each source's consent configuration.

A source's configuration maps events to the purposes they need (by call type and event-name
glob), consent-manager category ids to purposes, and fields to the purpose they belong to
(for `strip`). It is validated once, at load, with errors that name the offending path.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Literal

import msgspec

LegalBasis = Literal["consent", "legitimate_interest", "contract", "legal_obligation"]


class PurposeDefinition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    description: str
    legal_basis: LegalBasis = "consent"


DEFAULT_PURPOSES: dict[str, PurposeDefinition] = {
    "necessary": PurposeDefinition(
        description="Operating the service you asked for: sign-in, security, fraud prevention.",
        legal_basis="contract",
    ),
    "analytics": PurposeDefinition(
        description="Measuring how the product is used, to improve it.",
    ),
    "personalization": PurposeDefinition(
        description="Tailoring onboarding and features to you from what you do in the product.",
    ),
    "marketing": PurposeDefinition(
        description="Marketing messages and targeted advertising.",
    ),
    "sale_sharing": PurposeDefinition(
        description="Selling or sharing personal information with third parties (CCPA/CPRA).",
    ),
}
PURPOSES: tuple[str, ...] = tuple(DEFAULT_PURPOSES)

# Global Privacy Control is a refusal of sale/sharing and of targeted advertising.
GPC_REFUSED: frozenset[str] = frozenset({"sale_sharing", "marketing"})

_BY_CALL_TYPE: dict[str, tuple[str, ...]] = {
    "track": ("analytics",),
    "page": ("analytics",),
    "screen": ("analytics",),
    "identify": ("personalization",),
    "group": ("personalization",),
    "alias": ("personalization",),
}


class ConsentConfigError(ValueError):
    """A source's consent configuration is invalid; the message names the path."""


class ConsentConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # extra purposes beside the defaults
    purposes: dict[str, PurposeDefinition] = {}
    # "track:Order *", "page", "identify" -> purposes; the default is by call type
    event_purposes: dict[str, list[str]] = {}
    # Segment categoryPreferences ids -> purposes (a purpose's own name always maps to it)
    category_purposes: dict[str, list[str]] = {}
    # RudderStack consentManagement ids -> purposes
    consent_id_purposes: dict[str, list[str]] = {}
    # "properties.coupon" / "traits.company" -> the purpose the field belongs to
    field_purposes: dict[str, str] = {}

    def __post_init__(self) -> None:
        known = set(DEFAULT_PURPOSES) | set(self.purposes)
        for table in ("event_purposes", "category_purposes", "consent_id_purposes"):
            for key, purposes in getattr(self, table).items():
                for index, purpose in enumerate(purposes):
                    if purpose not in known:
                        raise ConsentConfigError(
                            f"{table}[{key!r}][{index}]: unknown purpose {purpose!r}"
                        )
        for path, purpose in self.field_purposes.items():
            if purpose not in known:
                raise ConsentConfigError(f"field_purposes[{path!r}]: unknown purpose {purpose!r}")
            if not path.startswith(("properties.", "traits.")):
                raise ConsentConfigError(
                    f"field_purposes[{path!r}]: paths start with properties. or traits."
                )

    def known_purposes(self) -> dict[str, PurposeDefinition]:
        if not self.purposes:
            return DEFAULT_PURPOSES  # the common case, on the hot path: no merge
        return {**DEFAULT_PURPOSES, **self.purposes}


DEFAULT_CONFIG = ConsentConfig()


def load_consent_config(data: bytes | dict[str, object] | None) -> ConsentConfig:
    """Validate a configuration (JSON bytes or a decoded mapping)."""
    if not data:
        return DEFAULT_CONFIG
    try:
        if isinstance(data, bytes):
            return msgspec.json.decode(data, type=ConsentConfig)
        return msgspec.convert(data, ConsentConfig)
    except msgspec.ValidationError as exc:
        raise ConsentConfigError(str(exc)) from None


class PurposeResolver:
    """Which purposes an event needs, per the source's configuration; memoized."""

    __slots__ = ("_config", "_memo")

    def __init__(self, config: ConsentConfig = DEFAULT_CONFIG) -> None:
        self._config = config
        self._memo: dict[tuple[str, str | None], tuple[str, ...]] = {}

    def __call__(self, call_type: str, event: str | None = None) -> tuple[str, ...]:
        key = (call_type, event)
        found = self._memo.get(key)
        if found is None:
            found = self._resolve(call_type, event)
            if len(self._memo) < 10_000:
                self._memo[key] = found
        return found

    def _resolve(self, call_type: str, event: str | None) -> tuple[str, ...]:
        matched: list[str] = []
        for pattern, purposes in self._config.event_purposes.items():
            kind, _, name_glob = pattern.partition(":")
            if kind != call_type:
                continue
            if not name_glob or (event is not None and fnmatchcase(event, name_glob)):
                matched.extend(p for p in purposes if p not in matched)
        return tuple(matched) or _BY_CALL_TYPE[call_type]


def required_purposes(call_type: str, event: str | None = None) -> tuple[str, ...]:
    """The default mapping: track/page/screen need analytics; the rest personalization."""
    return _BY_CALL_TYPE[call_type] if event is None else PurposeResolver()(call_type, event)
