"""The OpenAPI document is complete: every success answer, request body, query parameter,
credential and error shape is in it (what schemathesis and client generators read)."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

Client = TestClient
_TEXT_ANSWERS = {("get", "/metrics")}  # Prometheus text: a string schema
# open, or taking their own credential: the event stream's signed ticket (EventSource sends no
# Authorization header)
_OPEN = {"/healthz", "/readyz", "/metrics", "/v1/receipts/keys", "/ofrep/v1/events"}


@pytest.fixture
def document(client: Client) -> dict[str, Any]:
    schema: dict[str, Any] = client.get("/schema/openapi.json").json()
    return schema


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in {"get", "put", "post", "delete"}
    ]


def test_every_success_answer_has_a_schema(document: dict[str, Any]) -> None:
    """Each operation's 2xx answer (but a 204) documents its body."""
    missing = []
    for method, path, operation in _operations(document):
        successes = {code: r for code, r in operation["responses"].items() if code.startswith("2")}
        assert successes, (method, path)
        for code, response in successes.items():
            if code == "204":
                continue
            content = response.get("content") or {}
            if not any("schema" in media for media in content.values()):
                missing.append((method, path, code))
    assert missing == []


def test_every_credentialed_route_names_its_credentials(document: dict[str, Any]) -> None:
    """Routes that take a credential say which, from the four security schemes; every error
    answer is the {error, detail} shape."""
    schemes = document["components"]["securitySchemes"]
    assert set(schemes) == {"writeKey", "serverKey", "subjectToken", "adminToken"}
    for method, path, operation in _operations(document):
        if path in _OPEN or path.startswith("/schema"):
            continue
        security = operation.get("security")
        assert security, (method, path)
        assert all(set(requirement) <= set(schemes) for requirement in security)
        # OFREP's 400 is the protocol's own failure shape ({key, errorCode, errorDetails})
        for code in ("401",) if path.startswith("/ofrep/") else ("400", "401"):
            body = operation["responses"][code]["content"]["application/json"]["schema"]
            assert body == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, code)
    error = document["components"]["schemas"]["ErrorBody"]
    assert set(error["properties"]) == {"error", "detail"}


def test_request_bodies_and_query_parameters_are_documented(document: dict[str, Any]) -> None:
    """Writes document their bodies; the decision log its filters."""
    for method, path, operation in _operations(document):
        if method in {"put", "post"}:
            assert "requestBody" in operation, (method, path)
    decisions = document["paths"]["/v1/decisions"]["get"]["parameters"]
    names = {parameter["name"] for parameter in decisions}
    assert {"userId", "messageId", "source_id", "action", "from", "to", "cursor"} <= names


def test_the_api_reference_loads_nothing_from_third_parties(client: TestClient) -> None:
    """/schema is one server-rendered page: no script, stylesheet, font or image from
    anywhere (litestar's renderers fetch theirs from CDNs and Google Fonts)."""
    page = client.get("/schema")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "<script" not in html
    assert "http://" not in html
    assert "https://" not in html
    assert "<code>/v1/track</code>" in html
    assert "id='schema-" in html  # the schemas, linked from the operations
    for renderer in ("/schema/swagger", "/schema/redoc", "/schema/elements", "/schema/rapidoc"):
        assert client.get(renderer).status_code == 404
    assert client.get("/schema/openapi.json").status_code == 200
