"""Pure profile updates: an envelope applied to a profile state."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec

from bus import EventEnvelope, as_utc

# A profile keeps at most this many distinct event names and traits by default: a client that
# invents a new name per event must not grow one profile without bound.
DEFAULT_MAX_KEYS = 1000
OTHER_EVENTS = "(other)"
DAY_WINDOW = 30  # days of per-event counts kept (a rule's `within_days` reaches this far)


class ProfileState(msgspec.Struct, kw_only=True):
    subject: str
    traits: dict[str, Any]
    event_counts: dict[str, int]
    first_seen: datetime
    last_seen: datetime
    # event name -> {ISO day: count}, the last DAY_WINDOW days before the latest event
    day_counts: dict[str, dict[str, int]] = {}
    # the purposes allowed for the latest event: the core's view of the subject's consent
    consent: list[str] = []
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


def _count_day(state: ProfileState, key: str, seen: datetime, prune: bool) -> None:
    """One more `key` on the event's day; when the latest day moves on, the days before its
    window are dropped."""
    oldest = (state.last_seen - timedelta(days=DAY_WINDOW - 1)).date().isoformat()
    day = seen.date().isoformat()
    if day < oldest:
        return  # a late event, older than the window
    days = state.day_counts.setdefault(key, {})
    days[day] = days.get(day, 0) + 1
    if not prune:
        return
    for name in list(state.day_counts):
        kept = {d: n for d, n in state.day_counts[name].items() if d >= oldest}
        if kept:
            state.day_counts[name] = kept
        else:
            del state.day_counts[name]


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
    new_day = seen.date() > state.last_seen.date()
    if seen >= state.last_seen:
        state.consent = sorted(envelope.purposes)
    state.first_seen = min(state.first_seen, seen)
    state.last_seen = max(state.last_seen, seen)
    key = count_key(envelope)
    counts = state.event_counts
    if key not in counts and len(counts) >= max_keys:
        key = OTHER_EVENTS
        state.capped_event_names += 1
    counts[key] = counts.get(key, 0) + 1
    _count_day(state, key, seen, prune=new_day)
    if envelope.type == "identify" and envelope.traits:
        traits = state.traits
        for name, value in envelope.traits.items():
            if name in traits or len(traits) < max_keys:
                traits[name] = value
            else:
                state.capped_traits += 1
    return state
