"""The validate stage as a parser: any body is either valid calls or a clear 4xx."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway._validate import Limits, validate_body
from gateway.errors import GatewayError

LIMITS = Limits(max_request_bytes=512_000, max_event_bytes=32_768, max_batch_events=2500)
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
_call_fields = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["track", "identify", "page", "screen", "group", "alias", "x"]),
        "userId": _scalars,
        "anonymousId": _scalars,
        "event": _scalars,
        "messageId": _scalars,
        "timestamp": st.sampled_from(["2026-01-01T00:00:00Z", "bad", 3]),
        "properties": _json,
        "context": _json,
        "groupId": _scalars,
        "previousId": _scalars,
    },
)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(body: bytes) -> None:
    """Random bytes are refused with a GatewayError (a 4xx), never another exception."""
    for call_type in (None, "track"):
        try:
            validate_body(body, call_type, LIMITS, NOW)
        except GatewayError as exc:
            assert 400 <= exc.status_code < 500


@given(st.lists(_call_fields, max_size=5), st.sampled_from([None, "track", "identify", "page"]))
def test_json_shapes_are_valid_or_a_4xx(calls: list[dict[str, Any]], call_type: str | None) -> None:
    """Any JSON call shape validates to calls with an identifier, or gets a 4xx."""
    body = json.dumps({"batch": calls} if call_type is None else (calls[0] if calls else {}))
    try:
        valid = validate_body(body.encode(), call_type, LIMITS, NOW)
    except GatewayError as exc:
        assert 400 <= exc.status_code < 500
        return
    for call in valid:
        assert call.user_id or call.anonymous_id
        assert 0 < len(call.message_id) < 100


def test_clock_skew_correction_uses_batch_sent_at() -> None:
    """A client 10 minutes fast: its event lands at receivedAt minus the 5 s it was queued."""
    body = json.dumps(
        {
            "sentAt": "2026-11-26T12:10:05Z",
            "batch": [
                {"type": "track", "userId": "u", "event": "e", "timestamp": "2026-11-26T12:10:00Z"}
            ],
        }
    ).encode()
    (call,) = validate_body(body, None, LIMITS, NOW)
    assert call.timestamp == NOW - timedelta(seconds=5)


def test_numeric_ids_and_generated_message_ids() -> None:
    """Numeric userIds become strings; a missing messageId is generated, unique per event."""
    body = json.dumps({"batch": [{"type": "page", "userId": 42}, {"type": "page", "userId": 42}]})
    first, second = validate_body(body.encode(), None, LIMITS, NOW)
    assert first.user_id == "42"
    assert first.message_id != second.message_id
