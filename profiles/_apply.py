"""Pure profile updates: an envelope applied to a profile state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from bus import EventEnvelope, as_utc

# A profile keeps at most this many distinct event names and traits by default: a client that
# invents a new name per event must not grow one profile without bound.
DEFAULT_MAX_KEYS = 1000
OTHER_EVENTS = "(other)"


class ProfileState(msgspec.Struct, kw_only=True):
    subject: str
    traits: dict[str, Any]
    event_counts: dict[str, int]
    first_seen: datetime
    last_seen: datetime
    # not stored: what this application folded or left out because a map was full
    capped_event_names: int = 0
    capped_traits: int = 0


def subject_key(envelope: EventEnvelope) -> str | None:
    """The profile an event belongs to: the user's pseudonym, else the anonymous one."""
    return envelope.subject or envelope.anonymous


def count_key(envelope: EventEnvelope) -> str:
    """track counts under its event name; every other call under its type."""
    if envelope.type == "track" and envelope.event:
        return envelope.event
    return envelope.type


def apply_event(
    state: ProfileState | None,
    envelope: EventEnvelope,
    subject: str,
    max_keys: int = DEFAULT_MAX_KEYS,
) -> ProfileState:
    """The profile after `envelope`; events may arrive out of order.

    Past `max_keys` distinct event names, a new name counts under "(other)"; past `max_keys`
    traits, a new trait is not kept (known ones still update).
    """
    seen = as_utc(envelope.timestamp)
    if state is None:
        state = ProfileState(
            subject=subject, traits={}, event_counts={}, first_seen=seen, last_seen=seen
        )
    state.first_seen = min(state.first_seen, seen)
    state.last_seen = max(state.last_seen, seen)
    key = count_key(envelope)
    counts = state.event_counts
    if key not in counts and len(counts) >= max_keys:
        key = OTHER_EVENTS
        state.capped_event_names += 1
    counts[key] = counts.get(key, 0) + 1
    if envelope.type == "identify" and envelope.traits:
        traits = state.traits
        for name, value in envelope.traits.items():
            if name in traits or len(traits) < max_keys:
                traits[name] = value
            else:
                state.capped_traits += 1
    return state
