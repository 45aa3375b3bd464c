"""Key operations behind `consentgate keys rotate`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from anonymization import KekSet, Keyring, load_or_create_key, pending_kek_path, rewrap_all
from gateway.database import open_database
from gateway.settings import Settings
from gateway.sources import key_scopes


async def rotate_kek(settings: Settings) -> dict[str, Any]:
    """Re-wrap every key under a new KEK, then make the new KEK the key file.

    The new KEK is written to `<key file>.new` first; the key file is replaced only after the
    re-wrap committed. A crash in between leaves both files, both loaded at start, so every
    key stays readable, and running the rotation again finishes it with the same new KEK.
    """
    path = Path(settings.key_file)
    pending = pending_kek_path(path)
    old = KekSet.load(path)
    if not pending.exists():
        load_or_create_key(pending)  # fresh random 32 bytes, mode 0600
    new = KekSet(load_or_create_key(pending))
    database = open_database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        count = await database.transaction(lambda conn: rewrap_all(conn, old, new))
    finally:
        await database.dispose()
    os.replace(pending, path)
    _fsync_directory(path.parent)
    return {"rotated": True, "kek_id": new.current_id, "rewrapped": count}


async def start_pseudonym_epoch(
    settings: Settings, keks: KekSet, source_id: str | None
) -> dict[str, int]:
    """A new pseudonym key version for one source or all; returns source id -> version.

    Sources that share keys (a workspace) move to the new epoch together.
    """
    database = open_database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        keyring = Keyring(database, keks)
        scopes = await key_scopes(database)
        if source_id is not None and source_id not in scopes:
            raise ValueError(f"--source: no source {source_id!r}")
        chosen = {scopes[source_id]} if source_id else set(scopes.values())
        new_versions = {}
        for scope in sorted(chosen):
            await keyring.source_keys(scope)  # version 1 exists before version 2
            new_versions[scope] = await keyring.start_epoch(scope)
        return {sid: new_versions[scope] for sid, scope in scopes.items() if scope in chosen}
    finally:
        await database.dispose()


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
