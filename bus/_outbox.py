"""The embedded bus: a durable outbox table plus in-process dispatch.

`publish` returns once its rows are committed. Concurrent publishers share one transaction
(group commit), so many small requests cost one fsync. A dispatcher task reads committed rows
in id order, hands them to the handler, and deletes them once the handler returns; after a
crash the rows are still there and are delivered on the next start (at least once; the core
dedupes by message id). A message that keeps failing on its own is moved to the dead-letter
table after `max_attempts`, never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bus._tables import dead_letters, outbox
from bus._transport import BusUnavailable, MessageHandler
from bus.envelope import BusMessage

log = structlog.get_logger("consentgate.bus")

_Publish = tuple[list[dict[str, Any]], asyncio.Future[None]]
_Pending = _Publish | None  # None: stop
_CLOSE_GRACE_SECONDS = 5.0


class OutboxBus:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        max_attempts: int = 5,
        max_group: int = 5000,
    ) -> None:
        self._engine = engine
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._max_attempts = max_attempts
        self._max_group = max_group
        self._pending: asyncio.Queue[_Pending] = asyncio.Queue()
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._handler: MessageHandler | None = None
        self._skip_locked = engine.dialect.name == "postgresql"
        self._closing = False

    async def start(self, handler: MessageHandler | None = None) -> None:
        self._handler = handler
        self._tasks.append(asyncio.create_task(self._commit_loop(), name="outbox-commit"))
        if handler is not None:
            self._wakeup.set()  # deliver what a previous run left behind
            self._tasks.append(asyncio.create_task(self._dispatch_loop(), name="outbox-dispatch"))

    async def publish(self, messages: Sequence[BusMessage]) -> None:
        if not self._tasks or self._closing:
            raise BusUnavailable("the outbox is not started")
        if not messages:
            return
        now = datetime.now(UTC)
        rows = [
            {
                "subject": m.subject,
                "message_id": m.message_id,
                "headers": m.headers,
                "payload": m.payload,
                "created_at": now,
            }
            for m in messages
        ]
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.put_nowait((rows, done))
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
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def pending_count(self) -> int:
        """Messages committed but not yet processed (bus lag)."""
        async with self._engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(outbox))).scalar_one())

    async def _commit_loop(self) -> None:
        stopping = False
        while not stopping:
            group, stopping = await self._take_group()
            if not group:
                return
            rows = [row for item in group for row in item[0]]
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(insert(outbox), rows)
            except asyncio.CancelledError:
                _fail(group, "the outbox is shutting down")
                raise
            except Exception as exc:  # any database failure fails exactly these publishers
                log.error("outbox_commit_failed", error=type(exc).__name__, rows=len(rows))
                _fail(group, "the outbox could not commit")
            else:
                for _, done in group:
                    if not done.done():
                        done.set_result(None)
                self._wakeup.set()

    async def _take_group(
        self,
    ) -> tuple[list[_Publish], bool]:
        """Everything pending now (up to `max_group` rows), and whether close was asked."""
        first = await self._pending.get()
        if first is None:
            return [], True
        group = [first]
        count = len(first[0])
        while count < self._max_group and not self._pending.empty():
            item = self._pending.get_nowait()
            if item is None:
                return group, True
            group.append(item)
            count += len(item[0])
        return group, False

    async def _dispatch_loop(self) -> None:
        assert self._handler is not None
        failures = 0
        while not self._closing:
            if not self._wakeup.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self._poll_interval)
            self._wakeup.clear()
            if self._closing:
                return
            try:
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

    async def _deliver_one_batch(self, handler: MessageHandler) -> int:
        query = select(outbox).order_by(outbox.c.id).limit(self._batch_size)
        if self._skip_locked:
            query = query.with_for_update(skip_locked=True)
        async with self._engine.begin() as conn:
            rows = (await conn.execute(query)).mappings().all()
        if not rows:
            return 0
        messages = [_to_message(row) for row in rows]
        try:
            await handler(messages)
            handled = [row["id"] for row in rows]
        except Exception as exc:
            log.warning("outbox_batch_failed", error=type(exc).__name__, size=len(rows))
            handled = await self._deliver_one_by_one(handler, rows)
        if handled:
            async with self._engine.begin() as conn:
                await conn.execute(delete(outbox).where(outbox.c.id.in_(handled)))
        return len(rows)

    async def _deliver_one_by_one(self, handler: MessageHandler, rows: Sequence[Any]) -> list[int]:
        handled: list[int] = []
        for row in rows:
            try:
                await handler([_to_message(row)])
                handled.append(row["id"])
            except Exception as exc:
                await self._record_failure(row, exc)
        return handled

    async def _record_failure(self, row: Any, exc: Exception) -> None:
        attempts = row["attempts"] + 1
        error = type(exc).__name__
        async with self._engine.begin() as conn:
            if attempts < self._max_attempts:
                await conn.execute(
                    update(outbox)
                    .where(outbox.c.id == row["id"])
                    .values(attempts=attempts, last_error=error)
                )
                return
            await conn.execute(
                insert(dead_letters).values(
                    subject=row["subject"],
                    message_id=row["message_id"],
                    headers=row["headers"],
                    payload=row["payload"],
                    created_at=row["created_at"],
                    failed_at=datetime.now(UTC),
                    attempts=attempts,
                    last_error=error,
                )
            )
            await conn.execute(delete(outbox).where(outbox.c.id == row["id"]))
        log.error("outbox_dead_letter", message_id=row["message_id"], error=error)


def _fail(group: list[_Publish], why: str) -> None:
    for _, done in group:
        if not done.done():
            done.set_exception(BusUnavailable(why))


def _to_message(row: Any) -> BusMessage:
    return BusMessage(
        subject=row["subject"],
        message_id=row["message_id"],
        payload=bytes(row["payload"]),
        headers=dict(row["headers"] or {}),
    )
