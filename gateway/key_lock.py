"""The lock every process holding keys takes, so that `keys rotate` never runs under one.

A running gateway caches data keys and wraps new ones with the KEK it loaded; rotating the KEK
under it breaks both. Every process that holds keys takes the lock shared for as long as it
holds them; `keys rotate` takes it exclusive, and refuses while anything else holds it.

SQLite: `flock` on a lock file beside the database (`<database>.keys.lock`), which every
process on the machine sharing that file sees, whatever port or folder it was started from.
PostgreSQL: an advisory lock on its own connection, which every process using the database
sees, on any machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

# pg_advisory_lock's key: "cgkeys" in ASCII, any constant no other lock uses
_ADVISORY_KEY = 0x6367_6B65_7973


class KeysInUse(ValueError):
    """The keys are held by another process (or a rotation is under way); says which lock."""


def lock_file_of(database_url: str) -> Path | None:
    """The lock file beside a SQLite database; None for PostgreSQL or an in-memory database."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return None
    if not url.database or url.database == ":memory:":
        return None
    return Path(f"{Path(url.database).resolve()}.keys.lock")


@contextlib.asynccontextmanager
async def holding_keys(database_url: str, *, exclusive: bool = False) -> AsyncIterator[None]:
    """Hold the keys' lock for the block: shared (serve, commands that wrap keys) or
    exclusive (`keys rotate`). Never waits: a lock that is taken raises `KeysInUse`."""
    path = lock_file_of(database_url)
    if path is not None:
        with _file_lock(path, exclusive=exclusive):
            yield
        return
    if make_url(database_url).get_backend_name() in {"postgresql", "postgres"}:
        async with _advisory_lock(database_url, exclusive=exclusive):
            yield
        return
    yield


@contextlib.contextmanager
def _file_lock(path: Path, *, exclusive: bool) -> Iterator[None]:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise KeysInUse(_refusal(exclusive, f"lock file {path}")) from None
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


@contextlib.asynccontextmanager
async def _advisory_lock(database_url: str, *, exclusive: bool) -> AsyncIterator[None]:
    import asyncpg

    url = make_url(database_url).set(drivername="postgresql")
    connection = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        function = "pg_try_advisory_lock" if exclusive else "pg_try_advisory_lock_shared"
        if not await connection.fetchval(f"SELECT {function}($1)", _ADVISORY_KEY):
            raise KeysInUse(_refusal(exclusive, f"PostgreSQL advisory lock {_ADVISORY_KEY}"))
        yield
    finally:
        await connection.close()  # ending the session releases the lock


def _refusal(exclusive: bool, lock: str) -> str:
    if exclusive:
        return (
            "the keys are in use: a consentgate process (serve, core, or a key command) holds "
            f"them ({lock}); stop every gateway on this database, then rotate"
        )
    return f"a key rotation is under way on this database ({lock}); start again when it ends"
