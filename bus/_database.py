"""What the outbox (and the core) need of a database: run a unit of work in one transaction.

A unit of work is a plain function over a SQLAlchemy `Connection`. The gateway provides the
implementation: on SQLite, a dedicated thread runs the whole unit in one hand-off (aiosqlite
would pay a thread round trip per statement); on PostgreSQL, the async engine runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from sqlalchemy.engine import Connection

T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The database cannot be reached (down, restarting, the connection lost): nothing of the
    unit of work happened; retry later."""


class Database(Protocol):
    @property
    def dialect_name(self) -> str: ...

    async def transaction(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in a write transaction; commit when it returns, roll back if it raises.
        An unreachable database raises `DatabaseUnavailable`."""

    async def read(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in a read-only transaction (it may run beside writes)."""

    async def dispose(self) -> None:
        """Release connections and threads."""


def as_utc(moment: datetime) -> datetime:
    """A time as an aware UTC datetime: SQLite gives stored times back without their zone."""
    if moment.tzinfo is UTC:
        return moment
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
