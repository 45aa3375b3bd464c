"""The decision log through the API, and admin/auditor tokens (read-only auditors)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar.testing import TestClient

from gateway.settings import Settings
from gateway.sources import CreatedSource
from tests.helpers import MakeSource, basic, bearer, dump_database, wait_for

Client = TestClient


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs in both shapes (tests/conftest.py, `shaped`)."""
    return shaped


def _decisions(client: Client, auditor: dict[str, str], **params: Any) -> dict[str, Any]:
    response = client.get("/v1/decisions", params=params, headers=auditor)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def events(client: Client, make_source: MakeSource) -> CreatedSource:
    """A GDPR source with one forwarded and two dropped events for 'dee', one for 'eli'."""
    source = make_source("audited", "gdpr")
    headers = basic(source.write_key)
    consent = {"consent": {"categoryPreferences": {"analytics": True}}}
    client.post(
        "/v1/track",
        json={"userId": "raw-user-dee", "event": "Kept", "context": consent},
        headers=headers,
    )
    client.post("/v1/track", json={"userId": "raw-user-dee", "event": "Dropped 1"}, headers=headers)
    client.post("/v1/track", json={"userId": "raw-user-dee", "event": "Dropped 2"}, headers=headers)
    client.post("/v1/track", json={"userId": "eli", "event": "Other"}, headers=headers)
    return source


def test_auditor_reads_decisions_by_user_action_reason_and_pages(
    client: Client, events: CreatedSource, auditor: dict[str, str]
) -> None:
    """Filters by userId (pseudonymized here), action and reason; pages with a cursor."""
    mine = {"source_id": events.source_id, "userId": "raw-user-dee"}
    found = wait_for(
        lambda: (
            ((b := _decisions(client, auditor, **mine))["items"] and len(b["items"]) == 3 and b)
            or None
        )
    )
    items = found["items"]
    assert {i["event"] for i in items} == {"Kept", "Dropped 1", "Dropped 2"}
    assert all(i["subject"].startswith("p1_") for i in items)
    assert "raw-user-dee" not in json.dumps(items)  # (a short id could occur in any hex id)
    kept = next(i for i in items if i["event"] == "Kept")
    assert (kept["action"], kept["consent_ref"], kept["purposes_allowed"]) == (
        "forward",
        "event",
        ["analytics"],
    )
    assert set(kept) >= {
        "message_id",
        "subject",
        "type",
        "event",
        "purposes_required",
        "purposes_allowed",
        "action",
        "reasons",
        "consent_ref",
        "trace_id",
        "decided_at",
    }

    drops = _decisions(client, auditor, action="drop", reason="no_consent_gdpr_opt_in", **mine)[
        "items"
    ]
    assert {i["event"] for i in drops} == {"Dropped 1", "Dropped 2"}

    first = _decisions(client, auditor, limit=1, **mine)
    second = _decisions(client, auditor, limit=1, cursor=first["next"], **mine)
    assert first["next"]
    assert second["items"][0]["message_id"] != first["items"][0]["message_id"]
    everything = _decisions(client, auditor, source_id=events.source_id)
    assert len(everything["items"]) == 4
    assert everything["next"] is None
    oldest = min(i["decided_at"] for i in items)
    assert _decisions(client, auditor, to=oldest, **mine)["items"] == []
    assert len(_decisions(client, auditor, **{"from": oldest}, **mine)["items"]) == 3


@pytest.mark.parametrize(
    "params",
    [
        {"action": "maybe"},
        {"cursor": "%%%"},
        {"limit": 0},
        {"from": "yesterday"},
    ],
)
def test_bad_decision_queries_are_400(
    client: Client, params: dict[str, Any], auditor: dict[str, str]
) -> None:
    """Unknown actions, bad cursors, limits and times get 400."""
    response = client.get("/v1/decisions", params=params, headers=auditor)
    assert response.status_code == 400
    assert set(response.json()) == {"error", "detail"}


def test_only_auditors_and_admins_read_decisions(client: Client, source: CreatedSource) -> None:
    """Server keys, subject tokens, write keys and no credential get 401 (OWASP API5)."""
    token = client.post(
        "/v1/tokens", json={"userId": "u"}, headers=bearer(source.server_key)
    ).json()["token"]
    for headers in (
        {},
        bearer(source.server_key),
        bearer(token),
        basic(source.write_key),
        bearer("at_forged"),
    ):
        assert client.get("/v1/decisions", headers=headers).status_code == 401


def test_auditors_change_nothing(
    client: Client, source: CreatedSource, auditor: dict[str, str]
) -> None:
    """An auditor token is refused by every route that changes something."""
    change = {"purposes": {"analytics": True}, "policy_version": "1"}
    assert client.put("/v1/consent/u", json=change, headers=auditor).status_code == 401
    assert client.put("/v1/me/consent", json=change, headers=auditor).status_code == 401
    assert client.post("/v1/tokens", json={"userId": "u"}, headers=auditor).status_code == 401
    assert client.delete("/v1/tokens/tok_x", headers=auditor).status_code == 401
    assert (
        client.post("/v1/track", json={"userId": "u", "event": "e"}, headers=auditor).status_code
        == 401
    )
    history = client.get(
        "/v1/consent/u/history", params={"source_id": source.source_id}, headers=auditor
    )
    assert history.status_code == 200
    assert history.json()["records"] == []


def test_user_ids_and_message_ids_are_searched_across_sources(
    client: Client, make_source: MakeSource, auditor: dict[str, str]
) -> None:
    """Without source_id, userId and messageId are keyed under every source's keys; the raw
    messageId (here an e-mail address) is stored nowhere, and source_id narrows the search."""
    first, second = make_source("one", "none"), make_source("two", "none")
    message_id = "order-42@shop.example"
    for source, event in ((first, "In one"), (second, "In two")):
        client.post(
            "/v1/track",
            json={"userId": "roaming-user", "event": event, "messageId": message_id},
            headers=basic(source.write_key),
        )
    both = wait_for(
        lambda: (
            (
                ((b := _decisions(client, auditor, userId="roaming-user"))["items"])
                and len(b["items"]) == 2
                and b
            )
            or None
        )
    )
    assert {i["event"] for i in both["items"]} == {"In one", "In two"}
    assert all(i["message_id"].startswith("m1_") for i in both["items"])
    by_message = _decisions(client, auditor, messageId=message_id)["items"]
    assert {i["event"] for i in by_message} == {"In one", "In two"}
    narrowed = _decisions(client, auditor, messageId=message_id, source_id=first.source_id)
    assert [i["event"] for i in narrowed["items"]] == ["In one"]
    url = client.app.state.runtime.settings.database_url
    assert message_id not in dump_database(url)
