"""Consent API through the HTTP test client: records, receipts, tokens, bad input, BOLA."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from litestar.testing import TestClient

from anonymization import KekSet
from consent import ConsentStore, new_records
from gateway.database import open_database
from gateway.settings import Settings
from gateway.sources import CreatedSource
from gateway.tokens import SubjectTokens
from tests.helpers import MakeSource, basic, bearer, wait_for

Client = TestClient
CHANGE = {"purposes": {"analytics": True}, "policy_version": "2026-11"}


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs in both shapes (tests/conftest.py, `shaped`)."""
    return shaped


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _token(client: Client, source: CreatedSource, user_id: str) -> str:
    response = client.post(
        "/v1/tokens", json={"userId": user_id}, headers=bearer(source.server_key)
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def _history(client: Client, source: CreatedSource, user_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/consent/{user_id}/history", headers=bearer(source.server_key))
    records: list[dict[str, Any]] = response.json()["records"]
    return records


def _count(client: Client, source: CreatedSource, user_id: str, event: str) -> int:
    response = client.get(f"/v1/profiles/{user_id}", headers=bearer(source.server_key))
    if response.status_code != 200:
        return 0
    counts: dict[str, int] = response.json()["computed"]["event_counts"]
    return counts.get(event, 0)


def test_put_then_get_shows_current_state(client: Client, source: CreatedSource) -> None:
    """A PUT records each purpose; GET shows it, and undecided purposes are absent."""
    put = client.put("/v1/consent/u1", json=CHANGE, headers=bearer(source.server_key))
    assert put.status_code == 200, put.text
    state = client.get("/v1/consent/u1", headers=bearer(source.server_key)).json()
    assert state["subject"].startswith("p1_")
    assert set(state["purposes"]) == {"analytics"}
    assert state["purposes"]["analytics"]["granted"] is True
    assert state["purposes"]["analytics"]["source"] == "api"
    assert (
        state["purposes"]["analytics"]["record_id"]
        == put.json()["receipt"]["records"][0]["record_id"]
    )


def test_receipt_verifies_with_the_published_key(client: Client, source: CreatedSource) -> None:
    """The receipt's Ed25519 signature verifies over its canonical JSON with /v1/receipts/keys."""
    signed = client.put("/v1/consent/u2", json=CHANGE, headers=bearer(source.server_key)).json()
    keys = {k["key_id"]: k for k in client.get("/v1/receipts/keys").json()["keys"]}
    public = Ed25519PublicKey.from_public_bytes(_unb64(keys[signed["key_id"]]["public_key"]))
    canonical = json.dumps(
        signed["receipt"], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()
    public.verify(_unb64(signed["signature"]), canonical)  # raises if it does not verify
    receipt = signed["receipt"]
    assert receipt["policy_version"] == "2026-11"
    assert receipt["controller"]["source_id"] == source.source_id
    assert receipt["records"][0]["legal_basis"] == "consent"
    tampered = {**receipt, "policy_version": "forged"}
    with pytest.raises(InvalidSignature):
        public.verify(
            _unb64(signed["signature"]),
            json.dumps(tampered, sort_keys=True, separators=(",", ":")).encode(),
        )


def test_withdrawal_is_the_same_call_and_history_is_append_only(
    client: Client, source: CreatedSource
) -> None:
    """Granting then withdrawing leaves two records; the current state is the withdrawal."""
    headers = bearer(source.server_key)
    client.put("/v1/consent/u3", json=CHANGE, headers=headers)
    client.put(
        "/v1/consent/u3",
        json={"purposes": {"analytics": False}, "policy_version": "2026-11"},
        headers=headers,
    )
    records = _history(client, source, "u3")
    assert [r["granted"] for r in records] == [True, False]
    state = client.get("/v1/consent/u3", headers=headers).json()
    assert state["purposes"]["analytics"]["granted"] is False


def test_withdrawal_stops_the_very_next_event(client: Client, source: CreatedSource) -> None:
    """After a withdrawal through the API, the next event of that user is not forwarded."""
    headers = basic(source.write_key)
    client.post("/v1/track", json={"userId": "u4", "event": "Before"}, headers=headers)
    wait_for(lambda: True if _count(client, source, "u4", "Before") else None)
    client.put(
        "/v1/consent/u4",
        json={"purposes": {"analytics": False}, "policy_version": "2026-11"},
        headers=bearer(source.server_key),
    )
    client.post("/v1/track", json={"userId": "u4", "event": "After"}, headers=headers)
    client.post("/v1/track", json={"userId": "u5", "event": "Marker"}, headers=headers)
    wait_for(lambda: True if _count(client, source, "u5", "Marker") else None)
    assert _count(client, source, "u4", "After") == 0


def test_stored_grant_lets_gdpr_events_through(client: Client, make_source: MakeSource) -> None:
    """On a GDPR source, a consent recorded through the API lets the next events through."""
    gdpr = make_source("eu", "gdpr")
    client.put("/v1/consent/eu", json=CHANGE, headers=bearer(gdpr.server_key))
    client.post(
        "/v1/track", json={"userId": "eu", "event": "Granted"}, headers=basic(gdpr.write_key)
    )
    wait_for(lambda: True if _count(client, gdpr, "eu", "Granted") else None)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"purposes": {"astrology": True}, "policy_version": "1"}, "unknown_purpose"),
        ({"purposes": {}, "policy_version": "1"}, "invalid_body"),
        ({"purposes": {"analytics": True}}, "invalid_body"),
        ({**CHANGE, "record_id": "cr_mine"}, "invalid_body"),
        ({**CHANGE, "recorded_at": "2020-01-01T00:00:00Z"}, "invalid_body"),
        ({**CHANGE, "source": "tcf"}, "invalid_body"),
        ({"purposes": {"analytics": "yes"}, "policy_version": "1"}, "invalid_body"),
    ],
)
def test_bad_consent_changes_are_400_and_change_nothing(
    client: Client, source: CreatedSource, body: dict[str, Any], code: str
) -> None:
    """Unknown purposes, server-only fields and wrong types get 400; no record is written."""
    response = client.put("/v1/consent/bad", json=body, headers=bearer(source.server_key))
    assert response.status_code == 400
    assert response.json()["error"] == code
    assert _history(client, source, "bad") == []


