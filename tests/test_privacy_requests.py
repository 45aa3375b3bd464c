"""Privacy requests: erasure that really erases, access exports, opt-outs, deadlines, BOLA."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from litestar.testing import TestClient
from sqlalchemy import insert

from anonymization import KekSet
from bus import EventEnvelope, encode_event
from bus._tables import dead_letters
from gateway.app import create_app
from gateway.cli import main
from gateway.settings import Settings
from gateway.sources import CreatedSource
from tests.helpers import (
    MakeSource,
    basic,
    bearer,
    completed_privacy_request,
    execute,
    profile_when,
    sqlite_rows,
    wait_for,
)

Client = TestClient


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs in both shapes (tests/conftest.py, `shaped`)."""
    return shaped


USER = "erase-me-4d2f"
EMAIL = "erase.me@example.org"
ENCRYPT_EMAIL = {"fields": {"traits.email": "encrypt"}}


def _verify(client: Client, signed: dict[str, Any]) -> None:
    keys = {k["key_id"]: k for k in client.get("/v1/receipts/keys").json()["keys"]}
    raw = keys[signed["key_id"]]["public_key"]
    public = Ed25519PublicKey.from_public_bytes(
        base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    )
    signature = signed["signature"]
    canonical = json.dumps(
        signed["receipt"], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()
    public.verify(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)), canonical)


def _count(settings: Settings, table: str, subject: str) -> int:
    """How many rows of `table` belong to `subject`."""
    sql = f"SELECT count(*) FROM {table} WHERE subject = '{subject}'"
    ((count,),) = sqlite_rows(settings.database_url, sql)
    return int(count)


def _send_user_events(client: Client, source: CreatedSource) -> None:
    batch = [
        {"type": "identify", "userId": USER, "traits": {"email": EMAIL, "plan": "pro"}},
        {"type": "track", "userId": USER, "event": "Step Done", "anonymousId": "anon-erase-1"},
    ]
    assert (
        client.post("/v1/batch", json={"batch": batch}, headers=basic(source.write_key)).status_code
        == 200
    )
    profile_when(client, source, USER, 2)


def test_erasure_suppresses_shreds_deletes_and_ends_with_receipts(
    client: Client, make_source: MakeSource, migrated: Settings, auditor: dict[str, str]
) -> None:
    """After an erasure: no profile, no data key, no decisions; the next event is refused;
    a receipt per store, signed; every step in a log that still verifies."""
    source = make_source("shop", "none", policy=ENCRYPT_EMAIL)
    _send_user_events(client, source)
    subject = client.get(f"/v1/consent/{USER}", headers=bearer(source.server_key)).json()["subject"]
    assert _count(migrated, "anonymization_subject_keys", subject) == 1

    submitted = client.post(
        "/v1/privacy/requests",
        json={"type": "erasure", "userId": USER, "anonymousIds": ["anon-erase-1"]},
        headers=bearer(source.server_key),
    )
    assert submitted.status_code == 202, submitted.text
    request = submitted.json()
    assert request["type"] == "erasure"
    assert request["subject"] == subject
    received = datetime.fromisoformat(request["received_at"])
    assert datetime.fromisoformat(request["deadline"]) - received == timedelta(days=30)
    # suppressed at once, before the core has even run
    assert client.get(f"/v1/consent/{USER}", headers=bearer(source.server_key)).json()["suppressed"]

    done = completed_privacy_request(client, bearer(source.server_key), request["id"])
    stores = {(r["store"], r["action"]): r["count"] for r in done["receipts"]}
    assert stores[("consent", "suppressed")] == 2  # the user id and the anonymous id
    assert stores[("keys", "shredded")] == 1
    assert stores[("decisions", "deleted")] >= 2
    assert stores[("profiles", "deleted")] == 1
    assert stores[("dead_letters", "deleted")] == 0
    _verify(client, done["receipt"])
    assert done["receipt"]["receipt"]["request_id"] == request["id"]

    assert client.get(f"/v1/profiles/{USER}", headers=bearer(source.server_key)).status_code == 404
    assert _count(migrated, "anonymization_subject_keys", subject) == 0
    assert _count(migrated, "observability_decisions", subject) == 0
    assert EMAIL not in repr(sqlite_rows(migrated.database_url, "SELECT * FROM profiles"))

    # the next event is refused (and recorded as such), and no profile or key comes back
    client.post(
        "/v1/track", json={"userId": USER, "event": "After"}, headers=basic(source.write_key)
    )
    items = wait_for(
        lambda: (
            client.get(
                "/v1/decisions",
                params={"source_id": source.source_id, "userId": USER},
                headers=auditor,
            ).json()["items"]
            or None
        )
    )
    assert [(i["action"], i["reasons"]) for i in items] == [("drop", ["suppressed"])]
    assert client.get(f"/v1/profiles/{USER}", headers=bearer(source.server_key)).status_code == 404
    assert _count(migrated, "anonymization_subject_keys", subject) == 0

    entries = client.get("/v1/audit", headers=auditor).json()["items"]
    steps = [e for e in entries if e["entry"]["details"].get("request_id") == request["id"]]
    kinds = [e["entry"]["kind"] for e in steps]
    assert kinds.count("privacy_request.received") == 1
    assert kinds.count("privacy_request.step") == 6  # one per store
    assert kinds.count("privacy_request.completed") == 1
    assert client.get("/v1/audit/verify", headers=auditor).json()["ok"] is True


