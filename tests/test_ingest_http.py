"""Segment HTTP Tracking API behaviour through litestar's test client."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
import structlog.testing
from litestar.testing import TestClient

from anonymization import KekSet
from gateway.settings import Settings
from gateway.sources import CreatedSource
from tests.helpers import MakeSource, basic, bearer, dump_database, profile_when

Client = TestClient


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs in both shapes (tests/conftest.py, `shaped`)."""
    return shaped


def outbox_and_profiles_empty(settings: Settings) -> bool:
    dump = dump_database(settings.database_url)
    return "p1_" not in dump


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/track", {"userId": "u1", "event": "Signed Up"}),
        ("/v1/t", {"userId": "u1", "event": "Signed Up"}),
        ("/v1/identify", {"userId": "u1", "traits": {"plan": "pro"}}),
        ("/v1/i", {"userId": "u1"}),
        ("/v1/page", {"userId": "u1", "name": "Home"}),
        ("/v1/p", {"anonymousId": "a1"}),
        ("/v1/screen", {"userId": "u1", "name": "Welcome"}),
        ("/v1/s", {"userId": "u1"}),
        ("/v1/group", {"userId": "u1", "groupId": "g1"}),
        ("/v1/g", {"userId": "u1", "groupId": "g1"}),
        ("/v1/alias", {"userId": "u1", "previousId": "a1"}),
        ("/v1/a", {"userId": "u1", "previousId": "a1"}),
        ("/v1/batch", {"batch": [{"type": "track", "userId": "u1", "event": "x"}]}),
        ("/v1/b", {"batch": [{"type": "page", "userId": "u1"}]}),
    ],
)
def test_every_call_and_short_path_answers_success(
    client: Client, source: CreatedSource, path: str, body: dict[str, Any]
) -> None:
    """Each Segment call, long and short path, answers exactly 200 {"success": true}."""
    response = client.post(path, json=body, headers=basic(source.write_key))
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}


def test_write_key_in_body_authenticates(client: Client, source: CreatedSource) -> None:
    """A `writeKey` field in the body is accepted when no Basic header is sent."""
    body = {"writeKey": source.write_key, "userId": "u1", "event": "x"}
    assert client.post("/v1/track", json=body).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, basic("wk_nope"), {"Authorization": "Basic !!!"}],
    ids=["missing", "unknown", "malformed"],
)
def test_bad_write_key_is_401(
    client: Client, source: CreatedSource, headers: dict[str, str]
) -> None:
    """Missing, unknown or malformed write keys get 401 with an error code and detail."""
    response = client.post("/v1/track", json={"userId": "u1", "event": "x"}, headers=headers)
    assert response.status_code == 401
    assert set(response.json()) == {"error", "detail"}


def test_gzip_body_is_accepted(client: Client, source: CreatedSource) -> None:
    """A gzip body with Content-Encoding: gzip is inflated and processed."""
    body = gzip.compress(json.dumps({"userId": "gz", "event": "Zipped"}).encode())
    headers = {**basic(source.write_key), "Content-Encoding": "gzip"}
    assert client.post("/v1/track", content=body, headers=headers).status_code == 200
    assert profile_when(client, source, "gz", 1)["computed"]["event_counts"] == {"Zipped": 1}


def test_gzip_labelled_form_urlencoded_is_accepted(client: Client, source: CreatedSource) -> None:
    """RudderStack's Node SDK sends gzipped JSON labelled application/x-www-form-urlencoded."""
    body = gzip.compress(
        json.dumps({"batch": [{"type": "track", "userId": "n", "event": "e"}]}).encode()
    )
    headers = {
        **basic(source.write_key),
        "Content-Encoding": "gzip",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    assert client.post("/v1/batch", content=body, headers=headers).status_code == 200


def test_null_anonymous_id_and_context_traits(client: Client, source: CreatedSource) -> None:
    """`"anonymousId": null` is accepted, and identify traits may come only in context.traits."""
    body = {
        "batch": [
            {
                "type": "identify",
                "userId": "ct",
                "anonymousId": None,
                "context": {"traits": {"plan": "team"}},
            }
        ]
    }
    assert client.post("/v1/batch", json=body, headers=basic(source.write_key)).status_code == 200
    assert profile_when(client, source, "ct", 1)["traits"] == {"plan": "team"}


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"event": "x"}, "no_user_anon_id", "$"),
        ({"userId": "", "anonymousId": None, "event": "x"}, "no_user_anon_id", "$"),
        ({"userId": "u", "event": "x", "messageId": "m" * 100}, "invalid_event", "messageId"),
        ({"userId": ["u"], "event": "x"}, "invalid_event", "userId"),
        ({"userId": "u"}, "invalid_event", "event"),
        ({"userId": "u", "event": "x", "timestamp": "yesterday"}, "invalid_event", "timestamp"),
        ({"userId": "u", "event": "x", "properties": []}, "invalid_event", "properties"),
    ],
)
def test_invalid_track_is_400_naming_the_field(
    client: Client, source: CreatedSource, body: dict[str, Any], code: str, field: str
) -> None:
    """Wrong or missing fields get 400 with a detail that names the field."""
    response = client.post("/v1/track", json=body, headers=basic(source.write_key))
    assert response.status_code == 400
    assert response.json()["error"] == code
    assert field in response.json()["detail"]


