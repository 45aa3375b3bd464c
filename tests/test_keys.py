"""The keyring: wrapped keys, KEK rotation (also interrupted), pseudonym epochs."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import cast

import pytest
from litestar.testing import TestClient
from sqlalchemy import Table, select, update

from anonymization import (
    KekSet,
    Keyring,
    UnwrapError,
    load_or_create_key,
    pending_kek_path,
    rewrap_all,
)
from anonymization._tables import SourceKeyRow
from gateway.app import create_app
from gateway.cli import main
from gateway.database import open_database
from gateway.key_lock import KeysInUse, holding_keys
from gateway.runtime import open_runtime
from gateway.settings import Settings
from tests.helpers import MakeSource, basic, bearer, profile_when


async def _keys(settings: Settings, source_id: str) -> tuple[str, bytes]:
    """(a pseudonym under the source's current key, a subject's data key)."""
    database = open_database(settings.database_url)
    try:
        keyring = Keyring(database, KekSet.load(settings.key_file))
        pseudonym = (await keyring.source_keys(source_id)).current("subject", "alice")
        data_key = (await keyring.subject_keys(source_id, ["p1_subject"]))["p1_subject"]
        return pseudonym, data_key
    finally:
        await database.dispose()


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs in both shapes (tests/conftest.py, `shaped`)."""
    return shaped


