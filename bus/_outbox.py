"""The embedded bus: a durable outbox table plus in-process dispatch.

`publish` returns once its messages are committed. A publish is one row (a unit holding all
its messages), and concurrent publishers share one transaction (group commit), so a request
costs one row and a share of one fsync whatever its size. A dispatcher task reads committed
units in id order, hands their messages to the handler, and deletes them once the handler
returns (in the transaction that reads the next units). After a crash the units are still
there and are delivered on the next start: at least once, and the core dedupes by message id.
A message that keeps failing on its own is moved to the dead-letter table after
`max_attempts`, never dropped. A handler that raises `BusUnavailable` says the transport
behind it is down (the JetStream relay): the batch waits and is retried, no attempt counted.

With `keep_delivered_seconds`, handled units are marked instead of deleted (with the
receipt the handler returned for their last message: the JetStream relay returns stream
sequences), and deleted only that long after (the relay keeps a unit until JetStream has
surely synced it); `redeliver(unit_ids)` hands kept units to the handler again.

With `own_units_first` a process hands on the units it committed itself straight from memory,
and reads the table only every `poll_interval` (and at start): for the units of other
processes and of a previous run, those past `orphan_seconds` of age (the relay, where each
live process relays its own), or all of them (the embedded core: the CLI's, a sibling
worker's). Handled units are then deleted in the next group's commit, not in one of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import msgspec
import structlog
from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.engine import Connection

from bus._database import Database, DatabaseUnavailable
from bus._held_units import HeldUnits
from bus._outbox_rows import commit_group, delete_units, deliver_alone, last_receipts
from bus._tables import outbox
from bus._transport import AlsoInCommit, BusUnavailable, DeliveryHandler
from bus.envelope import BusMessage

log = structlog.get_logger("consentgate.bus")

# (the unit's row or None, its messages, the work committed with it, the publisher's future)
_Publish = tuple[dict[str, Any] | None, list[BusMessage], AlsoInCommit | None, asyncio.Future[None]]
_Pending = _Publish | None  # None: stop
_CLOSE_GRACE_SECONDS = 5.0
_UNITS_PER_READ = 64
_IDLE_SETTLE_SECONDS = 0.05
FRESH_LIMIT = 10_000  # messages held in memory for the handler at most (bus._held_units)

_UNIT_BLOBS = select(outbox.c.id, outbox.c.messages).where(
    outbox.c.id.in_(bindparam("unit_ids", expanding=True))
)
_unit_encoder = msgspec.msgpack.Encoder()
_unit_decoder = msgspec.msgpack.Decoder(list[BusMessage])


class OutboxBus:
    def __init__(
        self,
        database: Database,
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        max_attempts: int = 5,
        max_group: int = 1000,
        keep_delivered_seconds: float = 0.0,
        own_units_first: bool = False,
        orphan_seconds: float = 0.0,
    ) -> None:
        """`own_units_first`: hand the units this process committed to the handler straight
        from memory; read the others from the table every `poll_interval`, those older than
        `orphan_seconds` only (the relay, where several processes share the outbox: each
        relays its own units once, and another's only when that one died or lags this far)."""
        self._db = database
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._max_attempts = max_attempts
        self._max_group = max_group
        self._pending: asyncio.Queue[_Pending] = asyncio.Queue()
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._handler: DeliveryHandler | None = None
        self._skip_locked = database.dialect_name == "postgresql"
        self._closing = False
        # units handled (with the receipt of their last message), settled with the next read
        self._delivered: list[tuple[int, int | None]] = []
        self._keep = timedelta(seconds=keep_delivered_seconds)
        self._own_first = own_units_first
        self._orphan = timedelta(seconds=orphan_seconds)
        self._fresh = HeldUnits(FRESH_LIMIT)
        self._take_over_upto = 0  # units up to this id are read whatever their age (redeliver)
        # own units first: the table is read at start, then every poll_interval
        self._read_due = True
        self._next_read = 0.0
        # A read of all the table's units waits for the commit in flight: the units that commit
        # adds are this process's own (in memory once it returns), and the units it deletes are
        # handled. The relay reads only units too old to be in flight: it takes no lock, so
        # that its commits and settles run side by side on PostgreSQL's pool.
        self._table_lock: asyncio.Lock | contextlib.nullcontext[None] = (
            contextlib.nullcontext() if orphan_seconds else asyncio.Lock()
        )

    async def start(self, handler: DeliveryHandler | None = None) -> None:
        self._handler = handler
        self._tasks.append(asyncio.create_task(self._commit_loop(), name="outbox-commit"))
        if handler is not None:
            self._wakeup.set()  # deliver what a previous run left behind
            self._tasks.append(asyncio.create_task(self._dispatch_loop(), name="outbox-dispatch"))

    async def publish(
        self, messages: Sequence[BusMessage], also: AlsoInCommit | None = None
    ) -> None:
        """Return once `messages` are durable. `also(conn)` runs in the same transaction
        (a consent write: its rows, its audit entry and its message commit together, and
        share the group commit with concurrent events); if it raises, nothing of the group
        commits and every publisher of it gets `BusUnavailable`."""
        if not self._tasks or self._closing or self._tasks[0].done():
            raise BusUnavailable("the outbox is not started")
        if not messages and also is None:
            return
        unit = list(messages)
        row = (
            {
                "messages": _unit_encoder.encode(unit),
                "message_count": len(messages),
                "created_at": datetime.now(UTC),
            }
            if unit
            else None
        )
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.put_nowait((row, unit, also, done))
        # Shielded: a client that disconnects must not cancel a commit others wait on.
        await asyncio.shield(done)

    async def ping(self) -> None:
        if not self._tasks or self._tasks[0].done():
            raise BusUnavailable("the outbox writer is not running")

    async def close(self) -> None:
        """Commit what is pending, let the current delivery finish, then stop."""
        self._closing = True
        self._pending.put_nowait(None)
        self._wakeup.set()
        tasks, self._tasks = self._tasks, []
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=_CLOSE_GRACE_SECONDS)
            for task in late:
                task.cancel()
            if late:  # bounded: a task that ignores its cancellation must not hold a shutdown
                await asyncio.wait(late, timeout=_CLOSE_GRACE_SECONDS)
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        if self._delivered:
            delivered, self._delivered = self._delivered, []
            await self._db.transaction(lambda conn: self._settle(conn, delivered))

    async def pending_count(self) -> int:
        """Messages committed but not yet processed (bus lag)."""
        query = select(func.coalesce(func.sum(outbox.c.message_count), 0))
        query = query.where(outbox.c.relayed_at.is_(None))
        handled = [unit_id for unit_id, _ in self._delivered]  # their deletion is pending
        if handled:
            query = query.where(outbox.c.id.not_in(handled))
        return int(await self._db.read(lambda conn: conn.execute(query).scalar_one()))

    async def kept(self) -> list[tuple[int, int | None]]:
        """The kept units (id, receipt of the last message), latest receipt first (those
        without one first of all); the units handled and not yet marked are marked first."""
        delivered, self._delivered = self._delivered, []
        query = select(outbox.c.id, outbox.c.relayed_seq).where(outbox.c.relayed_at.is_not(None))
        query = query.order_by(outbox.c.relayed_seq.desc().nulls_first(), outbox.c.id.desc())

        def read(conn: Connection) -> list[tuple[int, int | None]]:
            self._settle(conn, delivered)
            return [(row.id, row.relayed_seq) for row in conn.execute(query)]

        return await self._db.transaction(read)

    async def unit(self, unit_id: int) -> list[BusMessage]:
        """A unit's messages (empty once it is gone)."""
        query = select(outbox.c.messages).where(outbox.c.id == unit_id)
        blob = await self._db.read(lambda conn: conn.execute(query).scalar_one_or_none())
        return [] if blob is None else _unit_decoder.decode(blob)

    async def redeliver(self, unit_ids: Sequence[int]) -> int:
        """Hand these kept units to the handler again (the transport behind it lost them);
        how many were still there."""
        if not unit_ids:
            return 0
        statement = update(outbox).where(outbox.c.id.in_(list(unit_ids)))
        statement = statement.where(outbox.c.relayed_at.is_not(None))
        statement = statement.values(relayed_at=None, relayed_seq=None)
        count = await self._db.transaction(lambda conn: conn.execute(statement).rowcount)
        self._take_over_upto = max(self._take_over_upto, *unit_ids)
        self._read_due = True
        self._wakeup.set()
        return int(count or 0)

    async def _commit_loop(self) -> None:
        stopping = False
        while not stopping:
            group, stopping = await self._take_group()
            if not group:
                return
            rows = [row for row, _, _, _ in group if row is not None]
            also = [work for _, _, work, _ in group if work is not None]
            own = self._own_first and self._handler is not None
            async with self._table_lock:
                handled: list[tuple[int, int | None]] = []
                if not self._keep:  # the units handled since are deleted in this commit
                    handled, self._delivered = self._delivered, []
                work = partial(
                    commit_group,
                    rows=rows,
                    returning=own,
                    also=also,
                    handled=[unit_id for unit_id, _ in handled],
                )
                try:
                    unit_ids = await self._db.transaction(work)
                except asyncio.CancelledError:
                    _fail(group, "the outbox is shutting down")
                    raise
                except Exception as exc:  # any database failure fails exactly these publishers
                    self._delivered[:0] = handled
                    log.error("outbox_commit_failed", error=type(exc).__name__, rows=len(rows))
                    _fail(group, "the outbox could not commit")
                    continue
                units = [messages for row, messages, _, _ in group if row is not None]
                if own and unit_ids and not self._fresh.hold(unit_ids, units):
                    # the handler lags: read the table, whatever the units' age (the relay
                    # otherwise reads only other processes' orphans)
                    self._read_due = True
                    self._take_over_upto = max(self._take_over_upto, *unit_ids)
            for _, _, _, done in group:
                if not done.done():
                    done.set_result(None)
            self._wakeup.set()

    async def _take_group(
        self,
    ) -> tuple[list[_Publish], bool]:
        """Everything pending now (up to `max_group` publishes), and whether close was asked."""
        first = await self._pending.get()
        if first is None:
            return [], True
        group = [first]
        while len(group) < self._max_group and not self._pending.empty():
            item = self._pending.get_nowait()
            if item is None:
                return group, True
            group.append(item)
        return group, False

    async def _dispatch_loop(self) -> None:
        if self._handler is None:
            raise RuntimeError("the dispatcher starts only with a handler (start())")
        failures = 0
        while not self._closing:
            idle = False
            if not self._wakeup.is_set():
                # handled units are deleted with the next group's commit (the relay marks them
                # every _UNITS_PER_READ), or after this long when no commit comes
                settle_soon = bool(self._delivered) and self._own_first
                wait = _IDLE_SETTLE_SECONDS if settle_soon else self._poll_interval
                try:
                    await asyncio.wait_for(self._wakeup.wait(), wait)
                except TimeoutError:
                    idle = settle_soon
            self._wakeup.clear()
            if self._closing:
                return
            now = time.monotonic()
            if now >= self._next_read:  # by the clock: under load no wait ever times out
                self._read_due = True
                self._next_read = now + self._poll_interval
            try:
                if idle:
                    await self._settle_handled()
                delivered = await self._deliver_one_batch(self._handler)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                log.error("outbox_dispatch_failed", error=type(exc).__name__, failures=failures)
                await asyncio.sleep(min(0.05 * 2**failures, 5.0))
                self._wakeup.set()
                continue
            if delivered:
                self._wakeup.set()  # there may be more behind this batch

    async def _deliver_one_batch(self, handler: DeliveryHandler) -> int:
        if self._own_first and not self._read_due:
            if not self._fresh:
                return 0
            units = self._fresh.take(self._batch_size)
            if len(self._delivered) >= _UNITS_PER_READ:  # no commit took them: settle now
                await self._settle_handled()
        else:
            units = await self._read_units()
            if not units:
                return 1 if self._fresh else 0  # 1: go on with the units held in memory
        if not units:
            return 0
        messages = [message for _, unit in units for message in unit]
        try:
            receipts = await handler(messages)
            self._delivered.extend(last_receipts(units, receipts))
        except (BusUnavailable, DatabaseUnavailable):
            if self._own_first:
                self._fresh.put_back(units)  # first again once the transport is back
            raise  # the transport or the database is down: nothing failed on its own
        except Exception as exc:
            log.warning("outbox_batch_failed", error=type(exc).__name__, size=len(messages))
            self._delivered += await deliver_alone(self._db, handler, units, self._max_attempts)
        return len(messages)

    async def _settle_handled(self) -> None:
        async with self._table_lock:
            delivered, self._delivered = self._delivered, []
            try:
                await self._db.transaction(lambda conn: self._settle(conn, delivered))
            except Exception:
                self._delivered[:0] = delivered
                raise

    async def _read_units(self) -> list[tuple[int, list[BusMessage]]]:
        """Delete the units already handled, then read the next ones, in one transaction
        (not those this process holds in memory)."""
        async with self._table_lock:
            delivered, self._delivered = self._delivered, []
            held = self._fresh.ids()
            rows = await self._db.transaction(lambda conn: self._next_units(conn, delivered, held))
            if not rows:  # caught up with the table (under the lock: no commit in between)
                self._read_due = self._fresh.lagging = False
        return [(unit_id, _unit_decoder.decode(blob)) for unit_id, blob in rows]

    def _settle(self, conn: Connection, delivered: list[tuple[int, int | None]]) -> None:
        """Delete the handled units, or mark them and delete those kept long enough."""
        if not self._keep:
            delete_units(conn, [unit_id for unit_id, _ in delivered])
            return
        now = datetime.now(UTC)
        if delivered:
            mark = update(outbox).where(outbox.c.id == bindparam("unit_id"))
            conn.execute(
                mark.values(relayed_at=now, relayed_seq=bindparam("receipt")),
                [{"unit_id": unit_id, "receipt": receipt} for unit_id, receipt in delivered],
            )
        conn.execute(delete(outbox).where(outbox.c.relayed_at < now - self._keep))

    def _next_units(
        self, conn: Connection, delivered: list[tuple[int, int | None]], held: set[int]
    ) -> list[tuple[int, bytes]]:
        self._settle(conn, delivered)
        query = select(outbox.c.id, outbox.c.message_count)
        query = query.where(outbox.c.relayed_at.is_(None))
        if self._own_first and self._orphan:
            orphaned = datetime.now(UTC) - self._orphan
            query = query.where(
                or_(outbox.c.created_at < orphaned, outbox.c.id <= self._take_over_upto)
            )
        query = query.order_by(outbox.c.id).limit(_UNITS_PER_READ + len(held))
        if self._skip_locked:
            query = query.with_for_update(skip_locked=True)
        chosen: list[int] = []
        taken = 0
        for unit_id, count in conn.execute(query):
            if unit_id in held:  # this process's own, in memory
                continue
            if len(chosen) == _UNITS_PER_READ or (chosen and taken + count > self._batch_size):
                break
            chosen.append(unit_id)
            taken += count
        if not chosen:
            return []
        blobs = {row.id: row.messages for row in conn.execute(_UNIT_BLOBS, {"unit_ids": chosen})}
        return [(unit_id, blobs[unit_id]) for unit_id in chosen]


def _fail(group: list[_Publish], why: str) -> None:
    for _, _, _, done in group:
        if not done.done():
            done.set_exception(BusUnavailable(why))