def test_malformed_json_is_400(client: Client, source: CreatedSource) -> None:
    """A body that is not JSON gets 400 invalid_json."""
    response = client.post("/v1/track", content=b'{"userId": ', headers=basic(source.write_key))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"


def test_a_bad_event_rejects_the_whole_batch(
    client: Client, source: CreatedSource, migrated: Settings
) -> None:
    """One invalid event in a batch gets 400 naming its index, and nothing is stored."""
    body = {
        "batch": [
            {"type": "track", "userId": "ok", "event": "fine"},
            {"type": "track", "event": "no id"},
        ]
    }
    response = client.post("/v1/batch", json=body, headers=basic(source.write_key))
    assert response.status_code == 400
    assert "$.batch[1]" in response.json()["detail"]
    assert outbox_and_profiles_empty(migrated)


def test_batch_type_errors_name_the_index(client: Client, source: CreatedSource) -> None:
    """A wrong type inside a batch is reported at its path, e.g. $.batch[0].userId."""
    body = {"batch": [{"type": "track", "userId": 1.5, "event": "x"}]}
    response = client.post("/v1/batch", json=body, headers=basic(source.write_key))
    assert response.status_code == 400
    assert "$.batch[0].userId" in response.json()["detail"]


def test_unknown_call_type_in_batch_is_400(client: Client, source: CreatedSource) -> None:
    """A batch item whose type is not a Segment call gets 400."""
    body = {"batch": [{"type": "purchase", "userId": "u"}]}
    response = client.post("/v1/batch", json=body, headers=basic(source.write_key))
    assert response.status_code == 400
    assert "$.batch[0].type" in response.json()["detail"]


def test_more_than_2500_events_is_400(client: Client, source: CreatedSource) -> None:
    """A batch of 2,501 events gets 400 batch_too_large."""
    body = {"batch": [{"type": "page", "userId": "u"}] * 2501}
    response = client.post("/v1/batch", json=body, headers=basic(source.write_key))
    assert response.status_code == 400
    assert response.json()["error"] == "batch_too_large"


def test_event_over_32kb_is_413(client: Client, source: CreatedSource) -> None:
    """An event larger than 32 KB gets 413 event_too_large, in a batch too."""
    big = {"type": "track", "userId": "u", "event": "x", "properties": {"blob": "a" * 33_000}}
    single = client.post("/v1/track", json=big, headers=basic(source.write_key))
    batch = client.post("/v1/batch", json={"batch": [big]}, headers=basic(source.write_key))
    assert (single.status_code, batch.status_code) == (413, 413)
    assert batch.json()["error"] == "event_too_large"


def test_request_over_500kb_is_413(client: Client, source: CreatedSource) -> None:
    """A request body over 500 KB gets 413 request_too_large, gzipped or not."""
    event = {"type": "track", "userId": "u", "event": "x", "properties": {"blob": "a" * 20_000}}
    raw = json.dumps({"batch": [event] * 30}).encode()
    plain = client.post("/v1/batch", content=raw, headers=basic(source.write_key))
    zipped = client.post(
        "/v1/batch",
        content=gzip.compress(raw),
        headers={**basic(source.write_key), "Content-Encoding": "gzip"},
    )
    assert (plain.status_code, zipped.status_code) == (413, 413)
    assert zipped.json()["error"] == "request_too_large"