def test_access_export_holds_the_subjects_data_decrypted(
    client: Client, make_source: MakeSource, auditor: dict[str, str]
) -> None:
    """An access request completes at once; its export has the profile (decrypted), consent
    history and decisions; an auditor can see the request but not the export."""
    source = make_source("shop", "none", policy=ENCRYPT_EMAIL)
    _send_user_events(client, source)
    client.put(
        f"/v1/consent/{USER}",
        json={"purposes": {"marketing": False}, "policy_version": "v1"},
        headers=bearer(source.server_key),
    )
    request = client.post(
        "/v1/privacy/requests",
        json={"type": "access", "userId": USER},
        headers=bearer(source.server_key),
    ).json()
    assert request["status"] == "completed"
    _verify(client, request["receipt"])
    export = client.get(
        f"/v1/privacy/requests/{request['id']}/export", headers=bearer(source.server_key)
    ).json()
    (profile,) = export["profiles"]
    assert profile["traits"]["email"] == EMAIL
    assert export["consent"]["purposes"]["marketing"]["granted"] is False
    assert [r["purpose"] for r in export["consent"]["history"]] == ["marketing"]
    assert {d["event"] for d in export["decisions"]} >= {"Step Done"}
    assert export["privacy_requests"][0]["id"] == request["id"]

    seen = client.get(f"/v1/privacy/requests/{request['id']}", headers=auditor)
    assert seen.status_code == 200
    refused = client.get(f"/v1/privacy/requests/{request['id']}/export", headers=auditor)
    assert refused.status_code == 403
    assert EMAIL not in refused.text


def test_opt_out_by_subject_token_withdraws_sale_and_marketing(
    client: Client, source: CreatedSource
) -> None:
    """A subject opts out of sale/sharing and marketing from its own token; its requests
    list shows it."""
    token = client.post(
        "/v1/tokens", json={"userId": "opt-1"}, headers=bearer(source.server_key)
    ).json()["token"]
    request = client.post(
        "/v1/privacy/requests", json={"type": "opt_out"}, headers=bearer(token)
    ).json()
    assert request["status"] == "completed"
    assert sorted(request["purposes"]) == ["marketing", "sale_sharing"]
    state = client.get("/v1/me/consent", headers=bearer(token)).json()["purposes"]
    assert state["marketing"]["granted"] is False
    assert state["sale_sharing"]["granted"] is False
    assert "analytics" not in state
    mine = client.get("/v1/me/requests", headers=bearer(token)).json()["items"]
    assert [r["id"] for r in mine] == [request["id"]]


