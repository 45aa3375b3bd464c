"""End-to-end latency: from the 200 to the event being visible in the profile, at a steady rate."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import DateTime, String, text

from anonymization import KekSet, Keyring
from benchmarks.payloads import batch_body
from bus import as_utc
from gateway.database import open_database

EVENTS_PER_REQUEST = 20


async def _send_at_rate(url: str, write_key: str, rate: float, seconds: float) -> dict[str, float]:
    """One batch per tick, each batch a new user; returns user -> wall time of its 200."""
    interval = EVENTS_PER_REQUEST / rate
    acked: dict[str, float] = {}
    tasks = []
    async with httpx.AsyncClient(base_url=url, auth=(write_key, ""), timeout=10) as client:

        async def send(user: str) -> None:
            response = await client.post("/v1/batch", content=batch_body(EVENTS_PER_REQUEST, user))
            if response.status_code == 200:
                acked[user] = time.time()

        started = time.perf_counter()
        n = 0
        while (elapsed := time.perf_counter() - started) < seconds:
            tasks.append(asyncio.create_task(send(f"e2e-{n}")))
            n += 1
            await asyncio.sleep(max(0.0, n * interval - elapsed))
        await asyncio.gather(*tasks)
    return acked


def measure(
    url: str,
    workdir: Path,
    source: dict[str, Any],
    rate: float,
    seconds: float,
    database_url: str | None = None,
) -> dict[str, float]:
    """p50/p99 milliseconds from a batch's 200 to its profile row being written (the profile's
    `updated_at`, in the transaction that commits it), in `database_url` (the bench's SQLite
    file by default)."""
    database_url = database_url or f"sqlite:///{workdir}/bench.db"
    acked = asyncio.run(_send_at_rate(url, source["write_key"], rate, seconds))
    pseudonymize = asyncio.run(_pseudonymizer(database_url, workdir, source["source_id"]))
    subjects = {pseudonymize("subject", user): at for user, at in acked.items()}
    visible = asyncio.run(_wait_visible(database_url, subjects, wait_seconds=60))
    latencies = sorted((visible[s] - at) * 1000 for s, at in subjects.items() if s in visible)
    return {
        "e2e_p50_ms": latencies[len(latencies) // 2],
        "e2e_p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "e2e_events_per_s_offered": rate,
        "e2e_events_acked": len(acked) * EVENTS_PER_REQUEST,
        "e2e_events_visible": len(latencies) * EVENTS_PER_REQUEST,
    }


async def _pseudonymizer(database_url: str, workdir: Path, source_id: str) -> Any:
    database = open_database(database_url)
    try:
        keyring = Keyring(database, KekSet.load(workdir / "keys" / "master.key"))
        return (await keyring.source_keys(source_id)).current
    finally:
        await database.dispose()


async def _wait_visible(
    database_url: str, subjects: dict[str, float], wait_seconds: float
) -> dict[str, float]:
    query = text("SELECT subject, updated_at FROM profiles").columns(
        subject=String(), updated_at=DateTime(timezone=True)
    )
    database = open_database(database_url)
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            rows = await database.transaction(lambda conn: conn.execute(query).all())
            visible = {s: as_utc(at).timestamp() for s, at in rows if s in subjects}
            if len(visible) == len(subjects) or time.monotonic() > deadline:
                return visible
            await asyncio.sleep(0.2)
    finally:
        await database.dispose()
