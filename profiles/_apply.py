"""Pure profile updates: an envelope applied to a profile state, and two states merged.

Both are joins: applying a set of events in any order, or merging the profiles they built in
any order, gives the same state (the maps' caps aside). What consent does not allow is not
kept: an event counts in the analytics counts (event counts, first/last seen) when it was
forwarded, and feeds personalization state (windows, sessions, flows, platform, declared
traits) only when the subject allowed `personalization` for it and has not withdrawn it since.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bus import EventEnvelope, as_utc
from profiles._computed import (
    add_session,
    device_of,
    later,
    merge_flows,
    merge_sessions,
    platform_of,
    record_flow_step,
)
from profiles._custom import TraitDefinition, accumulate, merge_accumulator
from profiles._state import (
    DAY_WINDOW,
    DEFAULT_MAX_KEYS,
    DEFAULT_SESSION_GAP_SECONDS,
    EVERYTHING,
    MAX_ITEMS,
    OTHER_EVENTS,
    PERSONALIZATION,
    ProfileState,
    Stamped,
    clock,
    new_state,
)


@dataclass(frozen=True, slots=True)
class ApplyOptions:
    max_keys: int = DEFAULT_MAX_KEYS
    session_gap_seconds: float = DEFAULT_SESSION_GAP_SECONDS
    definitions: tuple[TraitDefinition, ...] = ()  # the source's declared computed traits
    # (event, property) pairs whose values are interactions (what flows recommend from)
    interactions: frozenset[tuple[str, str]] = frozenset()


DEFAULTS = ApplyOptions()


def subject_key(envelope: EventEnvelope) -> str | None:
    """The profile an event belongs to: the user's pseudonym, else the anonymous one."""
    return envelope.subject or envelope.anonymous


def count_key(envelope: EventEnvelope) -> str:
    """track counts under its event name; every other call under its type."""
    if envelope.type == "track" and envelope.event:
        return envelope.event
    return envelope.type


def _prune_days(state: ProfileState) -> None:
    """Drop the days before the window that ends on the latest event's day."""
    oldest = (state.last_seen - timedelta(days=DAY_WINDOW - 1)).date().isoformat()
    for name in list(state.day_counts):
        kept = {day: n for day, n in state.day_counts[name].items() if day >= oldest}
        if kept:
            state.day_counts[name] = kept
        else:
            del state.day_counts[name]


def _count_day(state: ProfileState, key: str, seen: datetime) -> None:
    oldest = (state.last_seen - timedelta(days=DAY_WINDOW - 1)).date().isoformat()
    day = seen.date().isoformat()
    if day < oldest:
        return  # a late event, older than the window
    days = state.day_counts.setdefault(key, {})
    days[day] = days.get(day, 0) + 1


def _count(state: ProfileState, key: str, n: int, max_keys: int) -> str:
    counts = state.event_counts
    if key not in counts and len(counts) >= max_keys:
        key = OTHER_EVENTS
        state.capped_event_names += 1
    counts[key] = counts.get(key, 0) + n
    return key


def _set_trait(state: ProfileState, name: str, value: Any, stamp: str, max_keys: int) -> None:
    traits = state.traits
    if name not in traits and len(traits) >= max_keys:
        state.capped_traits += 1
        return
    if stamp > state.trait_clock.get(name, ""):
        traits[name] = value
        state.trait_clock[name] = stamp
        state.touch(f"trait:{name}")


def apply_event(
    state: ProfileState | None,
    envelope: EventEnvelope,
    subject: str,
    options: ApplyOptions = DEFAULTS,
) -> ProfileState:
    """The profile after `envelope`; events may arrive in any order.

    Past `max_keys` distinct event names, a new name counts under "(other)"; past `max_keys`
    traits, a new trait is not kept (known ones still update).
    """
    seen = as_utc(envelope.timestamp)
    stamp = clock(seen, envelope.message_id)
    if state is None:
        state = new_state(subject, seen)
        state.touch(EVERYTHING)
    if envelope.subject is not None:
        state.identified = True
    consent_stamp = clock(as_utc(envelope.received_at), envelope.message_id)
    if consent_stamp > state.consent_clock:
        purposes = sorted(envelope.purposes)
        if purposes != state.consent:
            state.consent = purposes
            state.touch("consent")
        state.consent_clock = consent_stamp
    new_day = seen.date() > state.last_seen.date()
    if seen < state.first_seen:
        state.first_seen = seen
        state.touch("computed:first_seen")
    if seen > state.last_seen:
        state.last_seen = seen
        state.touch("computed:last_seen")
    key = _count(state, count_key(envelope), 1, options.max_keys)
    state.touch(f"event:{key}", "computed:event_counts", "computed:event_last")
    iso = stamp.partition("|")[0]
    if iso > state.event_last.get(key, ""):
        state.event_last[key] = iso
    if envelope.type == "identify":
        for name, value in envelope.traits.items():
            _set_trait(state, name, value, stamp, options.max_keys)
    if new_day:
        _prune_days(state)
    if PERSONALIZATION in envelope.purposes and state.personalized:
        _personalize(state, envelope, key, seen, stamp, options)
    return state


