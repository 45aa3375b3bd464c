"""Crash safety: kill -9 right after 200s; every acknowledged event reaches the core once."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.e2e.server import Gateway
from tests.helpers import wait_for

USER = "crash-user"
BATCHES = 60
EVENTS_PER_BATCH = 20
KILL_AFTER_ACKS = 15


def _batch(n: int) -> dict[str, Any]:
    return {
        "batch": [
            {"type": "track", "userId": USER, "event": f"e{n}-{i}", "messageId": f"m{n}-{i}"}
            for i in range(EVENTS_PER_BATCH)
        ]
    }


async def _load_then_kill(gateway: Gateway, write_key: str) -> list[int]:
    """Send batches concurrently; SIGKILL the server once KILL_AFTER_ACKS have answered 200."""
    acknowledged: list[int] = []
    killed = asyncio.Event()
    limits = httpx.Limits(max_connections=8)
    async with httpx.AsyncClient(
        base_url=gateway.url, auth=(write_key, ""), limits=limits
    ) as client:

        async def send(n: int) -> None:
            if killed.is_set():
                return
            try:
                response = await client.post("/v1/batch", json=_batch(n), timeout=10)
            except httpx.TransportError:
                return  # in flight at the kill: not acknowledged
            if response.status_code == 200 and not killed.is_set():
                acknowledged.append(n)
                if len(acknowledged) >= KILL_AFTER_ACKS:
                    killed.set()
                    gateway.kill()

        await asyncio.gather(*(send(n) for n in range(BATCHES)))
    return acknowledged


def _counts(gateway: Gateway, server_key: str) -> dict[str, int]:
    response = httpx.get(
        f"{gateway.url}/v1/profiles/{USER}", headers={"Authorization": f"Bearer {server_key}"}
    )
    if response.status_code == 404:
        return {}
    counts: dict[str, int] = response.json()["computed"]["event_counts"]
    return counts


def test_acknowledged_events_survive_kill_9_exactly_once(gateway: Gateway) -> None:
    """Every event of every 200 is in the profile once after a SIGKILL and restart, retries too."""
    source = gateway.cli("sources", "create", "crash", "--jurisdiction", "none")
    gateway.start()
    acknowledged = asyncio.run(_load_then_kill(gateway, source["write_key"]))
    assert len(acknowledged) >= KILL_AFTER_ACKS

    gateway.start()
    expected = {f"e{n}-{i}" for n in acknowledged for i in range(EVENTS_PER_BATCH)}
    wait_for(
        lambda: True if expected <= set(_counts(gateway, source["server_key"])) else None,
        timeout=30,
    )

    # Clients retry what they are unsure of: the same messageIds must not count again.
    with httpx.Client(base_url=gateway.url, auth=(source["write_key"], "")) as client:
        for n in acknowledged:
            assert client.post("/v1/batch", json=_batch(n)).status_code == 200
        marker = {"userId": USER, "event": "marker", "messageId": "marker"}
        assert client.post("/v1/track", json=marker).status_code == 200
    counts = wait_for(
        lambda: c if "marker" in (c := _counts(gateway, source["server_key"])) else None, timeout=30
    )
    assert all(counts[name] == 1 for name in expected)
    assert max(counts.values()) == 1
