"""A consent withdrawal through the API stops the very next event, through the real server."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.server import Gateway
from tests.helpers import wait_for

MARKER_CONSENT = {"consent": {"categoryPreferences": {"analytics": True}}}


def _set_analytics(gateway: Gateway, server_key: str, user_id: str, granted: bool) -> Any:
    response = httpx.put(
        f"{gateway.url}/v1/consent/{user_id}",
        json={"purposes": {"analytics": granted}, "policy_version": "2026-11"},
        headers={"Authorization": f"Bearer {server_key}"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_withdrawal_through_the_api_stops_the_next_sdk_event(gateway: Gateway) -> None:
    """Grant, send, withdraw, send: the event sent after the withdrawal never reaches the core."""
    source = gateway.cli("sources", "create", "eu-app", "--jurisdiction", "gdpr")
    gateway.start()
    key = source["server_key"]
    errors: list[Any] = []
    sdk = gateway.segment_sdk(source["write_key"], errors)

    _set_analytics(gateway, key, "user-w", True)
    sdk.track("user-w", "Before Withdrawal")
    wait_for(lambda: True if "Before Withdrawal" in gateway.event_counts(key, "user-w") else None)

    _set_analytics(gateway, key, "user-w", False)
    sdk.track("user-w", "After Withdrawal")
    sdk.track("user-marker", "Marker", context=MARKER_CONSENT)
    wait_for(lambda: True if "Marker" in gateway.event_counts(key, "user-marker") else None)

    assert errors == []
    assert gateway.event_counts(key, "user-w") == {"Before Withdrawal": 1}
