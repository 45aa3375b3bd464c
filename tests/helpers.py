"""Test helpers: waiting on the asynchronous core, dumping every stored row."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

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
ERASURE_STORES = {"consent", "keys", "decisions", "dead_letters", "profiles"}


def completed_request(fetch: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Poll a privacy request (`fetch` returns its JSON) until it has completed."""

    def probe() -> dict[str, Any] | None:
        body = fetch()
        return body if body["status"] == "completed" else None

    return wait_for(probe)


def sqlite_rows(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows of one query on the SQLite database at `database_url`."""
    with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
        return list(conn.execute(sql))


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
