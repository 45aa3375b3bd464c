"""The scale-out database: the whole HTTP flow on PostgreSQL (asyncpg through run_sync)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from anonymization import KekSet
from gateway.app import create_app
from gateway.database import open_database
from gateway.migrate import upgrade_to_head
from gateway.settings import load_settings
from gateway.sources import CreatedSource, create_source
from tests.helpers import (
    ERASURE_STORES,
    basic,
    bearer,
    completed_request,
    embedded_environ,
    profile_when,
    wait_for,
)

pytestmark = pytest.mark.postgres


def _source(url: str, **options: Any) -> CreatedSource:
    async def create() -> CreatedSource:
        database = open_database(url)
        try:
            return await create_source(database, "pg", "none", **options)
        finally:
            await database.dispose()

    return asyncio.run(create())


def test_ingest_consent_tokens_encryption_and_privacy_on_postgres(
    postgres_database: str, tmp_path: Path
) -> None:
    """Ingest, dedupe, profiles, consent, receipts, tokens, encrypted traits, an access export
    and an erasure on PostgreSQL."""
    settings = msgspec.structs.replace(
        load_settings(environ=embedded_environ(tmp_path)), database_url=postgres_database
    )
    upgrade_to_head(postgres_database)
    source = _source(postgres_database, field_policy={"fields": {"traits.email": "encrypt"}})
    with TestClient(create_app(settings, KekSet.load(settings.key_file))) as client:
        headers = basic(source.write_key)
        batch = [
            {
                "type": "identify",
                "userId": "pg-user",
                "traits": {"email": "pg@example.com", "plan": "pro"},
            },
            {"type": "track", "userId": "pg-user", "event": "Signed Up", "messageId": "m-1"},
            {"type": "track", "userId": "pg-user", "event": "Signed Up", "messageId": "m-1"},
            {"type": "page", "userId": "pg-user", "name": "Home"},
        ]
        assert client.post("/v1/batch", json={"batch": batch}, headers=headers).status_code == 200
        server = bearer(source.server_key)

        def profile() -> dict[str, Any] | None:
            response = client.get("/v1/profiles/pg-user?decrypt=true", headers=server)
            body: dict[str, Any] = response.json()
            ready = (
                response.status_code == 200 and sum(body["computed"]["event_counts"].values()) >= 3
            )
            return body if ready else None

        found = wait_for(profile)
        assert found["computed"]["event_counts"] == {"identify": 1, "Signed Up": 1, "page": 1}
        assert found["traits"] == {"email": "pg@example.com", "plan": "pro"}

        put = client.put(
            "/v1/consent/pg-user",
            json={"purposes": {"analytics": False}, "policy_version": "1"},
            headers=server,
        )
        assert put.status_code == 200
        assert put.json()["key_id"].startswith("ed25519-")
        token = client.post("/v1/tokens", json={"userId": "pg-user"}, headers=server).json()[
            "token"
        ]
        mine = client.get("/v1/me/consent", headers=bearer(token)).json()
        assert mine["purposes"]["analytics"]["granted"] is False

        client.post("/v1/track", json={"userId": "pg-user", "event": "After"}, headers=headers)
        client.post("/v1/track", json={"userId": "other", "event": "Marker"}, headers=headers)
        profile_when(client, source, "other", 1)
        counts = client.get("/v1/profiles/pg-user", headers=server).json()["computed"][
            "event_counts"
        ]
        assert "After" not in counts
        assert client.get("/readyz").json()["status"] == "ready"

        access = client.post(
            "/v1/privacy/requests", json={"type": "access", "userId": "pg-user"}, headers=server
        ).json()
        export = client.get(f"/v1/privacy/requests/{access['id']}/export", headers=server).json()
        assert export["profiles"][0]["traits"]["email"] == "pg@example.com"
        erasure = client.post(
            "/v1/privacy/requests", json={"type": "erasure", "userId": "pg-user"}, headers=server
        )
        assert erasure.status_code == 202, erasure.text

        done = completed_request(
            lambda: client.get(
                f"/v1/privacy/requests/{erasure.json()['id']}", headers=server
            ).json()
        )
        assert {r["store"] for r in done["receipts"]} == ERASURE_STORES
        assert client.get("/v1/profiles/pg-user", headers=server).status_code == 404


def test_the_core_stitches_segments_and_erases_on_postgres(postgres_database: str) -> None:
    """Identity links, computed traits, driver-level membership writes, the change log,
    backfill and erasure, on PostgreSQL."""
    from datetime import UTC, datetime

    from bus import Erase, EventEnvelope, encode_control, encode_event
    from profiles import ProfileConsumer, SegmentMaintenance, SegmentStore, read_profile

    upgrade_to_head(postgres_database)
    now = datetime.now(UTC)

    def envelope(message_id: str, **fields: Any) -> EventEnvelope:
        return EventEnvelope(
            message_id=message_id,
            source_id="src_pg",
            received_at=now,
            timestamp=now,
            purposes=("analytics", "personalization"),
            **fields,
        )

    async def run() -> None:
        database = open_database(postgres_database)
        try:
            await SegmentStore(database).put("signed", "Signed", {"event": "Signed Up"})
            consumer = ProfileConsumer(database)
            await consumer(
                [
                    encode_event(
                        envelope(
                            "m1", type="track", subject=None, anonymous="p1_anon", event="Signed Up"
                        )
                    ),
                    encode_event(
                        envelope(
                            "m2",
                            type="identify",
                            subject="p1_user",
                            anonymous="p1_anon",
                            traits={"plan": "pro"},
                        )
                    ),
                ]
            )
            profile = await read_profile(database, "src_pg", "p1_anon")
            assert profile is not None
            assert (profile.subject, profile.segments, profile.merged) == (
                "p1_user",
                ["signed"],
                ["p1_anon"],
            )
            await SegmentStore(database).put(
                "pro", "Pro", {"trait": "plan", "op": "eq", "value": "pro"}
            )
            while await SegmentMaintenance(database, consumer).backfill_step():
                pass
            profile = await read_profile(database, "src_pg", "p1_user")
            assert profile is not None
            assert profile.segments == ["pro", "signed"]
            erase = Erase(source_id="src_pg", subject="p1_user", request_id="pr_1", at=now)
            await consumer([encode_control(erase, "pr_1:erase")])
            assert await read_profile(database, "src_pg", "p1_anon") is None
        finally:
            await database.dispose()

    asyncio.run(run())


def test_the_keys_lock_is_an_advisory_lock_on_postgres(postgres_database: str) -> None:
    """Gateways on any machine share the lock; a rotation is refused while one holds it, and
    a gateway does not start while a rotation runs."""
    from gateway.key_lock import KeysInUse, holding_keys

    async def scenario() -> None:
        async with holding_keys(postgres_database), holding_keys(postgres_database):
            with pytest.raises(KeysInUse, match="the keys are in use"):
                async with holding_keys(postgres_database, exclusive=True):
                    pass
        async with holding_keys(postgres_database, exclusive=True):
            with pytest.raises(KeysInUse, match="rotation is under way"):
                async with holding_keys(postgres_database):
                    pass

    asyncio.run(scenario())


def test_the_first_requests_of_a_new_source_agree_on_its_key(
    postgres_database: str, tmp_path: Path
) -> None:
    """Processes racing to create a new source's first pseudonym key (the first requests
    after `sources create`, on several gateways) all end with the one key that won."""
    from anonymization import Keyring

    upgrade_to_head(postgres_database)
    keks = KekSet.load(tmp_path / "kek")

    async def race() -> set[str]:
        database = open_database(postgres_database)
        try:
            keyrings = [Keyring(database, keks) for _ in range(8)]
            found = await asyncio.gather(*(k.source_keys("src_new") for k in keyrings))
            return {keys.current("subject", "alice") for keys in found}
        finally:
            await database.dispose()

    assert len(asyncio.run(race())) == 1