def test_malformed_json_is_400(client: Client, source: CreatedSource) -> None:
    """A body that is not JSON gets 400 invalid_json."""
    response = client.put("/v1/consent/x", content=b"{", headers=bearer(source.server_key))
    assert (response.status_code, response.json()["error"]) == (400, "invalid_json")


def test_subject_token_reads_and_changes_only_its_subject(
    client: Client, source: CreatedSource
) -> None:
    """/v1/me/consent with A's token shows and changes A, never B."""
    server = bearer(source.server_key)
    client.put("/v1/consent/bob", json=CHANGE, headers=server)
    alice = bearer(_token(client, source, "alice"))
    mine = client.get("/v1/me/consent", headers=alice).json()
    assert mine["purposes"] == {}
    assert mine["subject"] == client.get("/v1/consent/alice", headers=server).json()["subject"]
    changed = client.put(
        "/v1/me/consent",
        json={"purposes": {"marketing": False}, "policy_version": "p"},
        headers=alice,
    )
    assert changed.status_code == 200
    assert changed.json()["receipt"]["collection_method"] == "subject"
    assert set(client.get("/v1/consent/bob", headers=server).json()["purposes"]) == {"analytics"}
    assert set(client.get("/v1/consent/alice", headers=server).json()["purposes"]) == {"marketing"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/consent/bob"),
        ("PUT", "/v1/consent/bob"),
        ("GET", "/v1/consent/bob/history"),
        ("GET", "/v1/profiles/bob"),
        ("POST", "/v1/tokens"),
        ("DELETE", "/v1/tokens/tok_0123456789abcdef01234567"),
    ],
)
def test_subject_token_cannot_use_server_routes(
    client: Client, source: CreatedSource, method: str, path: str
) -> None:
    """A subject token is not a server key: every server-key route refuses it (BOLA)."""
    token = bearer(_token(client, source, "alice"))
    body = {"userId": "bob"} if path == "/v1/tokens" else CHANGE
    response = client.request(
        method, path, json=None if method == "DELETE" else body, headers=token
    )
    assert response.status_code == 401
    assert _history(client, source, "bob") == []


