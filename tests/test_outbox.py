"""The embedded bus: durable on return, delivered after a restart, poison moved aside."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

import bus._outbox as bus_outbox
from bus import BusMessage, EventEnvelope, OutboxBus, decode_payload, encode_event
from bus._tables import dead_letters, outbox
from gateway.database import open_database
from gateway.settings import Settings


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs on both databases (tests/conftest.py, `shaped`): the outbox is the
    embedded bus and, on PostgreSQL, what the JetStream relay publishes from."""
    return shaped


def _message(n: int) -> BusMessage:
    now = datetime.now(UTC)
    envelope = EventEnvelope(
        message_id=f"m{n}",
        source_id="src",
        type="track",
        subject="p1_s",
        anonymous=None,
        received_at=now,
        timestamp=now,
        event="e",
    )
    return encode_event(envelope, {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"})


async def _count(settings: Settings, table: object) -> int:
    engine = open_database(settings.database_url)
    try:
        query = select(func.count()).select_from(table)  # type: ignore[arg-type]
        return int(await engine.read(lambda conn: conn.execute(query).scalar_one()))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("own_units_first", [False, True])
async def test_published_messages_survive_until_a_consumer_takes_them(
    migrated: Settings, own_units_first: bool
) -> None:
    """Messages published with no consumer are delivered, in order, by the next bus started
    (one that hands on its own units from memory reads a previous run's from the table)."""
    engine = open_database(migrated.database_url)
    writer = OutboxBus(engine)
    await writer.start()
    await asyncio.gather(*(writer.publish([_message(n)]) for n in range(50)))
    await writer.close()
    assert await _count(migrated, outbox) == 50

    received: list[str] = []
    done = asyncio.Event()

    async def handler(messages: Sequence[BusMessage]) -> None:
        received.extend(m.message_id for m in messages)
        assert messages[0].headers["traceparent"].startswith("00-")
        if len(received) >= 50:
            done.set()

    reader = OutboxBus(engine, batch_size=7, own_units_first=own_units_first)
    await reader.start(handler)
    await asyncio.wait_for(done.wait(), 10)
    await reader.close()
    await engine.dispose()
    assert sorted(received, key=lambda m: int(m[1:])) == [f"m{n}" for n in range(50)]
    assert await _count(migrated, outbox) == 0


async def test_own_units_from_memory_and_other_processes_from_the_table_each_once(
    migrated: Settings,
) -> None:
    """The embedded bus hands on the units it committed itself from memory, and reads those
    another process committed (the CLI, a gateway whose core runs in a child) from the table
    at its next poll: every message once, none read back twice, the table emptied."""
    engine = open_database(migrated.database_url)
    received: list[str] = []

    async def handler(messages: Sequence[BusMessage]) -> None:
        received.extend(m.message_id for m in messages)
        await asyncio.sleep(0.001)  # a core takes a while: publishes pile up meanwhile

    own = OutboxBus(engine, batch_size=10, poll_interval=0.05, own_units_first=True)
    other = OutboxBus(engine)  # no handler: it only commits
    await own.start(handler)
    await other.start()
    try:
        for round_ in range(5):
            await asyncio.gather(
                *(own.publish([_message(round_ * 100 + n)]) for n in range(40)),
                *(other.publish([_message(round_ * 100 + 50 + n)]) for n in range(10)),
            )
        expected = sorted(f"m{r * 100 + n}" for r in range(5) for n in (*range(40), *range(50, 60)))
        for _ in range(500):
            if len(received) >= len(expected) and await _count(migrated, outbox) == 0:
                break
            await asyncio.sleep(0.02)
    finally:
        await other.close()
        await own.close()
        await engine.dispose()
    assert sorted(received) == expected  # each once
    assert await _count(migrated, outbox) == 0


async def test_a_lagging_handler_costs_no_memory_and_misses_nothing(
    migrated: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the handler falls behind, the units past the in-memory limit stay in the table
    only (a backlog of a million events must not be held in memory), and are handed on from
    there in order: every message once."""
    monkeypatch.setattr(bus_outbox, "FRESH_LIMIT", 20)
    engine = open_database(migrated.database_url)
    received: list[str] = []

    async def slow(messages: Sequence[BusMessage]) -> None:
        received.extend(m.message_id for m in messages)
        await asyncio.sleep(0.005)

    bus = OutboxBus(engine, batch_size=5, poll_interval=0.05, own_units_first=True)
    await bus.start(slow)
    held: list[int] = []
    try:
        for round_ in range(10):
            await asyncio.gather(*(bus.publish([_message(round_ * 100 + n)]) for n in range(30)))
            held.append(bus._fresh.messages)  # private, on purpose: the bound is under test
            # work committed with no message (a unit of none) while it lags
            await asyncio.wait_for(bus.publish([], also=lambda conn: None), 5)
        for _ in range(500):
            if len(received) >= 300 and await _count(migrated, outbox) == 0:
                break
            await asyncio.sleep(0.02)
    finally:
        await bus.close()
        await engine.dispose()
    assert max(held) <= 20
    assert sorted(received) == sorted(f"m{r * 100 + n}" for r in range(10) for n in range(30))


async def test_a_failing_handler_gets_the_messages_again(migrated: Settings) -> None:
    """A handler that raises is retried; nothing is removed before it succeeds."""
    engine = open_database(migrated.database_url)
    attempts = 0
    done = asyncio.Event()

    async def flaky(messages: Sequence[BusMessage]) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise RuntimeError("core down")
        assert isinstance(decode_payload(messages[0]), EventEnvelope)
        done.set()

    bus = OutboxBus(engine)
    await bus.start(flaky)
    await bus.publish([_message(1)])
    await asyncio.wait_for(done.wait(), 10)
    await bus.close()
    await engine.dispose()
    assert await _count(migrated, outbox) == 0


async def test_a_poison_message_goes_to_dead_letters_not_away(migrated: Settings) -> None:
    """A message that always fails is dead-lettered; the others of its publish go through."""
    engine = open_database(migrated.database_url)
    delivered: list[str] = []

    async def handler(messages: Sequence[BusMessage]) -> None:
        if any(m.message_id == "m13" for m in messages):
            raise ValueError("poison")
        delivered.extend(m.message_id for m in messages)

    bus = OutboxBus(engine, max_attempts=2)
    await bus.start(handler)
    await bus.publish([_message(n) for n in range(10, 16)])
    for _ in range(500):
        if await _count(migrated, dead_letters) == 1 and await _count(migrated, outbox) == 0:
            break
        await asyncio.sleep(0.02)
    await bus.close()
    await engine.dispose()
    assert set(delivered) == {"m10", "m11", "m12", "m14", "m15"}
    assert await _count(migrated, dead_letters) == 1


async def test_publish_before_start_is_unavailable(migrated: Settings) -> None:
    """Publishing on a bus that is not started raises BusUnavailable (no silent loss)."""
    from bus import BusUnavailable

    engine = open_database(migrated.database_url)
    try:
        bus = OutboxBus(engine)
        try:
            await bus.publish([_message(1)])
        except BusUnavailable:
            pass
        else:
            raise AssertionError("publish succeeded on a stopped bus")
    finally:
        await engine.dispose()


def test_a_shutdown_step_that_ignores_its_cancellation_does_not_hold_the_shutdown() -> None:
    """`finish_within` gives up on work past its bound even when the work swallows the
    cancellation (where `asyncio.wait_for` would wait for it forever)."""
    from bus import finish_within

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue  # what a library's close can do

    async def quick() -> str:
        return "closed"

    async def scenario() -> tuple[bool, bool, float]:
        started = asyncio.get_running_loop().time()
        stuck = await finish_within(stubborn(), 0.2)
        finished = await finish_within(quick(), 0.2)
        return stuck, finished, asyncio.get_running_loop().time() - started

    stuck, finished, took = _run_leaving_stubborn(scenario)
    assert stuck is False
    assert finished is True
    assert took < 2


def _run_leaving_stubborn(scenario: Any) -> Any:
    """asyncio.run cancels what is left at its end and waits for it: the stubborn task would
    hold it, so the loop is closed by hand."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(scenario())
    finally:
        loop.close()
