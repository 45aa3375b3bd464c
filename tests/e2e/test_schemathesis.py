"""Schemathesis against the real server's `/schema/openapi.json`: data it generates from the
document (valid and invalid), with every credential kind. No answer is a 5xx, and every answer
is one the document states (status, content type, body schema)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests.e2e.server import Gateway

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
_SCHEME_CREDENTIAL = {
    "writeKey": "write",
    "serverKey": "server",
    "subjectToken": "subject",
    "adminToken": "auditor",
}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, dict[str, str]]]:
    """A gateway and one credential of each kind (write key as Basic, the rest as Bearer)."""
    gateway = Gateway(
        Path(tmp_path_factory.mktemp("schemathesis")), CONSENTGATE_RATE_LIMIT_PER_SECOND="0"
    )
    gateway.start()
    try:
        source = gateway.cli("sources", "create", "fuzzed", "--jurisdiction", "none")
        auditor = gateway.cli("tokens", "create", "--role", "auditor")["token"]
        admin = gateway.cli("tokens", "create", "--role", "admin")["token"]
        minted = httpx.post(
            gateway.url + "/v1/tokens",
            headers={"Authorization": f"Bearer {source['server_key']}"},
            json={"userId": "fuzz-user"},
        ).json()["token"]
        write = httpx.BasicAuth(source["write_key"], "")._auth_header
        yield (
            gateway,
            {
                "write": write,
                "server": f"Bearer {source['server_key']}",
                "subject": f"Bearer {minted}",
                "auditor": f"Bearer {auditor}",
                "admin": f"Bearer {admin}",
            },
        )
    finally:
        gateway.stop()


@pytest.fixture(scope="module")
def api_schema(live: tuple[Gateway, dict[str, str]]) -> Any:
    gateway, _ = live
    return schemathesis.openapi.from_url(gateway.url + "/schema/openapi.json")


def test_every_answer_is_documented_and_none_is_a_5xx(
    live: tuple[Gateway, dict[str, str]], api_schema: Any
) -> None:
    """For every operation: cases generated from the document, sent with the credential the
    operation names and with none; no 5xx, every answer as the document states it.

    (Schemathesis' own pytest plugin does not run on this pytest; its strategies do.)"""
    gateway, credentials = live
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 20
    for operation in operations:
        security = operation.definition.raw.get("security") or []
        names = [name for requirement in security for name in requirement]
        named = [credentials[_SCHEME_CREDENTIAL[name]] for name in names]
        _exercise(operation, gateway.url, [*named[:1], None])


def _exercise(operation: Any, url: str, authorizations: list[str | None]) -> None:
    """Cases generated for one operation, each sent with every authorization given."""

    @settings(
        max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=operation.as_strategy())
    def exercise(case: Any) -> None:
        for authorization in authorizations:
            headers = {"Authorization": authorization} if authorization else {}
            response = case.call(base_url=url, headers=headers)
            case.validate_response(response, checks=CHECKS)

    exercise()