def _use_settings(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setenv("CONSENTGATE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CONSENTGATE_KEY_FILE", settings.key_file)
    monkeypatch.setenv("CONSENTGATE_PORT", str(_free_port()))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_kek_rotation_keeps_every_key_and_pseudonym(
    migrated: Settings, make_source: MakeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After `keys rotate`, every key unwraps under the new KEK alone; nothing else changed."""
    source = make_source("rotating")
    before = asyncio.run(_keys(migrated, source.source_id))
    old_kek = Path(migrated.key_file).read_bytes()
    _use_settings(monkeypatch, migrated)
    assert main(["keys", "rotate"]) == 0
    assert Path(migrated.key_file).read_bytes() != old_kek
    assert not pending_kek_path(migrated.key_file).exists()
    assert asyncio.run(_keys(migrated, source.source_id)) == before


def test_interrupted_rotation_stays_readable_and_finishes(
    migrated: Settings, make_source: MakeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after the re-wrap but before the file swap loses nothing; rotating again ends it."""
    source = make_source("crashing")
    before = asyncio.run(_keys(migrated, source.source_id))
    old = KekSet.load(migrated.key_file)
    new = KekSet(load_or_create_key(pending_kek_path(migrated.key_file)))  # as rotate does

    async def rewrap_only() -> None:
        database = open_database(migrated.database_url)
        try:
            await database.transaction(lambda conn: rewrap_all(conn, old, new))
        finally:
            await database.dispose()

    asyncio.run(rewrap_only())  # the "crash": the key file was never replaced
    assert asyncio.run(_keys(migrated, source.source_id)) == before
    _use_settings(monkeypatch, migrated)
    assert main(["keys", "rotate"]) == 0
    assert KekSet.load(migrated.key_file).current_id == new.current_id
    assert asyncio.run(_keys(migrated, source.source_id)) == before


def test_rotation_refuses_while_any_process_holds_the_keys(
    migrated: Settings,
    keks: KekSet,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A running gateway holds the keys' lock whatever port it listens on (the CLI's settings
    name another one here): `keys rotate` refuses, and works once the gateway stopped."""
    _use_settings(monkeypatch, migrated)
    old_kek = Path(migrated.key_file).read_bytes()
    with TestClient(create_app(migrated, keks)):
        assert main(["keys", "rotate"]) == 2
        assert "the keys are in use" in capsys.readouterr().err
        assert Path(migrated.key_file).read_bytes() == old_kek
        assert main(["keys", "rotate", "--pseudonym-epoch"]) == 0  # needs the lock shared only
    assert main(["keys", "rotate"]) == 0
    assert Path(migrated.key_file).read_bytes() != old_kek


def test_a_gateway_does_not_start_during_a_rotation(migrated: Settings, keks: KekSet) -> None:
    """The other way round: while a rotation holds the lock, a gateway refuses to start."""

    async def start_during_rotation() -> None:
        async with holding_keys(migrated.database_url, exclusive=True):
            with pytest.raises(KeysInUse, match="rotation is under way"):
                async with open_runtime(migrated, keks):
                    pass

    asyncio.run(start_during_rotation())


def test_source_without_pseudonym_epoch_is_refused(
    migrated: Settings,
    keks: KekSet,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`keys rotate --source` alone would rotate the KEK of every source: refused."""
    _use_settings(monkeypatch, migrated)
    old_kek = Path(migrated.key_file).read_bytes()
    assert main(["keys", "rotate", "--source", "src_x"]) == 2
    assert "--source works only with --pseudonym-epoch" in capsys.readouterr().err
    assert Path(migrated.key_file).read_bytes() == old_kek


def test_a_wrapped_key_moved_to_another_row_does_not_unwrap(
    migrated: Settings, make_source: MakeSource
) -> None:
    """Wrapping binds each key to its row: copying source A's key to B fails loudly."""
    first, second = make_source("a"), make_source("b")
    asyncio.run(_keys(migrated, first.source_id))
    asyncio.run(_keys(migrated, second.source_id))
    table = cast(Table, SourceKeyRow.__table__)

    async def swap() -> None:
        database = open_database(migrated.database_url)
        try:
            row = await database.read(
                lambda conn: conn.execute(
                    select(table.c.wrapped).where(table.c.source_id == first.source_id)
                ).first()
            )
            await database.transaction(
                lambda conn: conn.execute(
                    update(table)
                    .where(table.c.source_id == second.source_id)
                    .values(wrapped=row.wrapped)
                )
            )
        finally:
            await database.dispose()

    asyncio.run(swap())
    with pytest.raises(UnwrapError):
        asyncio.run(_keys(migrated, second.source_id))


def test_pseudonym_epoch_changes_pseudonyms_and_keeps_old_choices(
    migrated: Settings,
    keks: KekSet,
    make_source: MakeSource,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """After a new epoch, new events get p2_ pseudonyms, yet a withdrawal recorded under the
    old pseudonym still stops events, and the old profile is still found."""
    source = make_source("epochs")
    with TestClient(create_app(migrated, keks)) as client:
        client.post(
            "/v1/track", json={"userId": "eve", "event": "Old"}, headers=basic(source.write_key)
        )
        profile_when(client, source, "eve", 1)
        client.put(
            "/v1/consent/eve",
            json={"purposes": {"analytics": False}, "policy_version": "1"},
            headers=bearer(source.server_key),
        )
    _use_settings(monkeypatch, migrated)
    assert main(["keys", "rotate", "--pseudonym-epoch"]) == 0
    assert json.loads(capsys.readouterr().out) == {"pseudonym_epochs": {source.source_id: 2}}

    with TestClient(create_app(migrated, keks)) as client:  # a restart picks up the epoch
        state = client.get("/v1/consent/eve", headers=bearer(source.server_key)).json()
        assert state["subject"].startswith("p2_")
        assert state["purposes"]["analytics"]["granted"] is False
        client.post(
            "/v1/track", json={"userId": "eve", "event": "New"}, headers=basic(source.write_key)
        )
        client.post(
            "/v1/track", json={"userId": "zed", "event": "Marker"}, headers=basic(source.write_key)
        )
        profile_when(client, source, "zed", 1)
        marker = client.get("/v1/profiles/zed", headers=bearer(source.server_key)).json()
        assert marker["subject"].startswith("p2_")
        old = client.get("/v1/profiles/eve", headers=bearer(source.server_key)).json()
        assert old["subject"].startswith("p1_")
        assert old["computed"]["event_counts"] == {"Old": 1}


def test_key_material_stays_out_of_reprs(keks: KekSet) -> None:
    """Key holders print ids, never key bytes."""
    text = repr(keks)
    assert keks.current_id in text
    assert len(text) < 200


def test_sources_sharing_keys_get_the_same_pseudonyms(
    migrated: Settings,
    keks: KekSet,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A source created with --share-keys-with pseudonymizes like its workspace; others don't."""
    monkeypatch.setenv("CONSENTGATE_DATABASE_URL", migrated.database_url)
    assert main(["sources", "create", "web", "--jurisdiction", "none"]) == 0
    web = json.loads(capsys.readouterr().out)
    assert (
        main(
            [
                "sources",
                "create",
                "ios",
                "--jurisdiction",
                "none",
                "--share-keys-with",
                web["source_id"],
            ]
        )
        == 0
    )
    ios = json.loads(capsys.readouterr().out)
    assert main(["sources", "create", "other", "--jurisdiction", "none"]) == 0
    other = json.loads(capsys.readouterr().out)
    assert main(["sources", "create", "x", "--share-keys-with", "src_nope"]) == 2

    with TestClient(create_app(migrated, keks)) as client:
        subjects = {}
        for name, source in (("web", web), ("ios", ios), ("other", other)):
            state = client.get("/v1/consent/same-user", headers=bearer(source["server_key"])).json()
            subjects[name] = state["subject"]
    assert subjects["web"] == subjects["ios"]
    assert subjects["web"] != subjects["other"]

    _use_settings(monkeypatch, migrated)
    assert main(["keys", "rotate", "--pseudonym-epoch", "--source", ios["source_id"]]) == 0
    epochs = json.loads(capsys.readouterr().out)["pseudonym_epochs"]
    assert epochs == {web["source_id"]: 2, ios["source_id"]: 2}
