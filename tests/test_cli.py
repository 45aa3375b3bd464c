"""The CLI's conveniences: token listing and revocation (idempotent, audited once)."""

from __future__ import annotations

import json

import pytest
from litestar.testing import TestClient

from gateway.cli import main
from gateway.settings import Settings
from gateway.sources import CreatedSource
from tests.helpers import bearer, last_json_line, sqlite_rows


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs in both shapes (tests/conftest.py, `shaped`)."""
    return shaped


def _kinds(settings: Settings) -> list[str]:
    query = "SELECT kind FROM observability_audit_log ORDER BY seq"
    return [row[0] for row in sqlite_rows(settings.database_url, query)]


def test_admin_tokens_are_listed_and_revoked_once(
    client: TestClient,
    migrated: Settings,
    admin: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`tokens list` shows ids and roles, never a token; `tokens revoke ID` ends the token at
    once; revoking it again changes nothing and writes no second entry."""
    capsys.readouterr()
    assert main(["tokens", "list"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [t["role"] for t in listed] == ["auditor", "admin"]
    assert all(t["revoked_at"] is None for t in listed)
    token = admin["Authorization"].removeprefix("Bearer ")
    assert token not in json.dumps(listed)
    assert client.get("/v1/audit/verify", headers=admin).status_code == 200

    admin_id = listed[1]["token_id"]
    assert main(["tokens", "revoke", admin_id]) == 0
    assert last_json_line(capsys.readouterr().out) == {
        "token_id": admin_id,
        "revoked": True,
        "already": False,
    }
    assert client.get("/v1/audit/verify", headers=admin).status_code == 401
    assert main(["tokens", "revoke", admin_id]) == 0
    assert last_json_line(capsys.readouterr().out)["already"] is True
    assert _kinds(migrated).count("admin_token.revoked") == 1

    assert main(["tokens", "revoke", "0" * 16]) == 2
    assert "no admin or auditor token" in capsys.readouterr().err


def test_revoking_a_subject_token_twice_is_one_audit_entry(
    client: TestClient, source: CreatedSource, migrated: Settings
) -> None:
    server = bearer(source.server_key)
    minted = client.post("/v1/tokens", json={"userId": "u-1"}, headers=server).json()
    for _ in range(2):
        assert client.delete(f"/v1/tokens/{minted['token_id']}", headers=server).status_code == 204
    assert _kinds(migrated).count("token.revoked") == 1
    assert client.delete("/v1/tokens/tok_unknown", headers=server).status_code == 404