def test_corrupt_gzip_is_400(client: Client, source: CreatedSource) -> None:
    """A body announced as gzip that is not gzip gets 400 invalid_gzip."""
    headers = {**basic(source.write_key), "Content-Encoding": "gzip"}
    response = client.post("/v1/track", content=b"not gzip at all", headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_gzip"


def test_profile_counts_by_event_name_and_call_type(client: Client, source: CreatedSource) -> None:
    """The profile counts track by event name and page/screen/identify by call type."""
    batch = [
        {"type": "identify", "userId": "p", "traits": {"plan": "pro"}},
        {"type": "track", "userId": "p", "event": "Signed Up"},
        {"type": "track", "userId": "p", "event": "Signed Up"},
        {"type": "page", "userId": "p", "name": "Home"},
        {"type": "screen", "userId": "p", "name": "Welcome"},
    ]
    client.post("/v1/batch", json={"batch": batch}, headers=basic(source.write_key))
    profile = profile_when(client, source, "p", 5)
    assert profile["computed"]["event_counts"] == {
        "identify": 1,
        "Signed Up": 2,
        "page": 1,
        "screen": 1,
    }
    assert profile["traits"] == {"plan": "pro"}
    assert profile["subject"].startswith("p1_")
    assert profile["segments"] == []


def test_duplicate_message_ids_count_once(client: Client, source: CreatedSource) -> None:
    """A retried request with the same messageId is counted once."""
    body = {"userId": "d", "event": "Retried", "messageId": "m-1"}
    for _ in range(3):
        client.post("/v1/track", json=body, headers=basic(source.write_key))
    client.post("/v1/track", json={**body, "messageId": "m-2"}, headers=basic(source.write_key))
    assert profile_when(client, source, "d", 2)["computed"]["event_counts"] == {"Retried": 2}


def test_clock_skew_is_corrected_from_sent_at(client: Client, source: CreatedSource) -> None:
    """timestamp = receivedAt - (sentAt - timestamp): a client clock one year ahead is undone."""
    body = {
        "batch": [
            {"type": "track", "userId": "skew", "event": "x", "timestamp": "2027-11-26T10:00:00Z"}
        ],
        "sentAt": "2027-11-26T10:00:05Z",
    }
    client.post("/v1/batch", json=body, headers=basic(source.write_key))
    seen = profile_when(client, source, "skew", 1)["computed"]["first_seen"]
    assert seen.startswith("2026-") or seen < "2027-"


def test_profile_needs_the_server_key(client: Client, source: CreatedSource) -> None:
    """Profiles answer 401 without a server key, and the write key is not one."""
    assert client.get("/v1/profiles/u1").status_code == 401
    assert client.get("/v1/profiles/u1", headers=bearer(source.write_key)).status_code == 401


def test_unknown_profile_is_404(client: Client, source: CreatedSource) -> None:
    """A user never seen gets 404 profile_not_found."""
    response = client.get("/v1/profiles/ghost", headers=bearer(source.server_key))
    assert response.status_code == 404
    assert response.json()["error"] == "profile_not_found"


def test_sources_do_not_see_each_other(client: Client, make_source: MakeSource) -> None:
    """Another source's server key does not find this source's profile, and pseudonyms differ."""
    first, second = make_source("one"), make_source("two")
    for src in (first, second):
        client.post(
            "/v1/track", json={"userId": "same", "event": "x"}, headers=basic(src.write_key)
        )
    one = profile_when(client, first, "same", 1)
    two = profile_when(client, second, "same", 1)
    assert one["subject"] != two["subject"]


def test_gdpr_source_drops_events_without_consent(client: Client, make_source: MakeSource) -> None:
    """On a GDPR source, an event without consent is acknowledged but never forwarded."""
    gdpr = make_source("eu", "gdpr")
    headers = basic(gdpr.write_key)
    assert (
        client.post("/v1/track", json={"userId": "eu1", "event": "x"}, headers=headers).status_code
        == 200
    )
    consented = {
        "userId": "eu1",
        "event": "Consented",
        "context": {"consent": {"categoryPreferences": {"analytics": True}}},
    }
    assert client.post("/v1/track", json=consented, headers=headers).status_code == 200
    profile = profile_when(client, gdpr, "eu1", 1)
    assert profile["computed"]["event_counts"] == {"Consented": 1}


def test_no_raw_identifier_or_email_is_stored(
    client: Client, source: CreatedSource, migrated: Settings
) -> None:
    """Raw ids and planted PII (traits, properties, URLs, an error path) never reach the
    database or the logs."""
    canary_id = "canary-user-7f3a9c"
    canary_email = "canary.person@example.org"
    batch = [
        {
            "type": "identify",
            "userId": canary_id,
            "anonymousId": "canary-anon-1b2c3d",
            "traits": {"email": canary_email, "name": "Canary Person", "plan": "pro"},
            "context": {"ip": "203.0.113.77", "userAgent": "Mozilla/5.0 canary-agent"},
        },
        {
            "type": "track",
            "userId": canary_id,
            "event": "Shared",
            "properties": {
                "note": f"mail {canary_email} or ping {canary_id}",
                "contact": "call +44 20 7946 0958 or 415-555-2671",
                "payment": {"card": "4111 1111 1111 1111", "iban": "GB82 WEST 1234 5698 7654 32"},
                "ssn": "123-45-6789",
            },
            "context": {
                "page": {
                    "url": f"https://x.test/?email={canary_email}",
                    "path": f"/users/{canary_email}/settings",
                    "title": "Profile of +14155552671",
                }
            },
        },
        {"type": "alias", "userId": canary_id, "previousId": "canary-previous-9e8d"},
        {"type": "group", "userId": canary_id, "groupId": "canary-group-4f4f"},
    ]
    with structlog.testing.capture_logs() as logs:
        client.post("/v1/batch", json={"batch": batch}, headers=basic(source.write_key))
        client.post("/v1/track", json={"userId": [canary_email]}, headers=basic(source.write_key))
        profile_when(client, source, canary_id, 4)
    stored = dump_database(migrated.database_url) + repr(logs)
    for canary in (
        canary_id,
        canary_email,
        "canary-anon-1b2c3d",
        "Canary Person",
        "203.0.113.77",
        "canary-agent",
        "canary-previous-9e8d",
        "canary-group-4f4f",
        "7946 0958",
        "555-2671",
        "4111 1111 1111 1111",
        "GB82 WEST",
        "123-45-6789",
        "4155552671",
    ):
        assert canary not in stored


def test_no_client_chosen_text_reaches_storage_raw(
    client: Client, source: CreatedSource, migrated: Settings
) -> None:
    """An e-mail canary in every place of a Segment call where a client can put text (ids,
    messageId, event and page names, keys and values of traits, properties and context, at
    any depth, integrations) is nowhere in the database or the logs."""
    marks = iter(range(1000))

    def canary() -> str:
        return f"c{next(marks)}@canary.example"

    def free_form() -> dict[str, Any]:
        return {
            canary(): canary(),
            "plain": canary(),
            "nested": {canary(): [canary(), {canary(): canary()}]},
        }

    context = {
        "traits": free_form(),
        "library": {"name": canary(), "version": canary()},
        "app": {"name": canary(), "version": canary(), "build": canary()},
        "page": {"path": f"/{canary()}", "title": canary(), "url": canary(), "referrer": canary()},
        "campaign": {"name": canary(), "source": canary()},
        "device": {"model": canary(), "manufacturer": canary(), "id": canary()},
        "os": {"name": canary(), "version": canary()},
        "locale": canary(),
        "timezone": canary(),
        "userAgent": canary(),
        canary(): canary(),
    }
    common = {"userId": canary(), "anonymousId": canary(), "context": context}
    batch = [
        {**common, "type": "identify", "traits": free_form(), "messageId": canary()},
        {
            **common,
            "type": "track",
            "event": canary(),
            "properties": free_form(),
            "integrations": free_form(),
            "messageId": canary(),
        },
        {**common, "type": "page", "name": canary(), "category": canary(), "properties": {}},
        {**common, "type": "screen", "name": canary(), "properties": free_form()},
        {**common, "type": "group", "groupId": canary(), "traits": free_form()},
        {**common, "type": "alias", "previousId": canary()},
    ]
    with structlog.testing.capture_logs() as logs:
        sent = client.post("/v1/batch", json={"batch": batch}, headers=basic(source.write_key))
        assert sent.status_code == 200
        profile_when(client, source, str(common["userId"]), len(batch))
    stored = dump_database(migrated.database_url) + repr(logs)
    assert "canary.example" not in stored


def test_errors_use_the_error_shape(client: Client) -> None:
    """Unknown routes and methods answer {"error", "detail"} too."""
    missing = client.get("/v1/nothing")
    wrong_method = client.get("/v1/track")
    assert missing.status_code == 404
    assert set(missing.json()) == {"error", "detail"}
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "method_not_allowed"


def test_health_readiness_and_schema(client: Client) -> None:
    """/healthz and /readyz answer 200 and /schema serves the OpenAPI document."""
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready == {"status": "ready", "checks": {"database": "ok", "bus": "ok"}}
    schema = client.get("/schema/openapi.json").json()
    assert "/v1/batch" in schema["paths"]
    assert "/v1/profiles/{user_id}" in schema["paths"]


async def test_readiness_names_what_is_down(migrated: Settings, keks: KekSet) -> None:
    """/readyz reports an unreachable database and a stopped bus by name."""
    from gateway.database import open_database
    from gateway.runtime import check_ready, open_runtime

    async with open_runtime(migrated, keks) as runtime:
        await runtime.bus.close()
        unreachable = open_database("postgresql://127.0.0.1:1/none")
        checks = await check_ready(unreachable, runtime.bus)
        await unreachable.dispose()
    assert checks["database"].startswith("unreachable")
    assert checks["bus"].startswith("unavailable")


def test_events_the_bus_cannot_take_get_503_with_retry_after(
    client: TestClient, source: CreatedSource
) -> None:
    """When the outbox cannot commit (the database is down), nothing is acknowledged: 503
    `bus_unavailable` with `Retry-After`, on which SDKs retry."""
    with client.portal() as portal:
        portal.call(client.app.state.runtime.bus.close)
    answer = client.post(
        "/v1/track", json={"userId": "u", "event": "E"}, headers=basic(source.write_key)
    )
    assert answer.status_code == 503
    assert answer.json()["error"] == "bus_unavailable"
    assert answer.headers["retry-after"] == "2"
