"""Test helpers: credentials headers, waiting on the asynchronous core, dumping every stored
row. Fixtures are in conftest.py; everything a test imports is here."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from litestar.testing import TestClient
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import Executable

from gateway.sources import CreatedSource

T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.02) -> T:
    """Call `probe` until it returns something other than None (or fail after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


# the stores an erasure reports on, one receipt each
ERASURE_STORES = {"consent", "keys", "decisions", "dead_letters", "exposures", "profiles"}


def completed_request(fetch: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Poll a privacy request (`fetch` returns its JSON) until it has completed."""

    def probe() -> dict[str, Any] | None:
        body = fetch()
        return body if body["status"] == "completed" else None

    return wait_for(probe)


def sqlite_rows(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows of one query on the database at `database_url`, SQLite or PostgreSQL (the
    name stays from when only SQLite was tested)."""
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            return list(conn.execute(sql))
    return asyncio.run(_postgres_rows(database_url, sql))


async def _postgres_rows(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    import asyncpg

    connection = await asyncpg.connect(database_url)
    try:
        return [tuple(row) for row in await connection.fetch(sql)]
    finally:
        await connection.close()


def execute(database_url: str, statement: Executable) -> None:
    """Run one SQLAlchemy statement in a transaction on the database at `database_url`, SQLite
    or PostgreSQL, with the column types doing the conversions (what a test seeds or ages)."""
    transact(database_url, lambda conn: conn.execute(statement))


def transact(database_url: str, work: Callable[[Connection], T]) -> T:
    """`work(conn)` in one transaction on the database at `database_url`, SQLite or
    PostgreSQL (what a test tampers with, straight in SQL)."""
    from gateway.database import open_database

    async def run() -> T:
        database = open_database(database_url)
        try:
            return await database.transaction(work)
        finally:
            await database.dispose()

    return asyncio.run(run())


def dump_table(database_url: str, table: str) -> str:
    """Every row of one table, as text."""
    return "\n".join(repr(row) for row in sqlite_rows(database_url, f'SELECT * FROM "{table}"'))


def dump_database(database_url: str) -> str:
    """Every row of every table, SQLite or PostgreSQL, as one text to search for canaries."""
    if database_url.startswith("sqlite:///"):
        return dump_sqlite(database_url.removeprefix("sqlite:///"))
    tables = sqlite_rows(
        database_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    )
    parts = []
    for (table,) in tables:
        for row in sqlite_rows(database_url, f'SELECT * FROM "{table}"'):
            parts.append(repr(row))
            parts.extend(
                value.decode("utf-8", "replace") for value in row if isinstance(value, bytes)
            )
    return "\n".join(parts)


def dump_sqlite(path: str) -> str:
    """Every row of every table of a SQLite file, as one text to search for canaries."""
    with sqlite3.connect(path) as conn:
        tables = [
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        parts = []
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                parts.append(repr(row))
                parts.extend(
                    value.decode("utf-8", "replace") for value in row if isinstance(value, bytes)
                )
    return "\n".join(parts)


def embedded_environ(tmp_path: Path) -> dict[str, str]:
    return {
        "CONSENTGATE_DATABASE_URL": f"sqlite:///{tmp_path}/consentgate.db",
        "CONSENTGATE_KEY_FILE": str(tmp_path / "keys" / "master.key"),
        "CONSENTGATE_RECEIPT_KEY_FILE": str(tmp_path / "keys" / "receipts.key"),
        "CONSENTGATE_LOG_LEVEL": "warning",
        # tests sign audit checkpoints themselves (test_audit checks the server's cadence)
        "CONSENTGATE_AUDIT_CHECKPOINT_SECONDS": "3600",
    }


MakeSource = Callable[..., CreatedSource]


def basic(write_key: str) -> dict[str, str]:
    token = base64.b64encode(f"{write_key}:".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def profile_when(
    client: TestClient,
    source: CreatedSource,
    user_id: str,
    total: int,
) -> dict[str, Any]:
    """The profile of `user_id` once it has counted `total` events."""

    def probe() -> dict[str, Any] | None:
        response = client.get(f"/v1/profiles/{user_id}", headers=bearer(source.server_key))
        if response.status_code != 200:
            return None
        body: dict[str, Any] = response.json()
        return body if sum(body["computed"]["event_counts"].values()) >= total else None

    return wait_for(probe)


def completed_privacy_request(
    client: TestClient,
    headers: dict[str, str],
    request_id: str,
) -> dict[str, Any]:
    """The privacy request once it has completed."""
    return completed_request(
        lambda: client.get(f"/v1/privacy/requests/{request_id}", headers=headers).json()
    )


def last_json_line(printed: str) -> Any:
    """The JSON object a CLI command printed (log lines of a running app may surround it)."""
    return json.loads([line for line in printed.splitlines() if line.startswith("{")][-1])
