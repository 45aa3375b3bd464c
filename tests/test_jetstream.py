"""The NATS JetStream bus (real NATS): the outbox relayed with Nats-Msg-Id and headers, kept
until NATS has surely synced it, one durable consumer shared by core processes, dead letters
after bounded attempts, and control messages fanned out to every process."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from sqlalchemy import insert

from bus import BusMessage, BusUnavailable, Database, DatabaseUnavailable, JetStreamBus
from bus._tables import outbox
from gateway.database import open_database
from gateway.settings import Settings
from tests.helpers import execute, sqlite_rows


def _message(number: int, subject: str = "events") -> BusMessage:
    return BusMessage(
        subject=subject,
        message_id=f"m{number}",
        payload=b'{"n": %d}' % number,
        headers={"traceparent": f"00-{number:032x}-{number:016x}-01"},
    )


def _bus(url: str, stream: str, database: Database, **options: float) -> JetStreamBus:
    return JetStreamBus(
        url,
        database,
        stream=stream,
        prefix=stream.lower(),
        **options,  # type: ignore[arg-type]
    )


async def _until(condition: object, seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


def test_published_messages_reach_one_of_the_consumers_with_their_ids_and_headers(
    migrated: Settings, nats_stream: tuple[str, str]
) -> None:
    """Two core processes share the durable consumer: every message is handled, by one."""
    url, stream = nats_stream
    seen: dict[str, list[BusMessage]] = {"a": [], "b": []}

    def handler(name: str) -> Callable[[Sequence[BusMessage]], Awaitable[None]]:
        async def handle(messages: Sequence[BusMessage]) -> None:
            seen[name].extend(messages)

        return handle

    async def scenario() -> None:
        database = open_database(migrated.database_url)
        gateway = _bus(url, stream, database)
        core_a, core_b = _bus(url, stream, database), _bus(url, stream, database)
        await gateway.start()
        await core_a.start(handler("a"))
        await core_b.start(handler("b"))
        try:
            for first in range(0, 200, 50):
                await gateway.publish([_message(n) for n in range(first, first + 50)])
            await _until(lambda: len(seen["a"]) + len(seen["b"]) >= 200)
        finally:
            for bus in (gateway, core_a, core_b):
                await bus.close()
            await database.dispose()

    asyncio.run(scenario())
    everything = seen["a"] + seen["b"]
    assert sorted(m.message_id for m in everything) == sorted(f"m{n}" for n in range(200))
    first = next(m for m in everything if m.message_id == "m7")
    assert first.subject == "events"
    assert first.headers == {"traceparent": f"00-{7:032x}-{7:016x}-01"}
    assert first.payload == b'{"n": 7}'


def _outbox_receipts(settings: Settings) -> list[tuple[int, object, int | None]]:
    with sqlite3.connect(settings.database_url.removeprefix("sqlite:///")) as conn:
        return conn.execute(
            "SELECT message_count, relayed_at, relayed_seq FROM bus_outbox ORDER BY id"
        ).fetchall()


async def _stream_messages(url: str, stream: str) -> int:
    import nats

    connection = await nats.connect(url)
    try:
        return int((await connection.jetstream().stream_info(stream)).state.messages)
    finally:
        await connection.close()


async def _lose_the_stream(url: str, stream: str) -> None:
    """What a NATS crash before its fsync does to the stream: its messages (and with them its
    duplicate window) are gone."""
    import nats

    connection = await nats.connect(url)
    try:
        js = connection.jetstream()
        config = (await js.stream_info(stream)).config
        await js.delete_stream(stream)
        await js.add_stream(config)
    finally:
        await connection.close()


def test_relayed_units_stay_with_their_receipts_and_only_what_the_stream_lost_goes_again(
    migrated: Settings, nats_stream: tuple[str, str]
) -> None:
    """A unit JetStream acked stays in the outbox for `sync_seconds` (NATS fsyncs every two
    minutes by default: a crash could lose what it acked), with the stream sequence of its
    last message. Relaying the lost units again (what a start does) relays
    nothing while the stream holds them, and everything once the stream lost them; after a
    reconnection, every kept unit goes again."""
    url, stream = nats_stream

    async def scenario() -> tuple[list[tuple[int, object, int | None]], int, int, int, int]:
        database = open_database(migrated.database_url)
        bus = _bus(url, stream, database, sync_seconds=120)
        await bus.start()
        try:
            for first in (0, 5):
                await bus.publish([_message(n) for n in range(first, first + 5)])
            await _until(lambda: all(row[1] for row in _outbox_receipts(migrated)), 5)
            kept = _outbox_receipts(migrated)
            intact = await bus.relay_lost()
            await _lose_the_stream(url, stream)
            lost = await bus.relay_lost()
            await _until(lambda: all(row[1] for row in _outbox_receipts(migrated)), 5)
            stored = await _stream_messages(url, stream)
            everything = await bus.relay_kept_again()
            return kept, intact, lost, stored, everything
        finally:
            await bus.close()
            await database.dispose()

    kept, intact, lost, stored, everything = asyncio.run(scenario())
    assert [(count, seq) for count, _, seq in kept] == [(5, 5), (5, 10)]
    assert all(relayed is not None for _, relayed, _ in kept)
    assert intact == 0  # nothing published twice while the stream holds it
    assert lost == 2
    assert stored == 10  # relayed again, once each
    assert everything == 2  # a reconnection relays all it kept: it cannot tell what was lost


def test_a_message_that_keeps_failing_is_dead_lettered_and_the_rest_flow(
    migrated: Settings, nats_stream: tuple[str, str]
) -> None:
    url, stream = nats_stream
    applied: list[str] = []

    async def handle(messages: Sequence[BusMessage]) -> None:
        if any(m.message_id == "m3" for m in messages):
            raise ValueError("cannot apply m3")
        applied.extend(m.message_id for m in messages)

    def dead() -> list[tuple[str, int]]:
        with sqlite3.connect(migrated.database_url.removeprefix("sqlite:///")) as conn:
            return conn.execute("SELECT message_id, attempts FROM bus_dead_letters").fetchall()

    async def scenario() -> None:
        database = open_database(migrated.database_url)
        bus = _bus(url, stream, database, max_attempts=3)
        await bus.start(handle)
        try:
            await bus.publish([_message(n) for n in range(6)])
            await _until(lambda: bool(dead()), 15)
            await _until(lambda: len(applied) >= 5)
        finally:
            await bus.close()
            await database.dispose()

    asyncio.run(scenario())
    assert dead() == [("m3", 3)]
    assert sorted(applied) == ["m0", "m1", "m2", "m4", "m5"]


def test_each_process_relays_its_own_units_and_takes_over_only_the_orphaned(
    migrated: Settings, nats_stream: tuple[str, str]
) -> None:
    """Processes sharing the outbox relay the units they committed themselves; a unit another
    process committed is left to it unless it is older than the orphan age (that process
    died before relaying it)."""
    url, stream = nats_stream
    now = datetime.now(UTC)

    def unit(number: int, age_seconds: float) -> dict[str, object]:
        return {
            "messages": msgspec.msgpack.encode([_message(number)]),
            "message_count": 1,
            "created_at": now - timedelta(seconds=age_seconds),
        }

    # what two other processes left: one died 30 s ago, one is alive and relaying its own
    execute(migrated.database_url, insert(outbox).values([unit(1, 30), unit(2, 0)]))

    async def scenario() -> list[tuple[str, int | None]]:
        database = open_database(migrated.database_url)
        bus = _bus(url, stream, database, sync_seconds=120)
        await bus.start()
        try:
            await bus.publish([_message(3)])
            await _until(lambda: len(_relayed(migrated)) == 2, 5)
            await asyncio.sleep(1.0)  # a poll of the table or two: unit 2 stays its owner's
            return _relayed(migrated)
        finally:
            await bus.close()
            await database.dispose()

    relayed = asyncio.run(scenario())
    assert sorted(ids for ids, _ in relayed) == ["m1", "m3"]


def _relayed(settings: Settings) -> list[tuple[str, int | None]]:
    """(the message ids, the receipt) of every unit relayed so far."""
    rows = sqlite_rows(
        settings.database_url,
        "SELECT messages, relayed_seq FROM bus_outbox WHERE relayed_at IS NOT NULL",
    )
    decoder = msgspec.msgpack.Decoder(list[BusMessage])
    return [(",".join(m.message_id for m in decoder.decode(blob)), seq) for blob, seq in rows]


def test_control_messages_reach_every_process_that_listens(
    migrated: Settings, nats_stream: tuple[str, str]
) -> None:
    """A consent change published by one gateway replica is heard by every other one."""
    url, stream = nats_stream
    heard: dict[str, list[str]] = {"a": [], "b": []}

    def listener(name: str) -> Callable[[BusMessage], Awaitable[None]]:
        async def listen(message: BusMessage) -> None:
            heard[name].append(message.message_id)

        return listen

    async def scenario() -> None:
        database = open_database(migrated.database_url)
        replicas = [_bus(url, stream, database) for _ in range(3)]
        replicas[0].subscribe_control(listener("a"))
        replicas[1].subscribe_control(listener("b"))
        for replica in replicas:
            await replica.start()
        try:
            await replicas[2].publish([_message(1, "control"), _message(2, "events")])
            await _until(lambda: heard["a"] and heard["b"])
        finally:
            for replica in replicas:
                await replica.close()
            await database.dispose()

    asyncio.run(scenario())
    assert heard == {"a": ["m1"], "b": ["m1"]}


def test_a_database_outage_dead_letters_nothing(
    migrated: Settings, nats_stream: tuple[str, str]
) -> None:
    """Messages the core cannot apply because the database is down are not their fault: they
    come again, however many times, and none is dead-lettered."""
    url, stream = nats_stream
    outage = {"left": 6}
    applied: list[str] = []

    async def handle(messages: Sequence[BusMessage]) -> None:
        if outage["left"] > 0:
            outage["left"] -= 1
            raise DatabaseUnavailable("down")
        applied.extend(m.message_id for m in messages)

    async def scenario() -> None:
        database = open_database(migrated.database_url)
        # a nak the server never sees falls back to redelivery after ack_wait: short here
        bus = _bus(url, stream, database, max_attempts=2, ack_wait_seconds=5)
        await bus.start(handle)
        try:
            await bus.publish([_message(n) for n in range(3)])
            await _until(lambda: len(applied) >= 3, 60)
        finally:
            await bus.close()
            await database.dispose()

    asyncio.run(scenario())
    assert sorted(applied) == ["m0", "m1", "m2"]
    with sqlite3.connect(migrated.database_url.removeprefix("sqlite:///")) as conn:
        assert conn.execute("SELECT count(*) FROM bus_dead_letters").fetchone()[0] == 0


def test_a_stream_that_cannot_be_created_fails_the_start_clearly_and_closes_the_connection(
    migrated: Settings, nats_stream: tuple[str, str]
) -> None:
    """A stream whose subjects another stream already holds cannot be created: `start` raises
    BusUnavailable naming the server and the reason, and leaves no connection open."""
    url, taken = nats_stream

    async def scenario() -> None:
        import nats

        connection = await nats.connect(url)
        await connection.jetstream().add_stream(name=taken, subjects=[f"{taken.lower()}.>"])
        await connection.close()
        database = open_database(migrated.database_url)
        bus = JetStreamBus(url, database, stream=taken + "X", prefix=taken.lower())
        try:
            with pytest.raises(BusUnavailable, match=r"JetStream at nats://.*overlap"):
                await bus.start()
            assert bus._nc.is_closed
        finally:
            await database.dispose()

    asyncio.run(scenario())
