"""The database: SQLite (embedded) or PostgreSQL (scale-out), behind `bus.Database`.

On SQLite every unit of work runs whole on a dedicated thread: one thread writes (transactions
begin IMMEDIATE, so writers never deadlock upgrading a read lock) and one reads (WAL lets it
read beside the writer). A unit costs one thread hand-off, where aiosqlite costs one per
statement (about 0.4 ms each on the reference machine). On PostgreSQL the asyncpg engine runs
the unit through SQLAlchemy's `run_sync`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import structlog
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bus import Database, DatabaseUnavailable, finish_within, stored_json

T = TypeVar("T")
log = structlog.get_logger("consentgate.database")
_DISPOSE_TIMEOUT_SECONDS = 10.0


def sqlalchemy_url(database_url: str) -> URL:
    """`sqlite:///…` (stdlib driver, on our threads) and `postgresql://…` (asyncpg)."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.set(drivername="sqlite")
    if backend in {"postgresql", "postgres"}:
        return url.set(drivername="postgresql+asyncpg")
    raise ValueError(
        f"CONSENTGATE_DATABASE_URL: unsupported database {backend!r}; use sqlite or postgresql"
    )


def open_database(database_url: str, *, sqlite_synchronous: str = "full") -> Database:
    url = sqlalchemy_url(database_url)
    if url.get_backend_name() == "sqlite":
        return SQLiteDatabase(url, synchronous=sqlite_synchronous)
    return PostgresDatabase(
        create_async_engine(
            url,
            pool_size=10,
            max_overflow=10,
            pool_pre_ping=True,
            json_serializer=stored_json,
            json_deserializer=msgspec.json.decode,
        )
    )


def _unavailable(exc: BaseException) -> DatabaseUnavailable | None:
    """A DatabaseUnavailable when `exc` (or what caused it) says the server is unreachable:
    refused or reset connections, a server shutting down or starting up; None otherwise."""
    import asyncpg

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            break
        if isinstance(
            current,
            OSError
            | asyncpg.exceptions.PostgresConnectionError
            | asyncpg.exceptions.InterfaceError
            | asyncpg.exceptions.OperatorInterventionError,
        ):
            break
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    else:
        return None
    return DatabaseUnavailable(f"the database is unreachable ({type(exc).__name__})")


def prepare_sqlite_file(database_url: str) -> None:
    """Make the SQLite file private before SQLite opens it: folders created on the way are
    0700, the file 0600 (its -wal and -shm files take the file's mode), and an existing
    file, -wal or -shm left more open is tightened to 0600."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    path = Path(url.database)
    for folder in reversed((path.parent, *path.parent.parents)):
        if not folder.exists():
            folder.mkdir(mode=0o700, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if name.exists() and name.stat().st_mode & 0o077:
            name.chmod(0o600)


class SQLiteDatabase:
    dialect_name = "sqlite"

    def __init__(self, url: URL, *, synchronous: str = "full") -> None:
        prepare_sqlite_file(url.render_as_string(hide_password=False))
        self._writer = _sqlite_engine(url, synchronous, immediate=True)
        self._reader = _sqlite_engine(url, synchronous, immediate=False)
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._read_thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-reader")

    async def transaction(self, work: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._write_thread, _in_transaction, self._writer, work)

    async def read(self, work: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._read_thread, _in_transaction, self._reader, work)

    async def dispose(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._write_thread, self._writer.dispose)
        await loop.run_in_executor(self._read_thread, self._reader.dispose)
        self._write_thread.shutdown(wait=True)
        self._read_thread.shutdown(wait=True)


def _in_transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    with engine.begin() as conn:
        return work(conn)


def _sqlite_engine(url: URL, synchronous: str, *, immediate: bool) -> Engine:
    # One connection per engine, used only by its own thread.
    engine = create_engine(
        url,
        pool_size=1,
        max_overflow=0,
        connect_args={"check_same_thread": False},
        json_serializer=stored_json,
        json_deserializer=msgspec.json.decode,
    )
    pragma = synchronous.upper()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={pragma}")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # on the sqlite3 connection: SQLAlchemy's execution machinery, once per transaction,
        # cost more than the BEGIN
        connection.connection.dbapi_connection.execute(begin)

    return engine


class PostgresDatabase:
    """The async engine; a lost or refused connection is `DatabaseUnavailable` (the pool's
    pre-ping replaces dead connections once the server is back)."""

    dialect_name = "postgresql"

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def transaction(self, work: Callable[[Connection], T]) -> T:
        return await self._run(self._engine.begin, work)

    async def read(self, work: Callable[[Connection], T]) -> T:
        return await self._run(self._engine.connect, work)

    @staticmethod
    async def _run(
        open_connection: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
        work: Callable[[Connection], T],
    ) -> T:
        try:
            async with open_connection() as conn:
                return await conn.run_sync(work)
        except Exception as exc:
            unavailable = _unavailable(exc)
            if unavailable is None:
                raise
            raise unavailable from exc

    async def dispose(self) -> None:
        """Close the pool's connections; bounded, so that a connection stuck in a cancelled
        operation cannot hold a shutdown forever."""
        if not await finish_within(self._engine.dispose(), _DISPOSE_TIMEOUT_SECONDS):
            log.warning("database_dispose_timed_out", seconds=_DISPOSE_TIMEOUT_SECONDS)
