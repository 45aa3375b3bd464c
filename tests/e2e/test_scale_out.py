"""The scale-out shape through real processes: PostgreSQL, NATS JetStream, two gateway
replicas; a consent change made through one holds for the next event sent to the other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.e2e.flag_probe import PERSONAL, PRO_FLAG, variant
from tests.e2e.server import CoreProcess, Gateway
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


def test_a_gateway_sees_what_a_core_process_changed_at_once(
    tmp_path: Path, postgres_database: str, nats_stream: tuple[str, str]
) -> None:
    """With the core in its own process, a gateway's cached profile views are forgotten as the
    core commits: a flag flips within a second of the identify, not after the views expire."""
    nats_url, stream = nats_stream
    gateway = Gateway(
        tmp_path,
        CONSENTGATE_DATABASE_URL=postgres_database,
        CONSENTGATE_BUS_URL=nats_url,
        CONSENTGATE_NATS_STREAM=stream,
    )
    source = gateway.cli("sources", "create", "app", "--jurisdiction", "gdpr")
    write, server = source["write_key"], source["server_key"]
    admin = gateway.cli("tokens", "create", "--role", "admin")["token"]
    gateway.start("--no-core")
    core = CoreProcess(gateway)
    core.start()
    try:
        saved = httpx.put(
            f"{gateway.url}/v1/flags/pro-onboarding",
            json=PRO_FLAG,
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert saved.status_code == 200, saved.text
        consented = httpx.put(
            f"{gateway.url}/v1/consent/ana",
            json={"purposes": {"analytics": True, "personalization": True}, **CONSENT},
            headers={"Authorization": f"Bearer {server}"},
        )
        assert consented.status_code == 200, consented.text
        basic_plan = {"userId": "ana", "traits": {"plan": "basic"}, "context": PERSONAL}
        sent = httpx.post(f"{gateway.url}/v1/identify", auth=(write, ""), json=basic_plan)
        assert sent.status_code == 200, sent.text
        profile = f"{gateway.url}/v1/profiles/ana"
        bearer = {"Authorization": f"Bearer {server}"}
        wait_for(lambda: httpx.get(profile, headers=bearer).status_code == 200 or None)
        assert variant(gateway, server, "ana") == "off"  # the gateway now holds ana's view
        pro_plan = {"userId": "ana", "traits": {"plan": "pro"}, "context": PERSONAL}
        sent = httpx.post(f"{gateway.url}/v1/identify", auth=(write, ""), json=pro_plan)
        assert sent.status_code == 200, sent.text
        wait_for(lambda: variant(gateway, server, "ana") == "on" or None, timeout=5.0)
    finally:
        core.stop()
        gateway.stop()
