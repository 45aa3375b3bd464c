"""Computed traits, each against a hand-computed expectation; and what consent lets them see."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from bus import EventEnvelope
from profiles import (
    ApplyOptions,
    ProfileState,
    TraitConfigError,
    apply_event,
    load_trait_config,
    merge_states,
)
from profiles._computed import computed_view
from profiles._custom import custom_values

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PERSONAL = ("analytics", "personalization")
DEFINITIONS = load_trait_config(
    {
        "computed_traits": [
            {"name": "spent", "kind": "sum", "event": "Order", "property": "amount"},
            {"name": "average", "kind": "avg", "event": "Order", "property": "amount"},
            {"name": "smallest", "kind": "min", "event": "Order", "property": "amount"},
            {"name": "largest", "kind": "max", "event": "Order", "property": "amount"},
            {"name": "usual", "kind": "most_frequent", "event": "Order", "property": "sku"},
            {"name": "first_sku", "kind": "first", "event": "Order", "property": "sku"},
            {"name": "last_sku", "kind": "last", "event": "Order", "property": "sku"},
            {"name": "skus", "kind": "unique", "event": "Order", "property": "sku", "limit": 2},
        ]
    }
)
OPTIONS = ApplyOptions(definitions=DEFINITIONS)


def _event(
    n: int,
    minutes: float,
    event: str | None = "Order",
    purposes: tuple[str, ...] = PERSONAL,
    kind: str = "track",
    **fields: Any,
) -> EventEnvelope:
    at = T0 + timedelta(minutes=minutes)
    return EventEnvelope(
        message_id=f"m{n}",
        source_id="src",
        type=kind,  # type: ignore[arg-type]
        subject="p1_u",
        anonymous=None,
        received_at=fields.pop("received_at", at),
        timestamp=at,
        event=event if kind == "track" else None,
        purposes=purposes,
        **fields,
    )


def _apply(events: list[EventEnvelope], options: ApplyOptions = OPTIONS) -> ProfileState:
    state = None
    for envelope in events:
        state = apply_event(state, envelope, "p1_u", options)
    assert state is not None
    return state


def _view(state: ProfileState, today: date | None = None) -> dict[str, Any]:
    custom = custom_values(state.accumulated.custom, DEFINITIONS)
    return computed_view(state, today or T0.date(), custom)


def test_counts_last_times_first_and_last_seen() -> None:
    state = _apply([_event(1, 0), _event(2, 90, event="Signup"), _event(3, 45), _event(4, 10)])
    view = _view(state)
    assert view["event_counts"] == {"Order": 3, "Signup": 1}
    assert view["event_last"] == {
        "Order": T0 + timedelta(minutes=45),
        "Signup": T0 + timedelta(minutes=90),
    }
    assert (view["first_seen"], view["last_seen"]) == (T0, T0 + timedelta(minutes=90))


def test_sessions_end_after_thirty_minutes_of_inactivity() -> None:
    """0, 20, 49 are one session (gaps of 20 and 29); 80 (31 later) starts the second; an
    event at 65 arriving last joins them all into one."""
    state = _apply([_event(1, 0), _event(2, 49), _event(3, 20), _event(4, 80)])
    assert _view(state)["sessions"] == 2
    assert _view(state)["last_session_start"] == T0 + timedelta(minutes=80)
    state = apply_event(state, _event(5, 65), "p1_u", OPTIONS)
    assert _view(state)["sessions"] == 1
    shorter = ApplyOptions(session_gap_seconds=10 * 60)
    assert _view(_apply([_event(1, 0), _event(2, 9), _event(3, 20)], shorter))["sessions"] == 2


def test_flows_keep_the_steps_done_and_where_the_user_stopped() -> None:
    def step(n: int, minutes: int, name: str) -> EventEnvelope:
        return _event(
            n, minutes, event="Onboarding Step", properties={"flow": "onboarding", "step": name}
        )

    state = _apply([step(1, 0, "welcome"), step(2, 5, "profile"), step(3, 2, "welcome")])
    assert _view(state)["flows"] == {
        "onboarding": {"done": ["welcome", "profile"], "last_step": "profile"}
    }


@pytest.mark.parametrize(
    ("context", "platform", "device"),
    [
        (
            {"library": {"name": "analytics.js"}, "userAgent": "Chrome 131 (macOS)"},
            "web",
            "desktop",
        ),
        ({"userAgent": "Safari 17 (iOS)"}, "web", "mobile"),
        (
            {"os": {"name": "iOS"}, "device": {"type": "ios", "model": "iPhone15,2"}},
            "ios",
            "mobile",
        ),
        ({"os": {"name": "iPadOS"}, "device": {"model": "iPad13,4"}}, "ios", "tablet"),
        ({"os": {"name": "Android"}, "device": {"type": "android"}}, "android", "mobile"),
        ({"library": {"name": "analytics-python"}}, "server", None),
        ({"os": {"name": "Windows"}}, "desktop", "desktop"),
        ({}, None, None),
    ],
)
def test_platform_and_device_are_generalized(
    context: dict[str, Any], platform: str | None, device: str | None
) -> None:
    view = _view(_apply([_event(1, 0, context=context)]))
    assert (view["platform"], view["device"]) == (platform, device)


def test_windows_count_events_of_the_last_1_7_and_30_days() -> None:
    days = [0, 0, 3, 10, 29, 35]  # days before "today"
    today = (T0 + timedelta(days=35)).date()
    events = [_event(n, (35 - ago) * 24 * 60) for n, ago in enumerate(days)]
    view = _view(_apply(events), today)
    assert view["windows"] == {"1d": {"Order": 2}, "7d": {"Order": 3}, "30d": {"Order": 5}}
    later = _view(_apply(events), today + timedelta(days=5))  # nothing new for five days
    assert later["windows"] == {"1d": {}, "7d": {"Order": 2}, "30d": {"Order": 4}}
    later = _view(_apply(events), today + timedelta(days=7))
    assert later["windows"] == {"1d": {}, "7d": {}, "30d": {"Order": 4}}


def test_declared_traits_sum_min_max_avg_frequent_first_last_unique() -> None:
    orders = [(10, "a"), (2.5, "b"), (7, "b"), (1, "c")]
    events = [
        _event(n, n * 10, properties={"amount": amount, "sku": sku})
        for n, (amount, sku) in enumerate(orders)
    ]
    events.append(_event(9, 100, properties={"amount": "12", "sku": ["x"]}))  # unusable values
    custom = _view(_apply(events))["custom"]
    assert custom == {
        "spent": 20.5,
        "average": 20.5 / 4,
        "smallest": 1,
        "largest": 10,
        "usual": "b",
        "first_sku": "a",
        "last_sku": "c",
        "skus": ["a", "b"],  # the earliest two distinct values
    }


def test_declarations_are_validated_naming_the_path() -> None:
    with pytest.raises(TraitConfigError, match=r"computed_traits\[1\].name"):
        load_trait_config(
            {
                "computed_traits": [
                    {"name": "x", "kind": "sum", "event": "e", "property": "p"},
                    {"name": "x", "kind": "max", "event": "e", "property": "p"},
                ]
            }
        )
    with pytest.raises(TraitConfigError, match="kind"):
        load_trait_config(
            {"computed_traits": [{"name": "x", "kind": "median", "event": "e", "property": "p"}]}
        )


def test_analytics_only_events_feed_only_the_analytics_counts() -> None:
    """Without personalization allowed, an event counts but computes nothing personal."""
    state = _apply(
        [
            _event(
                1,
                0,
                purposes=("analytics",),
                properties={"amount": 5, "sku": "a"},
                context={"os": {"name": "iOS"}},
            )
        ]
    )
    view = _view(state)
    assert view["event_counts"] == {"Order": 1}
    assert (view["sessions"], view["custom"], view["platform"], state.day_counts) == (
        0,
        {},
        None,
        {},
    )


def test_a_withdrawal_stops_personalization_even_for_events_received_before_it() -> None:
    """An event received before a later consent change, applied after it, feeds nothing."""
    state = _apply([_event(1, 0)])
    state.consent, state.consent_clock = ["analytics"], "2026-03-02T10:00:00.000000Z|withdrawn"
    state = apply_event(state, _event(2, 30, properties={"amount": 5}), "p1_u", OPTIONS)
    assert _view(state)["custom"] == {}
    assert state.event_counts == {"Order": 2}
    # a newer event allowing personalization again (consent given again) resumes it
    state = apply_event(state, _event(3, 90, properties={"amount": 5}), "p1_u", OPTIONS)
    assert _view(state)["custom"]["spent"] == 5


def test_merge_folds_an_anonymous_profile_into_the_identified_one() -> None:
    anonymous = _apply([_event(1, 0, properties={"amount": 3, "sku": "a"}), _event(2, 5)])
    identified = _apply(
        [
            _event(3, 200, kind="identify", traits={"plan": "pro"}),
            _event(4, 210, properties={"amount": 4, "sku": "b"}),
        ]
    )
    merged = merge_states(identified, anonymous, OPTIONS)
    view = _view(merged)
    assert view["event_counts"] == {"Order": 3, "identify": 1}
    assert (view["first_seen"], view["sessions"]) == (T0, 2)
    assert (view["custom"]["spent"], view["custom"]["first_sku"]) == (7, "a")
    assert (merged.traits, merged.subject) == ({"plan": "pro"}, "p1_u")


@pytest.mark.parametrize(
    "path",
    [
        "sessions",
        "flows.onboarding.last_step",
        "flows.onboarding",
        "flows.other.last_step",
        "platform.name",
        "custom.spent",
        "windows.7d.Order",
        "event_counts.Order",
        "first_seen",
        "nothing",
    ],
)
@pytest.mark.parametrize(
    ("op", "value"),
    [
        ("eq", "profile"),
        ("neq", "ios"),
        ("gte", 1),
        ("lt", "2026-03-03"),
        ("exists", None),
        ("in", ["ios", "profile", 2]),
        ("contains", "profile"),
    ],
)
def test_compiled_computed_paths_read_the_view_as_the_interpreter(
    path: str, op: str, value: Any
) -> None:
    """The compiled rules' fast path into a profile's computed view finds what `evaluate`'s
    dotted lookup finds."""
    from profiles import ProfileView, evaluate
    from profiles._compiled import compile_rule
    from profiles._computed import ComputedView

    state = _apply(
        [
            _event(1, 0, properties={"flow": "onboarding", "step": "profile", "amount": 2}),
            _event(2, 40, context={"os": {"name": "iOS"}}),
        ]
    )
    custom = custom_values(state.accumulated.custom, DEFINITIONS)
    view = ProfileView(computed=ComputedView(state, T0.date(), custom), today=T0.date())
    rule = {"computed": path, "op": op, "value": value}
    assert compile_rule(rule)(view) is evaluate(rule, view)
