"""The scale-out shape through real processes: PostgreSQL, NATS JetStream, two gateway
replicas; a consent change made through one holds for the next event sent to the other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.e2e.server import Gateway
from tests.helpers import wait_for

CONSENT = {"policy_version": "2026-11"}


def _replicas(tmp_path: Path, database: str, nats_url: str, stream: str) -> list[Gateway]:
    first = Gateway(
        tmp_path / "a",
        CONSENTGATE_DATABASE_URL=database,
        CONSENTGATE_BUS_URL=nats_url,
        CONSENTGATE_NATS_STREAM=stream,
    )
    second = Gateway(
        tmp_path / "b",
        CONSENTGATE_DATABASE_URL=database,
        CONSENTGATE_BUS_URL=nats_url,
        CONSENTGATE_NATS_STREAM=stream,
        CONSENTGATE_KEY_FILE=first.env["CONSENTGATE_KEY_FILE"],
        CONSENTGATE_RECEIPT_KEY_FILE=first.env["CONSENTGATE_RECEIPT_KEY_FILE"],
    )
    return [first, second]


def _track(gateway: Gateway, write_key: str, user_id: str, event: str, **extra: Any) -> None:
    sent = httpx.post(
        f"{gateway.url}/v1/track",
        auth=(write_key, ""),
        json={"userId": user_id, "event": event, **extra},
    )
    assert sent.status_code == 200, sent.text


def _consent(gateway: Gateway, server_key: str, user_id: str, granted: bool) -> None:
    answer = httpx.put(
        f"{gateway.url}/v1/consent/{user_id}",
        json={"purposes": {"analytics": granted}, **CONSENT},
        headers={"Authorization": f"Bearer {server_key}"},
    )
    assert answer.status_code == 200, answer.text


def test_a_consent_change_through_one_replica_holds_for_the_next_event_on_another(
    tmp_path: Path, postgres_database: str, nats_stream: tuple[str, str]
) -> None:
    nats_url, stream = nats_stream
    first, second = _replicas(tmp_path, postgres_database, nats_url, stream)
    source = first.cli("sources", "create", "eu-app", "--jurisdiction", "gdpr")
    write, server = source["write_key"], source["server_key"]
    first.start()
    second.start()
    try:
        for round_number in range(5):
            user = f"user-{round_number}"
            _consent(first, server, user, True)
            _track(second, write, user, "Granted")
            _consent(first, server, user, False)
            _track(second, write, user, "Withdrawn")  # at once, through the other replica
            _consent(second, server, user, True)
            _track(first, write, user, "Granted Again")
        marker = {"context": {"consent": {"categoryPreferences": {"analytics": True}}}}
        _track(second, write, "marker", "Marker", **marker)
        wait_for(lambda: True if first.event_counts(server, "marker") else None)
        wait_for(lambda: True if len(second.event_counts(server, "user-4")) == 2 else None)
        for round_number in range(5):
            assert first.event_counts(server, f"user-{round_number}") == {
                "Granted": 1,
                "Granted Again": 1,
            }
    finally:
        first.stop()
        second.stop()