def _personalize(
    state: ProfileState,
    envelope: EventEnvelope,
    key: str,
    seen: datetime,
    stamp: str,
    options: ApplyOptions,
) -> None:
    acc = state.accumulated
    _count_day(state, key, seen)
    state.touch("computed:windows")
    sessions = (len(acc.sessions), acc.sessions[-1][0] if acc.sessions else None)
    add_session(acc, seen.timestamp(), options.session_gap_seconds)
    if sessions != (len(acc.sessions), acc.sessions[-1][0]):  # not one more event in a session
        state.touch("computed:sessions", "computed:last_session_start")
    platform = platform_of(envelope.context)
    if platform is not None:
        acc.platform = _later_value(state, "platform", acc.platform, Stamped(stamp, platform))
    device = device_of(envelope.context, platform)
    if device is not None:
        acc.device = _later_value(state, "device", acc.device, Stamped(stamp, device))
    if envelope.type == "track":
        if record_flow_step(acc, envelope.properties, stamp):
            state.touch("computed:flows")
        if options.interactions:
            _interact(acc, envelope, options.interactions)
        if options.definitions and accumulate(
            acc.custom, options.definitions, envelope.event, envelope.properties, stamp
        ):
            state.touch("computed:custom")


def interaction_key(event: str, item_property: str) -> str:
    return f"{event}\x00{item_property}"


def _interact(acc: Any, envelope: EventEnvelope, kinds: frozenset[tuple[str, str]]) -> None:
    """Count the items this track event interacted with, for each kind it is."""
    for event, item_property in kinds:
        if envelope.event != event:
            continue
        item = envelope.properties.get(item_property)
        if isinstance(item, str) and 0 < len(item) <= 200:
            _add_items(acc.items, interaction_key(event, item_property), {item: 1})


def _add_items(items: dict[str, dict[str, int]], key: str, more: dict[str, int]) -> None:
    counts = items.setdefault(key, {})
    for item, n in more.items():
        if item in counts or len(counts) < MAX_ITEMS:
            counts[item] = counts.get(item, 0) + n


def _later_value(
    state: ProfileState, field: str, current: Stamped | None, candidate: Stamped
) -> Stamped | None:
    """The later of the two; a changed value touches `computed:<field>`."""
    chosen = later(current, candidate)
    if chosen is not current and (current is None or current.value != candidate.value):
        state.touch(f"computed:{field}")
    return chosen


def merge_states(
    into: ProfileState, other: ProfileState, options: ApplyOptions = DEFAULTS
) -> ProfileState:
    """`other` (an anonymous or aliased profile) folded into `into`; `into` keeps its subject."""
    into.touch(EVERYTHING)
    into.identified = into.identified or other.identified
    if other.consent_clock > into.consent_clock:
        into.consent, into.consent_clock = list(other.consent), other.consent_clock
    into.first_seen = min(into.first_seen, other.first_seen)
    into.last_seen = max(into.last_seen, other.last_seen)
    for name, n in other.event_counts.items():
        _count(into, name, n, options.max_keys)
    for name, iso in other.event_last.items():
        kept = name if name in into.event_counts else OTHER_EVENTS
        if iso > into.event_last.get(kept, ""):
            into.event_last[kept] = iso
    for name, value in other.traits.items():
        _set_trait(into, name, value, other.trait_clock.get(name, ""), options.max_keys)
    for name, days in other.day_counts.items():
        mine = into.day_counts.setdefault(name, {})
        for day, n in days.items():
            mine[day] = mine.get(day, 0) + n
    _prune_days(into)
    acc, theirs = into.accumulated, other.accumulated
    merge_sessions(acc, theirs, options.session_gap_seconds)
    merge_flows(acc, theirs)
    acc.platform = later(acc.platform, theirs.platform)
    acc.device = later(acc.device, theirs.device)
    for key, items in theirs.items.items():
        _add_items(acc.items, key, items)
    declared = {definition.name: definition for definition in options.definitions}
    for name, accumulator in theirs.custom.items():
        if name in declared:
            merge_accumulator(acc.custom, declared[name], accumulator)
    return into
