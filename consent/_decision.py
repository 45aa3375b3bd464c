"""The consent decision: one pure function, its precedence documented and tested as a table.

For each purpose an event needs (or that some of its fields belong to):

1. suppression (an erased subject) refuses everything;
2. Global Privacy Control refuses `sale_sharing` and `marketing`, for pseudonymous subjects too;
3. the most recent explicit choice decides, whether stored or carried in the event (a choice
   in the event counts from the event's timestamp);
4. the jurisdiction default: `gdpr` is opt-in, `ccpa` opt-out, `none` allows.

`necessary` is always allowed, except under suppression. A refused required purpose drops the
event; a refused purpose of some fields only strips those fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Literal

import msgspec

from consent._purposes import GPC_REFUSED
from consent._records import PurposeState, is_suppressed
from consent._signals import Signals

Jurisdiction = Literal["gdpr", "ccpa", "none"]
Action = Literal["forward", "strip", "drop"]

_NO_STATE: Mapping[str, PurposeState] = {}
_REASONS: dict[tuple[str, str], str] = {}


def _reason(kind: str, purpose: str) -> str:
    """`kind:purpose`, built once per pair (decisions run for every event)."""
    text = _REASONS.get((kind, purpose))
    if text is None:
        text = _REASONS.setdefault((kind, purpose), f"{kind}:{purpose}")
    return text


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    action: Action
    required: tuple[str, ...]
    allowed: tuple[str, ...]
    reasons: tuple[str, ...]
    consent_ref: str | None = None


def decide(
    required: Iterable[str],
    signals: Signals,
    jurisdiction: Jurisdiction,
    *,
    stored: Mapping[str, PurposeState] = _NO_STATE,
    event_time: datetime | None = None,
    optional: Iterable[str] = (),
    suppressed: bool = False,
) -> Decision:
    required = tuple(required)
    if suppressed or is_suppressed(stored):
        return Decision(action="drop", required=required, allowed=(), reasons=("suppressed",))
    if len(required) == 1 and not optional and not signals.malformed:
        # One purpose, the common case: no lists to build.
        granted, reason, ref = _decide_purpose(
            required[0], signals, jurisdiction, stored, event_time
        )
        return Decision(
            action="forward" if granted else "drop",
            required=required,
            allowed=required if granted else (),
            reasons=(reason,),
            consent_ref=ref or _reason("default", jurisdiction),
        )
    reasons: list[str] = list(signals.malformed)
    allowed: list[str] = []
    refs: list[str] = []
    refused_required = refused_optional = False
    for purpose in (*required, *(p for p in optional if p not in required)):
        granted, reason, ref = _decide_purpose(purpose, signals, jurisdiction, stored, event_time)
        reasons.append(reason)
        if ref:
            refs.append(ref)
        if granted:
            allowed.append(purpose)
        elif purpose in required:
            refused_required = True
        else:
            refused_optional = True
    action: Action = "drop" if refused_required else "strip" if refused_optional else "forward"
    return Decision(
        action=action,
        required=required,
        allowed=tuple(allowed),
        reasons=tuple(reasons),
        consent_ref=refs[0] if refs else _reason("default", jurisdiction),
    )


def also_allowed(
    decision: Decision,
    purpose: str,
    signals: Signals,
    jurisdiction: Jurisdiction,
    *,
    stored: Mapping[str, PurposeState] = _NO_STATE,
    event_time: datetime | None = None,
) -> Decision:
    """`decision` with `purpose` among the allowed when the subject allows it, though the event
    does not need it: what the receiver may also use the event for (the core: personalization).
    It never changes the action."""
    if decision.action == "drop" or purpose in decision.allowed:
        return decision
    granted, _, _ = _decide_purpose(purpose, signals, jurisdiction, stored, event_time)
    if not granted:
        return decision
    return msgspec.structs.replace(decision, allowed=(*decision.allowed, purpose))


def _decide_purpose(
    purpose: str,
    signals: Signals,
    jurisdiction: Jurisdiction,
    stored: Mapping[str, PurposeState],
    event_time: datetime | None,
) -> tuple[bool, str, str | None]:
    """(granted, reason code, consent reference) for one purpose."""
    if purpose == "necessary":
        return True, "necessary", None
    if signals.gpc and purpose in GPC_REFUSED:
        return False, _reason("gpc_refused", purpose), "gpc"
    record = stored.get(purpose)
    in_event = signals.choices.get(purpose)
    if in_event is not None and (
        record is None or event_time is None or event_time >= record.collected_at
    ):
        verdict = "granted_in_event" if in_event else "denied_in_event"
        return in_event, _reason(verdict, purpose), "event"
    if record is not None:
        verdict = "granted_stored" if record.granted else "denied_stored"
        return record.granted, _reason(verdict, purpose), record.record_id
    if jurisdiction == "gdpr":
        return False, _reason("no_consent_gdpr_opt_in", purpose), None
    if jurisdiction == "ccpa":
        return True, _reason("ccpa_opt_out_default", purpose), None
    return True, _reason("no_jurisdiction_default", purpose), None