def test_requests_are_visible_only_to_whom_they_belong(
    client: Client, make_source: MakeSource, auditor: dict[str, str]
) -> None:
    """Another source's key and another subject's token get 404; the auditor lists all,
    nearest deadline first; an auditor cannot submit."""
    mine, theirs = make_source("mine", "gdpr"), make_source("theirs", "ccpa")
    first = client.post(
        "/v1/privacy/requests",
        json={"type": "access", "userId": "u1"},
        headers=bearer(mine.server_key),
    ).json()
    second = client.post(
        "/v1/privacy/requests",
        json={"type": "access", "userId": "u2"},
        headers=bearer(theirs.server_key),
    ).json()
    assert (
        datetime.fromisoformat(second["deadline"]) - datetime.fromisoformat(second["received_at"])
    ) == timedelta(days=45)
    path = f"/v1/privacy/requests/{first['id']}"
    assert client.get(path, headers=bearer(theirs.server_key)).status_code == 404
    other = client.post(
        "/v1/tokens", json={"userId": "u9"}, headers=bearer(mine.server_key)
    ).json()["token"]
    assert client.get(path, headers=bearer(other)).status_code == 404
    assert client.get(f"{path}/export", headers=bearer(other)).status_code == 404
    listed = client.get("/v1/privacy/requests", headers=auditor).json()["items"]
    assert [r["id"] for r in listed] == [first["id"], second["id"]]
    own = client.get("/v1/privacy/requests", headers=bearer(theirs.server_key)).json()["items"]
    assert [r["id"] for r in own] == [second["id"]]
    denied = client.post(
        "/v1/privacy/requests", json={"type": "erasure", "userId": "u1"}, headers=auditor
    )
    assert denied.status_code == 401


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"type": "forget", "userId": "u"}, "invalid_body"),
        ({"type": "erasure"}, "invalid_body"),
        ({"type": "erasure", "userId": ""}, "invalid_body"),
        ({"type": "erasure", "userId": "u", "purposes": ["marketing"]}, "invalid_body"),
        ({"type": "opt_out", "userId": "u", "purposes": ["nope"]}, "unknown_purpose"),
        ({"type": "opt_out", "userId": "u", "purposes": ["necessary"]}, "invalid_body"),
        ({"type": "erasure", "userId": "u", "extra": 1}, "invalid_body"),
    ],
)
def test_bad_requests_are_refused_and_change_nothing(
    client: Client, source: CreatedSource, body: dict[str, Any], code: str
) -> None:
    response = client.post("/v1/privacy/requests", json=body, headers=bearer(source.server_key))
    assert response.status_code == 400
    assert response.json()["error"] == code
    assert client.get("/v1/privacy/requests", headers=bearer(source.server_key)).json() == {
        "items": [],
        "next": None,
    }


def test_unauthenticated_requests_are_refused(client: Client) -> None:
    assert client.post("/v1/privacy/requests", json={"type": "access"}).status_code == 401
    assert client.get("/v1/privacy/requests").status_code == 401
    assert client.get("/v1/privacy/requests/pr_x").status_code == 401


