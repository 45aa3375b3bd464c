"""Flag evaluation: a pure function of the compiled flag and what is known of the subject.

The baseline (the default variant, reason `DEFAULT`, `metadata.fallback` saying why) is served
whenever a personalized flag may not or cannot use the profile: the subject is suppressed, has
not allowed the flag's purpose (`consent_missing`), has no profile (`unknown_subject`), or the
core did not answer in time (`core_unavailable`). A flag with `requires_consent: null` never
reads the profile and is evaluated the same for everyone. The baseline is never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, cast

import msgspec

from personalization._bucket import split_variant
from personalization._flags import CompiledFlag
from profiles import ProfileView

Reason = Literal["STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "DEFAULT"]
Fallback = Literal["consent_missing", "suppressed", "unknown_subject", "core_unavailable"]


class Resolution(msgspec.Struct, frozen=True, kw_only=True):
    """An OFREP evaluation success."""

    key: str
    value: Any
    variant: str
    reason: Reason
    metadata: dict[str, str | bool | int | float] = {}


@dataclass(frozen=True, slots=True)
class Subject:
    """What an evaluation knows of its subject."""

    targeting_key: str  # the pseudonym splits are bucketed by
    allowed: frozenset[str]  # the purposes it allows now
    suppressed: bool
    view: ProfileView | None  # None: see `missing`
    missing: Fallback | None  # why there is no view: unknown_subject or core_unavailable
    today: date


def evaluate_flag(compiled: CompiledFlag, subject: Subject) -> Resolution:
    flag = compiled.flag
    definition = flag.definition
    metadata: dict[str, str | bool | int | float] = {"version": flag.version}
    if not definition.enabled:
        return _default(flag.key, definition, "DISABLED", metadata)
    purpose = definition.requires_consent
    if purpose is None:
        view = ProfileView(today=subject.today)  # not personalized: nothing of the profile
    else:
        why = baseline_reason(subject, purpose)
        if why is not None or subject.view is None:
            why = why or "unknown_subject"
            return _default(flag.key, definition, "DEFAULT", {**metadata, "fallback": why})
        view = subject.view
    if not compiled.rules:
        return _default(flag.key, definition, "STATIC", metadata)
    for index, (holds, variant, split) in enumerate(compiled.rules):
        if holds(view):
            if split is None:
                chosen = cast(str, variant)
                return _resolved(flag.key, definition, chosen, "TARGETING_MATCH", index, metadata)
            chosen = split_variant(flag.key, subject.targeting_key, split)
            return _resolved(flag.key, definition, chosen, "SPLIT", index, metadata)
    return _default(flag.key, definition, "DEFAULT", metadata)


def baseline_reason(subject: Subject, purpose: str | None) -> Fallback | None:
    """Why something personalized for `purpose` must serve its baseline, or None: the subject
    is suppressed, does not allow the purpose now, or has no profile to read (unknown, or the
    core missed its budget). Nothing needs a profile without a purpose."""
    if purpose is None:
        return None
    if subject.suppressed:
        return "suppressed"
    if purpose not in subject.allowed:
        return "consent_missing"
    if subject.view is None:
        return subject.missing or "unknown_subject"
    return None


def _default(key: str, definition: Any, reason: Reason, metadata: dict[str, Any]) -> Resolution:
    variant = definition.default_variant
    return Resolution(
        key=key,
        value=definition.variants[variant],
        variant=variant,
        reason=reason,
        metadata=metadata,
    )


def _resolved(
    key: str, definition: Any, variant: str, reason: Reason, rule: int, metadata: dict[str, Any]
) -> Resolution:
    return Resolution(
        key=key,
        value=definition.variants[variant],
        variant=variant,
        reason=reason,
        metadata={**metadata, "rule": rule},
    )
