"""Realistic events: about 600 bytes of JSON, as an onboarding app sends them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

CONSENT = {"consent": {"categoryPreferences": {"analytics": True, "personalization": True}}}


def track_event(n: int, user: str | None = None) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": str(uuid.uuid4()),
        "timestamp": datetime.now(UTC).isoformat(),
        "userId": user or f"user-{n % 5000}@example.com",
        "anonymousId": f"anon-{n % 5000:08d}-4b1c-9d2e",
        "event": "Onboarding Step Completed",
        "properties": {
            "step": n % 7,
            "flow": "onboarding_v2",
            "ms": 1834,
            "note": "invited bob@example.org",
        },
        "context": {
            **CONSENT,
            "library": {"name": "analytics-python", "version": "2.4.0"},
            "ip": "203.0.113.77",
            "locale": "en-GB",
            "timezone": "Europe/London",
            "page": {"path": "/onboarding/calendar", "title": "Connect your calendar"},
        },
    }


def track_body(n: int = 0) -> bytes:
    return json.dumps(track_event(n)).encode()


def batch_body(size: int = 100, user: str | None = None) -> bytes:
    return json.dumps({"batch": [track_event(i, user) for i in range(size)]}).encode()


def track_body_1kb(n: int = 0) -> bytes:
    """About 1 KB: the realistic event with more free-form properties, some holding PII."""
    event = track_event(n)
    event["properties"].update(
        {
            "plan": "team",
            "seats": 12,
            "source": "onboarding checklist",
            "feedback": "Loved it, call me on +44 20 7946 0958 if you need more",
            "referrer_path": "/welcome?utm_campaign=autumn",
            "experiment": {"name": "checklist_v3", "variant": "b", "exposed_at": "2026-11-26"},
            "tags": ["calendar", "google", "first-week"],
        }
    )
    event["context"]["userAgent"] = (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36"
    )
    return json.dumps(event).encode()
