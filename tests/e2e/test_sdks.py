"""Real SDKs, unchanged, against the real server: Segment's and RudderStack's Python SDKs."""

from __future__ import annotations

from typing import Any

import httpx
from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient

from tests.e2e.server import Gateway
from tests.helpers import wait_for

CONSENT = {"consent": {"categoryPreferences": {"analytics": True, "personalization": True}}}


def _profile(gateway: Gateway, server_key: str, user_id: str, total: int) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        response = httpx.get(
            f"{gateway.url}/v1/profiles/{user_id}",
            headers={"Authorization": f"Bearer {server_key}"},
        )
        if response.status_code != 200:
            return None
        body: dict[str, Any] = response.json()
        return body if sum(body["computed"]["event_counts"].values()) >= total else None

    return wait_for(probe, timeout=20)


def _send(client: Any, user_id: str) -> None:
    client.identify(user_id, {"plan": "pro", "email": f"{user_id}@example.com"}, context=CONSENT)
    client.track(user_id, "Signed Up", {"step": 1}, context=CONSENT)
    client.track(user_id, "Onboarding Step Completed", {"step": 2}, context=CONSENT)
    client.page(user_id, "Onboarding", "Welcome", context=CONSENT)
    client.flush()
    client.join()


def test_segment_and_rudderstack_sdks_reach_the_profile(gateway: Gateway) -> None:
    """identify, track and page from both SDKs (RudderStack gzipped) appear in the profiles."""
    source = gateway.cli("sources", "create", "sdk-app", "--jurisdiction", "gdpr")
    assert set(source) >= {"source_id", "write_key", "server_key"}
    gateway.start()
    errors: list[Any] = []

    segment = SegmentClient(
        source["write_key"], host=gateway.url, on_error=lambda e, b: errors.append(e)
    )
    _send(segment, "segment-user")
    rudder = RudderClient(
        source["write_key"], host=gateway.url, gzip=True, on_error=lambda e, b: errors.append(e)
    )
    _send(rudder, "rudder-user")
    assert errors == []

    for user_id in ("segment-user", "rudder-user"):
        profile = _profile(gateway, source["server_key"], user_id, 4)
        assert profile["computed"]["event_counts"] == {
            "identify": 1,
            "Signed Up": 1,
            "Onboarding Step Completed": 1,
            "page": 1,
        }
        assert profile["traits"] == {"plan": "pro"}
        assert user_id not in str(profile)


def test_first_serve_creates_the_default_source_once(gateway: Gateway) -> None:
    """With no source at all, serve creates `default` and prints its keys once, as JSON."""
    import json

    gateway.start()
    gateway.stop()
    gateway.start()
    printed = [
        json.loads(line)
        for line in (gateway.workdir / "stdout.log").read_text().splitlines()
        if line.startswith("{")
    ]
    assert len(printed) == 1
    assert printed[0]["name"] == "default"
    assert printed[0]["write_key"].startswith("wk_")
    assert printed[0]["jurisdiction"] == "gdpr"
    response = httpx.post(
        f"{gateway.url}/v1/track",
        json={"userId": "u", "event": "x"},
        auth=(printed[0]["write_key"], ""),
    )
    assert response.status_code == 200
