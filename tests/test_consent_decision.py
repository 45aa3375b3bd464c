"""The consent decision as a table, property tests, and signal parsing that never crashes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent import (
    PURPOSES,
    ConsentConfig,
    ConsentConfigError,
    PurposeResolver,
    PurposeState,
    Signals,
    decide,
    load_consent_config,
    parse_signals,
    required_purposes,
)

T0 = datetime(2026, 6, 1, tzinfo=UTC)
LATER = T0 + timedelta(days=1)
GRANT = Signals(choices={"analytics": True, "marketing": True})
DENY = Signals(choices={"analytics": False})
NONE = Signals()
GPC_GRANT = Signals(choices={"marketing": True}, gpc=True)


def stored(granted: bool, at: datetime = T0) -> dict[str, PurposeState]:
    return {
        "analytics": PurposeState(
            granted=granted, source="api", recorded_at=at, collected_at=at, record_id="cr_1"
        )
    }


@pytest.mark.parametrize(
    ("purposes", "signals", "jurisdiction", "state", "event_time", "suppressed", "action", "ref"),
    [
        # 4. jurisdiction defaults
        (("analytics",), NONE, "gdpr", {}, T0, False, "drop", "default:gdpr"),
        (("analytics",), NONE, "ccpa", {}, T0, False, "forward", "default:ccpa"),
        (("analytics",), NONE, "none", {}, T0, False, "forward", "default:none"),
        # 3. an explicit choice beats the default, stored or in the event
        (("analytics",), GRANT, "gdpr", {}, T0, False, "forward", "event"),
        (("analytics",), DENY, "ccpa", {}, T0, False, "drop", "event"),
        (("analytics",), NONE, "gdpr", stored(True), T0, False, "forward", "cr_1"),
        (("analytics",), NONE, "none", stored(False), T0, False, "drop", "cr_1"),
        # 3. the most recent explicit choice wins
        (("analytics",), DENY, "none", stored(True, T0), LATER, False, "drop", "event"),
        (("analytics",), GRANT, "gdpr", stored(False, LATER), T0, False, "drop", "cr_1"),
        (("analytics",), GRANT, "gdpr", stored(False, T0), LATER, False, "forward", "event"),
        # 2. GPC refuses sale_sharing and marketing whatever else says yes
        (("marketing",), GPC_GRANT, "none", {}, T0, False, "drop", "gpc"),
        (("sale_sharing",), Signals(gpc=True), "ccpa", {}, T0, False, "drop", "gpc"),
        (("analytics",), Signals(gpc=True), "none", {}, T0, False, "forward", "default:none"),
        # 1. suppression refuses everything
        (("analytics",), GRANT, "none", stored(True), T0, True, "drop", None),
        (("necessary",), NONE, "gdpr", {}, T0, True, "drop", None),
        (("necessary",), NONE, "gdpr", {}, T0, False, "forward", "default:gdpr"),
    ],
)
def test_precedence_table(
    purposes: tuple[str, ...],
    signals: Signals,
    jurisdiction: Any,
    state: dict[str, PurposeState],
    event_time: datetime,
    suppressed: bool,
    action: str,
    ref: str | None,
) -> None:
    """Suppression, then GPC, then the most recent explicit choice, then the default."""
    decision = decide(
        purposes, signals, jurisdiction, stored=state, event_time=event_time, suppressed=suppressed
    )
    assert decision.action == action
    assert decision.consent_ref == ref
    assert decision.reasons


def test_refused_field_purpose_strips_instead_of_dropping() -> None:
    """A refused purpose that only some fields belong to strips; the event still goes."""
    decision = decide(
        ("analytics",),
        DENY.__class__(choices={"marketing": False}),
        "none",
        optional=("marketing",),
    )
    assert decision.action == "strip"
    assert decision.allowed == ("analytics",)


_purpose = st.sampled_from(PURPOSES)
_choices = st.dictionaries(_purpose, st.booleans(), max_size=5)
_states = st.dictionaries(
    _purpose,
    st.builds(
        lambda granted, days: PurposeState(
            granted=granted,
            source="api",
            recorded_at=T0 + timedelta(days=days),
            collected_at=T0 + timedelta(days=days),
            record_id="cr_x",
        ),
        st.booleans(),
        st.integers(-5, 5),
    ),
    max_size=5,
)


@given(
    required=st.lists(_purpose, min_size=1, max_size=3, unique=True),
    optional=st.lists(_purpose, max_size=3, unique=True),
    choices=_choices,
    gpc=st.booleans(),
    state=_states,
    jurisdiction=st.sampled_from(["gdpr", "ccpa", "none"]),
    days=st.integers(-5, 5),
    suppressed=st.booleans(),
)
def test_a_refused_purpose_is_never_allowed(
    required: list[str],
    optional: list[str],
    choices: dict[str, bool],
    gpc: bool,
    state: dict[str, PurposeState],
    jurisdiction: Any,
    days: int,
    suppressed: bool,
) -> None:
    """Whatever the signals: forward/strip only with every required purpose allowed, and
    nothing GPC, a later refusal, or suppression refused is ever among the allowed."""
    event_time = T0 + timedelta(days=days)
    decision = decide(
        required,
        Signals(choices=choices, gpc=gpc),
        jurisdiction,
        stored=state,
        event_time=event_time,
        optional=optional,
        suppressed=suppressed,
    )
    allowed = set(decision.allowed)
    if decision.action != "drop":
        assert set(required) <= allowed
    if suppressed:
        assert decision.action == "drop"
        assert not allowed
    if gpc:
        assert not allowed & {"sale_sharing", "marketing"}
    for purpose in allowed - {"necessary"}:
        record = state.get(purpose)
        in_event = choices.get(purpose)
        if in_event is False and (record is None or event_time >= record.collected_at):
            raise AssertionError(f"{purpose} refused in the event yet allowed")
        if (
            record is not None
            and not record.granted
            and (in_event is None or event_time < record.collected_at)
        ):
            raise AssertionError(f"{purpose} refused in storage yet allowed")


def test_purposes_by_call_type_and_configured_event_globs() -> None:
    """Defaults by call type; a source maps event names (globs) to purposes."""
    assert required_purposes("track") == ("analytics",)
    assert required_purposes("identify") == ("personalization",)
    resolve = PurposeResolver(
        ConsentConfig(
            event_purposes={"track:Order *": ["marketing", "analytics"], "page": ["necessary"]}
        )
    )
    assert resolve("track", "Order Completed") == ("marketing", "analytics")
    assert resolve("track", "Signed Up") == ("analytics",)
    assert resolve("page", None) == ("necessary",)


def test_invalid_config_names_the_path() -> None:
    """A configuration naming an unknown purpose is refused with the offending path."""
    with pytest.raises(ConsentConfigError, match=r"event_purposes\['track:\*'\]\[0\]"):
        load_consent_config({"event_purposes": {"track:*": ["astrology"]}})
    with pytest.raises(ConsentConfigError, match="field_purposes"):
        load_consent_config({"field_purposes": {"properties.x": "nope"}})


def test_segment_category_preferences_and_gpc() -> None:
    """categoryPreferences map to purposes (by name or config); Sec-GPC/context.gpc set GPC."""
    config = ConsentConfig(category_purposes={"C0004": ["marketing"]})
    signals = parse_signals(
        {"consent": {"categoryPreferences": {"Analytics": True, "C0004": False, "Other": True}}},
        "1",
        config,
    )
    assert signals.choices == {"analytics": True, "marketing": False}
    assert signals.gpc
    assert parse_signals({"gpc": True}, None).gpc
    assert parse_signals({"consent": {"gpc": "1"}}, None).gpc


@pytest.mark.parametrize(
    ("management", "expected"),
    [
        ({"allowedConsentIds": ["C1", "C2"], "deniedConsentIds": []}, {"analytics": True}),
        ({"allowedConsentIds": ["C1"], "deniedConsentIds": ["C2"]}, {"analytics": False}),
        (
            {"allowedConsentIds": ["C1"], "deniedConsentIds": ["C2"], "resolutionStrategy": "or"},
            {"analytics": True},
        ),
        ({"allowedConsentIds": {"0": "C1", "1": "C2"}}, {"analytics": True}),  # older SDKs
        ({"allowedConsentIds": [], "deniedConsentIds": ["marketing"]}, {"marketing": False}),
    ],
)
def test_rudderstack_consent_management(
    management: dict[str, Any], expected: dict[str, bool]
) -> None:
    """allowed/denied ids resolve to purposes with the and/or strategy."""
    config = ConsentConfig(consent_id_purposes={"C1": ["analytics"], "C2": ["analytics"]})
    assert parse_signals({"consentManagement": management}, None, config).choices == expected


def test_google_consent_mode() -> None:
    """analytics_storage decides analytics; the ad fields together decide marketing."""
    signals = parse_signals(
        {
            "consent": {
                "analytics_storage": "granted",
                "ad_storage": "granted",
                "ad_user_data": "denied",
            }
        },
        None,
    )
    assert signals.choices == {"analytics": True, "marketing": False}
    bad = parse_signals({"consent": {"googleConsentMode": {"analytics_storage": "maybe"}}}, None)
    assert bad.choices == {}
    assert bad.malformed == ("malformed_google_consent_mode:analytics",)


def test_a_refusal_wins_between_signals() -> None:
    """When two signals disagree about a purpose, the refusal wins."""
    signals = parse_signals(
        {"consent": {"categoryPreferences": {"analytics": True}, "analytics_storage": "denied"}},
        None,
    )
    assert signals.choices == {"analytics": False}


def test_malformed_signals_are_reasons_not_consent() -> None:
    """A malformed preference is a reason code and does not grant consent."""
    signals = parse_signals({"consent": {"categoryPreferences": {"analytics": "yes"}}}, None)
    decision = decide(("analytics",), signals, "gdpr")
    assert decision.action == "drop"
    assert "malformed_category_preference:analytics" in decision.reasons


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
_keys = st.sampled_from(["consent", "gpc", "consentManagement", "gdpr_consent", "x"])


@given(context=st.dictionaries(_keys, _json), header=st.none() | st.text(max_size=3))
def test_signal_parser_never_raises(context: dict[str, Any], header: str | None) -> None:
    """Any context shape parses; only real booleans become choices."""
    signals = parse_signals(context, header)
    assert all(isinstance(value, bool) for value in signals.choices.values())


def test_unhashable_preferences_are_malformed_not_cached() -> None:
    """A list where a boolean belongs is a reason code, whatever the memo does."""
    context = {"consent": {"categoryPreferences": {"analytics": ["yes"]}}}
    for _ in range(2):
        signals = parse_signals(context, None)
        assert signals.choices == {}
        assert signals.malformed == ("malformed_category_preference:analytics",)
