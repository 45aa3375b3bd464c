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


def test_segment_sdk_user_lands_in_a_segment_within_100_ms(gateway: Gateway) -> None:
    """With Segment's SDK, unchanged: anonymous onboarding, identify (stitching the anonymous
    id), then the activation event. The profile shows the segment, which the core committed
    within 100 ms of the gateway deciding the last event (both times from the server's clock,
    in its database)."""
    import sqlite3
    import time
    from datetime import datetime

    source = gateway.cli("sources", "create", "activation-app", "--jurisdiction", "gdpr")
    admin = gateway.cli("tokens", "create", "--role", "admin")["token"]
    gateway.start()
    rule = {
        "all": [
            {"trait": "plan", "op": "eq", "value": "pro"},
            {"event": "Feature Used"},
            {"computed": "flows.onboarding.last_step", "op": "eq", "value": "welcome"},
            {"consent": "personalization"},
        ]
    }
    defined = httpx.put(
        f"{gateway.url}/v1/segments/activated",
        headers={"Authorization": f"Bearer {admin}"},
        json={"name": "Activated", "rule": rule},
    )
    assert defined.status_code == 200, defined.text
    errors: list[Any] = []
    sdk = gateway.segment_sdk(source["write_key"], errors)
    onboarding = {"flow": "onboarding", "step": "welcome"}
    sdk.track(
        anonymous_id="device-7", event="Onboarding Step", properties=onboarding, context=CONSENT
    )
    sdk.identify(user_id="seg-7", anonymous_id="device-7", traits={"plan": "pro"}, context=CONSENT)
    sdk.track(user_id="seg-7", event="Feature Used", context=CONSENT)
    sent = time.monotonic()
    assert errors == []

    def in_segment() -> dict[str, Any] | None:
        answer = httpx.get(
            f"{gateway.url}/v1/profiles/seg-7",
            headers={"Authorization": f"Bearer {source['server_key']}"},
        )
        body: dict[str, Any] | None = answer.json() if answer.status_code == 200 else None
        return body if body and "activated" in body["segments"] else None

    profile = wait_for(in_segment, timeout=20, interval=0.005)
    seen_after = time.monotonic() - sent
    assert len(profile["merged"]) == 1  # the anonymous onboarding is part of it
    database = gateway.env["CONSENTGATE_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(database) as conn:
        (since,) = conn.execute(
            "SELECT since FROM profiles_segment_members WHERE segment_key = 'activated'"
        ).fetchone()
        (decided,) = conn.execute(
            "SELECT decided_at FROM observability_decisions WHERE event = 'Feature Used'"
        ).fetchone()
    latency = datetime.fromisoformat(since) - datetime.fromisoformat(decided)
    print(
        f"decision -> membership {latency.total_seconds() * 1000:.1f} ms; "
        f"client saw it {seen_after * 1000:.1f} ms after its 200"
    )
    assert latency.total_seconds() < 0.1
