"""The database engine: async SQLAlchemy on SQLite (embedded) or PostgreSQL (scale-out)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def async_url(database_url: str) -> URL:
    """Map `sqlite:///…` and `postgresql://…` to their asyncio drivers."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise ValueError(
            f"CONSENTGATE_DATABASE_URL: unsupported database {backend!r}; use sqlite or postgresql"
        )
    if url.drivername == backend or url.drivername in {"postgres", "postgresql+psycopg"}:
        url = url.set(drivername=_ASYNC_DRIVERS[backend])
    return url


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def create_engine(database_url: str, *, sqlite_synchronous: str = "full") -> AsyncEngine:
    """Build the engine; on SQLite, WAL + busy timeout + `BEGIN IMMEDIATE` transactions.

    SQLite upgrades a read transaction to a write lock without waiting (SQLITE_BUSY at
    once) when another connection committed meanwhile; taking the write lock when the
    transaction begins makes concurrent writers queue on the busy timeout instead.
    """
    url = async_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)

    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    engine = create_async_engine(url)
    synchronous = sqlite_synchronous.upper()

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let us issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
