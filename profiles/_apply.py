"""Pure profile updates: an envelope applied to a profile state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from bus import EventEnvelope, as_utc


class ProfileState(msgspec.Struct, kw_only=True):
    subject: str
    traits: dict[str, Any]
    event_counts: dict[str, int]
    first_seen: datetime
    last_seen: datetime


def subject_key(envelope: EventEnvelope) -> str | None:
    """The profile an event belongs to: the user's pseudonym, else the anonymous one."""
    return envelope.subject or envelope.anonymous


def count_key(envelope: EventEnvelope) -> str:
    """track counts under its event name; every other call under its type."""
    if envelope.type == "track" and envelope.event:
        return envelope.event
    return envelope.type


def apply_event(state: ProfileState | None, envelope: EventEnvelope, subject: str) -> ProfileState:
    """The profile after `envelope`; events may arrive out of order."""
    seen = as_utc(envelope.timestamp)
    if state is None:
        state = ProfileState(
            subject=subject, traits={}, event_counts={}, first_seen=seen, last_seen=seen
        )
    state.first_seen = min(state.first_seen, seen)
    state.last_seen = max(state.last_seen, seen)
    key = count_key(envelope)
    state.event_counts[key] = state.event_counts.get(key, 0) + 1
    if envelope.type == "identify" and envelope.traits:
        state.traits.update(envelope.traits)
    return state
