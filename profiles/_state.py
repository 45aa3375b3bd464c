"""A profile's state, built so that any two states of one person merge into the same result
whatever the order their events arrived in: counts add, first/last take min/max, every
last-value-wins field carries a clock (its event's time, then its message id), sessions are
intervals that join when they come within the session gap.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

# A profile keeps at most this many distinct event names and traits by default: a client that
# invents a new name per event must not grow one profile without bound.
DEFAULT_MAX_KEYS = 1000
OTHER_EVENTS = "(other)"
DAY_WINDOW = 30  # days of per-event counts kept (a rule's `within_days` reaches this far)
DEFAULT_SESSION_GAP_SECONDS = 30 * 60
MAX_SESSIONS_KEPT = 200  # session intervals kept; older ones are only counted
MAX_FLOWS = 20
MAX_FLOW_STEPS = 50
MAX_ITEMS = 200  # distinct items kept per interaction kind
PERSONALIZATION = "personalization"
EVERYTHING = "*"  # a `touched` entry: every rule input may have changed


def clock(moment: datetime, message_id: str) -> str:
    """A total order for last-value-wins: fixed-width UTC time, then the message id."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "|" + message_id


def clock_time(stamp: str) -> str:
    """The time part of a clock, ISO 8601."""
    return stamp.partition("|")[0]


class Stamped(msgspec.Struct, array_like=True):
    """A value and the clock of the event that set it."""

    at: str
    value: Any


class FlowState(msgspec.Struct, kw_only=True):
    done: dict[str, str] = {}  # step -> the clock of the first time it was done
    last: Stamped | None = None  # the latest step done: where the user is, or stopped


class Accumulated(msgspec.Struct, kw_only=True):
    """The personalization part of a profile, computed as events apply (consent permitting)."""

    sessions: list[tuple[float, float]] = []  # [start, end] epoch seconds, sorted, disjoint
    sessions_folded: int = 0  # sessions older than the ones kept
    flows: dict[str, FlowState] = {}
    platform: Stamped | None = None
    device: Stamped | None = None
    # a source-declared computed trait -> its accumulator (see profiles._custom)
    custom: dict[str, dict[str, Any]] = {}
    # "event\x00property" -> item -> count: the interactions recommendations learn from
    items: dict[str, dict[str, int]] = {}


class ProfileState(msgspec.Struct, kw_only=True):
    subject: str
    traits: dict[str, Any]
    event_counts: dict[str, int]
    first_seen: datetime
    last_seen: datetime
    # event name -> {ISO day: count}, the last DAY_WINDOW days before the latest event
    day_counts: dict[str, dict[str, int]] = {}
    # the purposes the subject allows, as of `consent_clock`: its latest event's or consent change's
    consent: list[str] = []
    consent_clock: str = ""
    trait_clock: dict[str, str] = {}  # trait -> the clock of the identify that set it
    event_last: dict[str, str] = {}  # event name -> ISO time of its latest occurrence
    accumulated: Accumulated = msgspec.field(default_factory=Accumulated)
    identified: bool = False  # the profile of a userId (not only of an anonymous id)
    # the segments it is in, as the membership table has them (None: a row from before
    # profiles kept them; the table is read instead)
    segments: list[str] | None = None
    # not stored: what this application folded or left out because a map was full
    capped_event_names: int = 0
    capped_traits: int = 0
    # not stored: what this application changed, as rule inputs (profiles._rules.rule_inputs);
    # EVERYTHING when the profile is new or merged
    touched: set[str] = msgspec.field(default_factory=set)

    def touch(self, *inputs: str) -> None:
        self.touched.update(inputs)

    @property
    def personalized(self) -> bool:
        """Whether the subject allows personalization now (as far as the core has heard)."""
        return PERSONALIZATION in self.consent


def new_state(subject: str, seen: datetime) -> ProfileState:
    return ProfileState(
        subject=subject, traits={}, event_counts={}, first_seen=seen, last_seen=seen, segments=[]
    )


def encode_accumulated(state: ProfileState) -> dict[str, Any]:
    """The stored form of the fields without a column of their own."""
    stored: dict[str, Any] = msgspec.to_builtins(
        {
            "consent_clock": state.consent_clock,
            "trait_clock": state.trait_clock,
            "event_last": state.event_last,
            "accumulated": state.accumulated,
            "identified": state.identified,
            "segments": state.segments,
        }
    )
    return stored


class _Stored(msgspec.Struct, kw_only=True):
    consent_clock: str = ""
    trait_clock: dict[str, str] = {}
    event_last: dict[str, str] = {}
    accumulated: Accumulated = msgspec.field(default_factory=Accumulated)
    identified: bool = False
    segments: list[str] | None = None


def decode_accumulated(stored: dict[str, Any] | None) -> _Stored:
    return msgspec.convert(stored or {}, _Stored)


_stored_decoder = msgspec.json.Decoder(_Stored)


def decode_accumulated_json(stored: str | bytes | None) -> _Stored:
    """`decode_accumulated` of the column's JSON text, in one step."""
    return _stored_decoder.decode(stored) if stored else _Stored()
