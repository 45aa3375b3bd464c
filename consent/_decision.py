"""The consent decision: one pure function, precedence documented and tested as a table.

1. suppression refuses everything;
2. Global Privacy Control refuses `sale_sharing` and `marketing`;
3. the most recent explicit choice (here: carried in the event) decides;
4. the jurisdiction default: gdpr is opt-in, ccpa opt-out, none allows.

`necessary` is always allowed, except under suppression.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import msgspec

from consent._purposes import GPC_REFUSED, Purpose
from consent._signals import Signals

Jurisdiction = Literal["gdpr", "ccpa", "none"]
Action = Literal["forward", "strip", "drop"]


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    action: Action
    required: tuple[str, ...]
    allowed: tuple[str, ...]
    reasons: tuple[str, ...]
    consent_ref: str | None = None


def decide(
    required: Iterable[Purpose],
    signals: Signals,
    jurisdiction: Jurisdiction,
    *,
    suppressed: bool = False,
) -> Decision:
    required = tuple(required)
    if suppressed:
        return Decision(action="drop", required=required, allowed=(), reasons=("suppressed",))
    reasons: list[str] = list(signals.malformed)
    allowed: list[str] = []
    explicit = False
    for purpose in required:
        granted, reason = _decide_purpose(purpose, signals, jurisdiction)
        reasons.append(reason)
        explicit = explicit or purpose in signals.choices
        if granted:
            allowed.append(purpose)
    return Decision(
        action="forward" if len(allowed) == len(required) else "drop",
        required=required,
        allowed=tuple(allowed),
        reasons=tuple(reasons),
        consent_ref="event" if explicit else f"default:{jurisdiction}",
    )


def _decide_purpose(
    purpose: Purpose, signals: Signals, jurisdiction: Jurisdiction
) -> tuple[bool, str]:
    if purpose == "necessary":
        return True, "necessary"
    if signals.gpc and purpose in GPC_REFUSED:
        return False, f"gpc_refused:{purpose}"
    choice = signals.choices.get(purpose)
    if choice is not None:
        return choice, f"{'granted' if choice else 'denied'}_in_event:{purpose}"
    if jurisdiction == "gdpr":
        return False, f"no_consent_gdpr_opt_in:{purpose}"
    if jurisdiction == "ccpa":
        return True, f"ccpa_opt_out_default:{purpose}"
    return True, f"no_jurisdiction_default:{purpose}"
