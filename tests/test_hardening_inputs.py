"""Inputs that once answered 500: each now gets a 4xx with a code and changes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar.testing import TestClient

from gateway.settings import Settings
from gateway.sources import CreatedSource
from tests.helpers import basic, bearer, sqlite_rows

Client = TestClient


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs in both shapes (tests/conftest.py, `shaped`)."""
    return shaped


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def _outbox_rows(client: Client) -> int:
    url = client.app.state.runtime.settings.database_url
    return len(sqlite_rows(url, "SELECT 1 FROM bus_outbox"))


@pytest.mark.parametrize(
    "body",
    [
        b'{"writeKey":"\xff\xfe","userId":"a","event":"x"}',
        b'{"a":' * 1000 + b"1" + b"}" * 1000,
        b"[" * 1000 + b"]" * 1000,
    ],
    ids=["invalid-utf8", "deep-object", "deep-array"],
)
def test_bodies_without_a_credential_get_401(client: Client, body: bytes) -> None:
    """Invalid UTF-8 or deep JSON with no credential is a 401, not a 500."""
    response = client.post("/v1/track", content=body)
    assert response.status_code == 401
    assert response.json()["error"] == "missing_write_key"


@pytest.mark.parametrize("path", ["/v1/track", "/v1/batch"])
def test_deep_properties_are_refused_at_decode(
    client: Client, source: CreatedSource, path: str
) -> None:
    """Properties nested past the bound get 400 nesting_too_deep, and nothing is published."""
    event = {"type": "track", "userId": "u", "event": "x", "properties": _nested(330)}
    body = event if path == "/v1/track" else {"batch": [event]}
    response = client.post(path, headers=basic(source.write_key), content=json.dumps(body))
    assert response.status_code == 400
    assert response.json()["error"] == "nesting_too_deep"
    assert _outbox_rows(client) == 0


def test_nesting_inside_strings_does_not_count(client: Client, source: CreatedSource) -> None:
    """Brackets inside string values are text, not nesting."""
    properties = {"text": "[{" * 100, "shallow": _nested(20)}
    response = client.post(
        "/v1/track",
        headers=basic(source.write_key),
        json={"userId": "u", "event": "x", "properties": properties},
    )
    assert response.status_code == 200


def test_deep_batch_context_is_refused(client: Client, source: CreatedSource) -> None:
    """A batch-level context nested past the bound is refused too."""
    body = {"batch": [{"type": "track", "userId": "u", "event": "x"}], "context": _nested(40)}
    response = client.post("/v1/batch", headers=basic(source.write_key), json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "nesting_too_deep"


@pytest.mark.parametrize("value", [["granted"], {"a": 1}, 7, None])
def test_consent_mode_values_of_any_type_are_malformed_not_fatal(
    client: Client, source: CreatedSource, value: Any
) -> None:
    """A Consent Mode field holding a list, an object or a number is a malformed signal."""
    response = client.post(
        "/v1/track",
        headers=basic(source.write_key),
        json={"userId": "u", "event": "x", "context": {"consent": {"analytics_storage": value}}},
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "times",
    [
        {"timestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-12-31T23:59:59Z"},
        {"timestamp": "9999-12-31T23:59:59Z", "sentAt": "0001-01-01T00:00:00Z"},
        {"timestamp": "0001-01-01T00:00:00Z"},
        {"timestamp": "9999-12-31T23:59:59Z"},
    ],
)
def test_timestamps_out_of_range_get_400(
    client: Client, source: CreatedSource, times: dict[str, str]
) -> None:
    """Times in year 1 or 9999 get 400 invalid_timestamp; a batch holding one is refused whole."""
    event = {"type": "track", "userId": "u", "event": "x", **times}
    good = {"type": "track", "userId": "u", "event": "y"}
    for path, body in (("/v1/track", event), ("/v1/batch", {"batch": [good, event]})):
        response = client.post(path, headers=basic(source.write_key), json=body)
        assert response.status_code == 400, path
        assert response.json()["error"] == "invalid_timestamp"
    assert _outbox_rows(client) == 0


def test_skewed_device_clock_is_still_corrected(client: Client, source: CreatedSource) -> None:
    """A device clock decades off, with a sentAt from the same clock, is corrected, not refused."""
    response = client.post(
        "/v1/track",
        headers=basic(source.write_key),
        json={
            "userId": "u",
            "event": "x",
            "timestamp": "1971-01-01T00:00:00Z",
            "sentAt": "1971-01-01T00:00:05Z",
        },
    )
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/v1/consent/u1", "/v1/me/consent"])
def test_invalid_utf8_on_json_routes_gets_400(
    client: Client, source: CreatedSource, path: str
) -> None:
    """Invalid UTF-8 in a consent body is 400 invalid_json."""
    headers = bearer(source.server_key)
    if path == "/v1/me/consent":
        minted = client.post("/v1/tokens", headers=headers, json={"userId": "u1"})
        headers = bearer(minted.json()["token"])
    body = b'{"purposes":{"\xff":true},"policy_version":"v1"}'
    response = client.put(path, headers=headers, content=body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"


def test_invalid_utf8_on_privacy_requests_gets_400(client: Client, source: CreatedSource) -> None:
    """Invalid UTF-8 in a privacy-request body is 400 invalid_json."""
    response = client.post(
        "/v1/privacy/requests",
        headers=bearer(source.server_key),
        content=b'{"type":"erasure","userId":"\xff"}',
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/audit", {"after": str(2**63)}),
        ("/v1/audit/consistency", {"old_size": "1", "new_size": str(2**63)}),
    ],
)
def test_huge_integers_in_queries_get_400(
    client: Client, auditor: dict[str, str], path: str, params: dict[str, str]
) -> None:
    """Integers beyond 64 bits in audit queries get 400 invalid_query."""
    response = client.get(path, headers=auditor, params=params)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_query"


def test_method_not_allowed_names_the_allowed_methods(client: Client) -> None:
    """A 405 carries Allow."""
    response = client.get("/v1/track")
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]


def test_parameter_errors_name_the_parameter_never_its_value(
    client: Client, auditor: dict[str, str]
) -> None:
    """A bad query value is named by its parameter; the value and the URL are not echoed."""
    response = client.get("/v1/decisions", headers=auditor, params={"limit": "canary@example.com"})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("query parameter 'limit': ")  # not litestar's "ParamType.QUERY"
    assert "canary" not in detail
    assert "/v1/decisions" not in detail


def test_an_identifier_of_only_invisible_characters_is_missing(
    client: Client, source: CreatedSource
) -> None:
    """A userId of zero-width characters alone is no identifier."""
    response = client.post(
        "/v1/track",
        headers=basic(source.write_key),
        json={"userId": "\u200b\u200d", "event": "x"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "no_user_anon_id"
