"""An erasure through the real server: profile and key gone, later SDK events refused."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.server import Gateway
from tests.helpers import ERASURE_STORES, completed_request, wait_for


def _profile(gateway: Gateway, server_key: str, user_id: str) -> httpx.Response:
    return httpx.get(
        f"{gateway.url}/v1/profiles/{user_id}", headers={"Authorization": f"Bearer {server_key}"}
    )


def test_erasure_through_the_api_erases_and_suppresses(gateway: Gateway) -> None:
    """Send with the SDK, erase, send again: the request completes with a receipt per store,
    the profile is gone and stays gone, and the audit log still verifies."""
    source = gateway.cli("sources", "create", "app", "--jurisdiction", "none")
    gateway.start()
    key = source["server_key"]
    errors: list[Any] = []
    sdk = gateway.segment_sdk(source["write_key"], errors)
    sdk.identify("user-e", {"plan": "pro"})
    sdk.track("user-e", "Before Erasure")
    wait_for(lambda: True if _profile(gateway, key, "user-e").status_code == 200 else None)

    submitted = httpx.post(
        f"{gateway.url}/v1/privacy/requests",
        json={"type": "erasure", "userId": "user-e"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert submitted.status_code == 202, submitted.text
    request_id = submitted.json()["id"]

    done = completed_request(
        lambda: httpx.get(
            f"{gateway.url}/v1/privacy/requests/{request_id}",
            headers={"Authorization": f"Bearer {key}"},
        ).json()
    )
    assert {r["store"] for r in done["receipts"]} == ERASURE_STORES
    assert done["receipt"]["signature"]

    sdk.track("user-e", "After Erasure")
    sdk.track("user-marker", "Marker")
    wait_for(lambda: True if _profile(gateway, key, "user-marker").status_code == 200 else None)
    assert _profile(gateway, key, "user-e").status_code == 404
    assert errors == []
    verified = gateway.cli("audit", "verify")
    assert verified["ok"] is True