def test_server_keys_reach_only_their_own_source(client: Client, make_source: MakeSource) -> None:
    """Source B's server key sees nothing of source A's users and cannot revoke A's tokens."""
    first, second = make_source("a"), make_source("b")
    client.put("/v1/consent/shared", json=CHANGE, headers=bearer(first.server_key))
    seen_by_b = client.get("/v1/consent/shared", headers=bearer(second.server_key)).json()
    assert seen_by_b["purposes"] == {}
    minted = client.post(
        "/v1/tokens", json={"userId": "shared"}, headers=bearer(first.server_key)
    ).json()
    refused = client.delete(f"/v1/tokens/{minted['token_id']}", headers=bearer(second.server_key))
    assert refused.status_code == 404
    assert client.get("/v1/me/consent", headers=bearer(minted["token"])).status_code == 200


def test_forged_tampered_and_revoked_tokens_are_401(
    client: Client, source: CreatedSource, migrated: Settings, keks: KekSet
) -> None:
    """A forged MAC, a swapped payload, an expired and a revoked token all get 401."""
    minted = client.post("/v1/tokens", json={"userId": "alice"}, headers=bearer(source.server_key))
    token, token_id = minted.json()["token"], minted.json()["token_id"]
    payload, mac = token.removeprefix("st_").split(".")
    other = _token(client, source, "bob").removeprefix("st_").split(".")[0]
    expired = asyncio.run(_mint_expired(migrated, keks, source.source_id))
    cases = {
        "forged": f"st_{payload}.{'A' * len(mac)}",
        "swapped": f"st_{other}.{mac}",
        "garbage": "st_nonsense",
        "expired": expired,
    }
    for name, bad in cases.items():
        response = client.get("/v1/me/consent", headers=bearer(bad))
        assert response.status_code == 401, name
    assert (
        client.delete(f"/v1/tokens/{token_id}", headers=bearer(source.server_key)).status_code
        == 204
    )
    revoked = client.get("/v1/me/consent", headers=bearer(token))
    assert (revoked.status_code, revoked.json()["error"]) == (401, "token_revoked")


async def _mint_expired(settings: Settings, keks: KekSet, source_id: str) -> str:
    database = open_database(settings.database_url)
    try:
        minted = await SubjectTokens(database, keks).mint(
            source_id, "p1_someone", timedelta(seconds=-5)
        )
    finally:
        await database.dispose()
    return minted.token


@pytest.mark.parametrize("ttl", [0, 59, 86_401, "an hour"])
def test_token_ttl_out_of_range_is_400(client: Client, source: CreatedSource, ttl: object) -> None:
    """ttl_seconds outside 60..86400 (or not a number) gets 400."""
    response = client.post(
        "/v1/tokens", json={"userId": "u", "ttl_seconds": ttl}, headers=bearer(source.server_key)
    )
    assert response.status_code == 400


def test_malformed_tc_string_is_acknowledged_not_consent(
    client: Client, make_source: MakeSource
) -> None:
    """An event with a malformed TC string gets its 200 (as Segment answers) but on a GDPR
    source it is not forwarded: a malformed signal never counts as consent."""
    gdpr = make_source("tcf", "gdpr")
    headers = basic(gdpr.write_key)
    bad = {"userId": "t", "event": "Bad TCF", "context": {"consent": {"tcf": "%%%not-tcf"}}}
    assert client.post("/v1/track", json=bad, headers=headers).status_code == 200
    marker = {
        "userId": "m",
        "event": "Marker",
        "context": {"consent": {"categoryPreferences": {"analytics": True}}},
    }
    client.post("/v1/track", json=marker, headers=headers)
    wait_for(lambda: True if _count(client, gdpr, "m", "Marker") else None)
    assert _count(client, gdpr, "t", "Bad TCF") == 0
    metrics = client.get("/metrics").text
    assert 'consentgate_decision_reasons_total{reason="malformed_tcf"} 1' in metrics


async def test_the_consent_cache_stays_bounded_and_correct(migrated: Settings) -> None:
    """Many subjects written and invalidated: the store's memory stays within its limit, and
    every state it serves is the latest."""
    database = open_database(migrated.database_url)
    store = ConsentStore(database, cache_limit=8)
    try:
        for n in range(40):
            subject = f"p1_s{n}"
            for granted in (True, False):
                await store.append(
                    new_records(
                        source_id="src",
                        subject=subject,
                        choices={"analytics": granted},
                        source="api",
                        policy_version="v1",
                        jurisdiction="gdpr",
                        at=datetime.now(UTC),
                    )
                )
            store.invalidate("src", f"p1_gone{n}")
        # private, on purpose: the bound on what the store keeps is the behaviour under test
        assert len(store._cache) <= 8
        assert len(store._generation) <= 8
        states = await store.states("src", [f"p1_s{n}" for n in range(40)])
        assert all(state["analytics"].granted is False for state in states.values())
    finally:
        await database.dispose()