def test_cli_lists_and_shows_requests(
    client: Client,
    source: CreatedSource,
    capsys: pytest.CaptureFixture[str],
    auditor: dict[str, str],  # points the CLI at this test's database
) -> None:
    """`consentgate requests list|show` print the queue and one request, receipts signed."""
    request = client.post(
        "/v1/privacy/requests",
        json={"type": "access", "userId": "cli-1"},
        headers=bearer(source.server_key),
    ).json()
    capsys.readouterr()
    assert main(["requests", "list", "--status", "completed"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in listed] == [request["id"]]
    assert main(["requests", "show", request["id"]]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["receipt"]["signature"] == request["receipt"]["signature"]
    assert main(["requests", "show", "pr_missing"]) == 1


def test_the_queue_is_paged_and_bad_queries_are_refused(
    client: Client, source: CreatedSource, auditor: dict[str, str]
) -> None:
    """Pages of `limit`, nearest deadline first, the next at `cursor`; a bad status, limit or
    cursor is a 400."""
    server = bearer(source.server_key)
    made = [
        client.post(
            "/v1/privacy/requests", json={"type": "access", "userId": f"q{n}"}, headers=server
        ).json()["id"]
        for n in range(3)
    ]
    first = client.get("/v1/privacy/requests", params={"limit": 2}, headers=auditor).json()
    second = client.get(
        "/v1/privacy/requests", params={"limit": 2, "cursor": first["next"]}, headers=auditor
    ).json()
    assert [r["id"] for r in first["items"] + second["items"]] == made
    assert second["next"] is None
    for params in ({"status": "done"}, {"limit": 0}, {"limit": 1001}, {"cursor": "nope"}):
        refused = client.get("/v1/privacy/requests", params=params, headers=auditor)
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_query"


def test_a_subject_fetches_its_own_access_export_with_its_token(
    client: Client, source: CreatedSource
) -> None:
    """From the privacy center: the subject asks for its data and downloads the export."""
    client.post(
        "/v1/track", json={"userId": "self-1", "event": "Mine"}, headers=basic(source.write_key)
    )
    profile_when(client, source, "self-1", 1)
    token = client.post(
        "/v1/tokens", json={"userId": "self-1"}, headers=bearer(source.server_key)
    ).json()["token"]
    request = client.post(
        "/v1/privacy/requests", json={"type": "access"}, headers=bearer(token)
    ).json()
    export = client.get(f"/v1/privacy/requests/{request['id']}/export", headers=bearer(token))
    assert export.status_code == 200
    assert export.json()["profiles"][0]["computed"]["event_counts"] == {"Mine": 1}
    erasure = client.post("/v1/privacy/requests", json={"type": "erasure"}, headers=bearer(token))
    not_access = client.get(
        f"/v1/privacy/requests/{erasure.json()['id']}/export", headers=bearer(token)
    )
    assert not_access.status_code == 400
    assert not_access.json()["error"] == "not_an_access_request"


def test_an_erasure_deletes_the_subjects_dead_letters_only(
    client: Client, source: CreatedSource, migrated: Settings
) -> None:
    """Events of the subject that the core could never apply (dead letters) go too; other
    subjects' dead letters stay for the operator."""
    server = bearer(source.server_key)
    subject = client.get("/v1/consent/dead-1", headers=server).json()["subject"]
    other = client.get("/v1/consent/dead-2", headers=server).json()["subject"]
    now = datetime.now(UTC)
    rows = []
    for n, owner in enumerate((subject, other, subject)):
        envelope = EventEnvelope(
            message_id=f"dl-{n}",
            source_id=source.source_id,
            type="track",
            subject=owner,
            anonymous=None,
            received_at=now,
            timestamp=now,
            event="Poison",
        )
        rows.append(
            {
                "subject": "events",
                "message_id": f"dl-{n}",
                "headers": {},
                "payload": encode_event(envelope).payload,
                "failed_at": now,
                "attempts": 5,
            }
        )
    execute(migrated.database_url, insert(dead_letters).values(rows))
    request = client.post(
        "/v1/privacy/requests", json={"type": "erasure", "userId": "dead-1"}, headers=server
    ).json()
    done = completed_privacy_request(client, server, request["id"])
    assert {(r["store"], r["count"]) for r in done["receipts"]} >= {("dead_letters", 2)}
    assert sqlite_rows(migrated.database_url, "SELECT message_id FROM bus_dead_letters") == [
        ("dl-1",)
    ]


def test_an_erasure_completes_once_the_core_has_applied_it_not_at_the_next_round(
    migrated: Settings, keks: KekSet, source: CreatedSource
) -> None:
    """With the background round an hour apart, an erasure still completes: handing it to the
    core wakes the round, which looks again until the core has erased."""
    hourly = msgspec.structs.replace(migrated, privacy_advance_seconds=3600.0)
    with TestClient(create_app(hourly, keks)) as client:
        _send_user_events(client, source)
        server = bearer(source.server_key)
        request = client.post(
            "/v1/privacy/requests", json={"type": "erasure", "userId": USER}, headers=server
        ).json()
        # The answer is read back after the hand-off, so a quick core may already have
        # completed it; either way it completes now, not in an hour.
        assert request["status"] in {"in_progress", "completed"}
        done = completed_privacy_request(client, server, request["id"])
        assert ("profiles", "deleted", 1) in {
            (r["store"], r["action"], r["count"]) for r in done["receipts"]
        }
