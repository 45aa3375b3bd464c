"""The consent decision as a table, and signal parsing that never crashes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent import Signals, decide, parse_signals, required_purposes

GRANT = Signals(choices={"analytics": True, "marketing": True})
DENY = Signals(choices={"analytics": False})
NONE = Signals()
GPC_GRANT = Signals(choices={"marketing": True}, gpc=True)


@pytest.mark.parametrize(
    ("purposes", "signals", "jurisdiction", "suppressed", "action", "allowed"),
    [
        (("analytics",), NONE, "gdpr", False, "drop", ()),
        (("analytics",), NONE, "ccpa", False, "forward", ("analytics",)),
        (("analytics",), NONE, "none", False, "forward", ("analytics",)),
        (("analytics",), GRANT, "gdpr", False, "forward", ("analytics",)),
        (("analytics",), DENY, "ccpa", False, "drop", ()),
        (("analytics",), DENY, "none", False, "drop", ()),
        (("analytics",), GRANT, "none", True, "drop", ()),
        (("marketing",), GPC_GRANT, "none", False, "drop", ()),
        (("marketing",), GPC_GRANT, "ccpa", False, "drop", ()),
        (("sale_sharing",), Signals(gpc=True), "none", False, "drop", ()),
        (("necessary",), NONE, "gdpr", False, "forward", ("necessary",)),
        (("necessary",), NONE, "gdpr", True, "drop", ()),
    ],
)
def test_decision_table(
    purposes: tuple[Any, ...],
    signals: Signals,
    jurisdiction: Any,
    suppressed: bool,
    action: str,
    allowed: tuple[str, ...],
) -> None:
    """Suppression, then GPC, then explicit choice, then the jurisdiction default."""
    decision = decide(purposes, signals, jurisdiction, suppressed=suppressed)
    assert (decision.action, decision.allowed) == (action, allowed)
    assert decision.reasons


def test_required_purposes_by_call_type() -> None:
    """track/page/screen need analytics; identify/group/alias need personalization."""
    assert {t: required_purposes(t) for t in ("track", "page", "screen")} == dict.fromkeys(
        ("track", "page", "screen"), ("analytics",)
    )
    assert required_purposes("identify") == ("personalization",)


def test_segment_category_preferences_and_gpc() -> None:
    """categoryPreferences map to purposes; Sec-GPC or context.gpc set GPC."""
    signals = parse_signals(
        {"consent": {"categoryPreferences": {"Analytics": True, "Advertising": False}}}, "1"
    )
    assert signals.choices == {"analytics": True}
    assert signals.gpc
    assert parse_signals({"gpc": True}, None).gpc
    assert parse_signals({"consent": {"gpc": "1"}}, None).gpc


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


@given(
    context=st.dictionaries(st.sampled_from(["consent", "gpc", "x"]), _json),
    header=st.none() | st.text(max_size=3),
)
def test_signal_parser_never_raises(context: dict[str, Any], header: str | None) -> None:
    """Any context shape parses; only real booleans become choices."""
    signals = parse_signals(context, header)
    assert all(isinstance(value, bool) for value in signals.choices.values())
