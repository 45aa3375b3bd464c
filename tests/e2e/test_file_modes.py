"""The data the gateway keeps on disk is readable by its own user only."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx

from tests.e2e.server import Gateway


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_database_files_and_folders_are_private(tmp_path: Path) -> None:
    """var/ and keys/ are 0700; the database and its -wal and -shm files are 0600, an older
    0644 database included."""
    var = tmp_path / "data" / "var"
    var.mkdir(parents=True, mode=0o700)
    database = var / "consentgate.db"
    database.touch(mode=0o644)
    database.chmod(0o644)
    gateway = Gateway(
        tmp_path,
        CONSENTGATE_DATABASE_URL=f"sqlite:///{database}",
        CONSENTGATE_KEY_FILE=str(tmp_path / "fresh" / "keys" / "master.key"),
    )
    gateway.start()
    try:
        source = gateway.cli("sources", "create", "modes", "--jurisdiction", "none")
        sent = httpx.post(
            gateway.url + "/v1/track",
            auth=(source["write_key"], ""),
            json={"userId": "u", "event": "x"},
        )
        assert sent.status_code == 200
        for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
            assert _mode(path) == 0o600, path.name
        for folder in (tmp_path / "fresh", tmp_path / "fresh" / "keys"):
            assert _mode(folder) == 0o700, folder.name
    finally:
        gateway.stop()
