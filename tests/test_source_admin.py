"""Sources after creation: `sources update`, `sources rotate-keys` with an overlap, `list`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from litestar.testing import TestClient
from sqlalchemy import Table, update

import gateway.sources
from gateway._tables import RetiredKeyRow
from gateway.cli import main
from gateway.settings import Settings
from gateway.sources import CreatedSource
from tests.helpers import basic, bearer, execute


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs in both shapes (tests/conftest.py, `shaped`)."""
    return shaped


Client = TestClient
EVENT = {"userId": "u", "event": "Clicked"}


@pytest.fixture(autouse=True)
def _no_source_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Changes made by the CLI show at once (a running gateway sees them within 30 s)."""
    monkeypatch.setattr(gateway.sources, "SOURCE_CACHE_SECONDS", 0.0)


def _cli(
    monkeypatch: pytest.MonkeyPatch, capsys: Any, settings: Settings, *args: str
) -> tuple[int, Any]:
    monkeypatch.setenv("CONSENTGATE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CONSENTGATE_RECEIPT_KEY_FILE", settings.receipt_key_file)
    code = main(list(args))
    out = capsys.readouterr().out.strip()
    lines = [json.loads(line) for line in out.splitlines()] if out else []
    return code, lines[0] if len(lines) == 1 else lines


def test_rotated_keys_overlap_then_the_old_ones_stop(
    client: Client,
    source: CreatedSource,
    migrated: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    auditor: dict[str, str],
) -> None:
    """rotate-keys prints new keys in `sources create`'s shape; the old write and server keys
    keep working for the overlap, then get 401; the rotation is audited."""
    code, rotated = _cli(
        monkeypatch, capsys, migrated, "sources", "rotate-keys", "app", "--overlap-hours", "1"
    )
    assert code == 0
    assert set(rotated) == {"source_id", "name", "write_key", "server_key", "jurisdiction"}
    assert rotated["source_id"] == source.source_id
    assert rotated["write_key"] != source.write_key
    for key in (source.write_key, rotated["write_key"]):
        assert client.post("/v1/track", headers=basic(key), json=EVENT).status_code == 200
    for key in (source.server_key, rotated["server_key"]):
        assert client.get("/v1/consent/u", headers=bearer(key)).status_code == 200
    retired = cast(Table, RetiredKeyRow.__table__)
    execute(
        migrated.database_url, update(retired).values(expires_at=datetime(2000, 1, 1, tzinfo=UTC))
    )
    old = client.post("/v1/track", headers=basic(source.write_key), json=EVENT)
    assert old.status_code == 401
    assert client.get("/v1/consent/u", headers=bearer(source.server_key)).status_code == 401
    assert (
        client.post("/v1/track", headers=basic(rotated["write_key"]), json=EVENT).status_code == 200
    )
    kinds = [e["entry"]["kind"] for e in client.get("/v1/audit", headers=auditor).json()["items"]]
    assert "source.keys_rotated" in kinds


def test_rotation_without_overlap_ends_the_old_keys_at_once(
    client: Client,
    source: CreatedSource,
    migrated: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """--overlap-hours 0: a leaked key stops working now."""
    code, _ = _cli(
        monkeypatch,
        capsys,
        migrated,
        "sources",
        "rotate-keys",
        source.source_id,
        "--overlap-hours",
        "0",
    )
    assert code == 0
    assert client.post("/v1/track", headers=basic(source.write_key), json=EVENT).status_code == 401


def test_update_changes_the_jurisdiction_and_is_audited(
    client: Client,
    source: CreatedSource,
    migrated: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    auditor: dict[str, str],
) -> None:
    """A source moved from `none` to `gdpr` drops events without consent from then on."""
    code, updated = _cli(
        monkeypatch,
        capsys,
        migrated,
        "sources",
        "update",
        "app",
        "--jurisdiction",
        "gdpr",
        "--rate-limit",
        "50",
    )
    assert code == 0
    assert updated["changed"] == ["edge_config", "jurisdiction"]
    client.post("/v1/track", headers=basic(source.write_key), json={**EVENT, "userId": "gd"})
    params = {"userId": "gd"}
    decisions = client.get("/v1/decisions", params=params, headers=auditor).json()["items"]
    assert [d["action"] for d in decisions] == ["drop"]
    kinds = [e["entry"]["kind"] for e in client.get("/v1/audit", headers=auditor).json()["items"]]
    assert "source.updated" in kinds


def test_unknown_or_ambiguous_sources_and_empty_updates_are_refused(
    source: CreatedSource,
    make_source: Any,
    migrated: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """An unknown name, a name two sources share, or nothing to change: exit 2, nothing done."""
    make_source("twin")
    make_source("twin")
    for args in (
        ("sources", "rotate-keys", "nope", "--overlap-hours", "1"),
        ("sources", "rotate-keys", "twin", "--overlap-hours", "1"),
        ("sources", "update", "app"),
        ("sources", "update", "app", "--allowed-origin", "not-an-origin"),
    ):
        code, _ = _cli(monkeypatch, capsys, migrated, *args)
        assert code == 2, args
    code, listed = _cli(monkeypatch, capsys, migrated, "sources", "list")
    assert code == 0
    assert [s["name"] for s in listed] == ["app", "twin", "twin"]
    assert "write_key" not in listed[0]