@pytest.mark.parametrize("claimed", ["banner", "import", "api", "privacy_center"])
def test_a_subject_token_cannot_claim_a_collection_method(
    client: Client, source: CreatedSource, claimed: str
) -> None:
    """A token's write is recorded as `subject`; claiming banner, import or api is a 400."""
    alice = bearer(_token(client, source, "alice"))
    body = {"purposes": {"marketing": False}, "policy_version": "p", "source": claimed}
    refused = client.put("/v1/me/consent", json=body, headers=alice)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_body"
    history = client.get("/v1/consent/alice/history", headers=bearer(source.server_key)).json()
    assert history["records"] == []


def test_user_ids_with_a_slash_are_reachable_by_query(
    client: Client, source: CreatedSource
) -> None:
    """`?userId=` reaches a userId holding "/" for consent, its history and the profile."""
    server = bearer(source.server_key)
    user = "tenant/42/alice"
    written = client.put("/v1/consent", params={"userId": user}, json=CHANGE, headers=server)
    assert written.status_code == 200
    state = client.get("/v1/consent", params={"userId": user}, headers=server).json()
    assert state["purposes"]["analytics"]["granted"] is True
    history = client.get("/v1/consent/history", params={"userId": user}, headers=server).json()
    assert len(history["records"]) == 1
    assert history["subject"] == state["subject"]
    client.post(
        "/v1/track",
        headers=basic(source.write_key),
        json={"userId": user, "event": "Signed Up"},
    )

    def profile() -> dict[str, Any] | None:
        found = client.get("/v1/profiles", params={"userId": user}, headers=server)
        return found.json() if found.status_code == 200 else None

    assert wait_for(profile)["subject"] == state["subject"]
    missing = client.get("/v1/consent", headers=server)
    assert missing.status_code == 400


def test_a_credential_of_the_wrong_kind_is_named_with_the_one_the_route_takes(
    client: Client, source: CreatedSource
) -> None:
    """A write key on a server-key route (the commonest mistake), a server key on a subject
    route: 401 wrong_credential saying what was sent and what the route takes."""
    write_key = client.get("/v1/consent/u1", headers=bearer(source.write_key))
    assert write_key.status_code == 401
    assert write_key.json()["error"] == "wrong_credential"
    assert "takes a server key (Authorization: Bearer sk_…)" in write_key.json()["detail"]
    assert "sent a write key" in write_key.json()["detail"]
    as_basic = client.get("/v1/consent/u1", headers=basic(source.write_key))
    assert as_basic.json()["error"] == "wrong_credential"
    server_on_subject = client.get("/v1/me/consent", headers=bearer(source.server_key))
    assert server_on_subject.status_code == 401
    assert "takes a subject token" in server_on_subject.json()["detail"]
    assert "sent a server key" in server_on_subject.json()["detail"]
    assert source.server_key not in server_on_subject.text


def test_a_change_its_audit_entry_and_its_announcement_commit_together_or_not_at_all(
    client: Client, source: CreatedSource, auditor: dict[str, str]
) -> None:
    """One commit: the records, the audit entry and the `consent_changed` message. When the
    bus cannot commit, the answer is 503 and none of the three exists."""
    server = bearer(source.server_key)
    change = {"purposes": {"analytics": True}, "policy_version": "v1"}
    assert client.put("/v1/consent/one-commit", json=change, headers=server).status_code == 200
    entries = client.get("/v1/audit", params={"kind": "consent.changed"}, headers=auditor)
    assert len(entries.json()["items"]) == 1
    runtime = client.app.state.runtime
    with client.portal() as portal:
        portal.call(runtime.bus.close)  # the bus can commit nothing more
    refused = client.put("/v1/consent/one-commit", json=change, headers=server)
    assert refused.status_code == 503
    assert refused.json()["error"] == "bus_unavailable"
    history = client.get("/v1/consent/one-commit/history", headers=server).json()
    assert len(history["records"]) == 1
    entries = client.get("/v1/audit", params={"kind": "consent.changed"}, headers=auditor)
    assert len(entries.json()["items"]) == 1
