"""The scale-out bus: the durable outbox in the database, relayed to NATS JetStream.

Why a relay, not a publish straight to JetStream: JetStream acknowledges a write before it
reaches the disk unless the server syncs every write (`sync_interval: always`, a server
setting no client can check) or the stream is replicated; the 2025 Jepsen analysis of NATS
lost acknowledged writes exactly so. Here a `200` still means what it means in the embedded
shape: the events are committed in the database (PostgreSQL in production). The relay then
publishes them to JetStream, `Nats-Msg-Id` = messageId and the `traceparent` in the headers,
pipelined, and waits for every ack. A relayed unit stays in the outbox for
`sync_seconds` (NATS's own sync interval, 2 minutes by default) and is relayed again after
any reconnection to NATS, so a NATS crash that loses unsynced writes loses nothing: the core
dedupes by messageId for 24 hours in the database. While NATS is down the gateway keeps
accepting events (they wait in the outbox) and `/readyz` says so.

Consumers (the core, in `serve` or in `consentgate core` processes) share one durable pull
consumer: explicit acks, redelivery with backoff, and after `max_attempts` deliveries a
message that fails on its own goes to the dead-letter table (counted in `/metrics`), never
dropped. Control messages also fan out to every process that asks (`subscribe_control`), each
with its own ephemeral consumer of new messages: consent changes reach every gateway replica.
What a core commit changed (profiles touched, segment memberships) is announced on plain NATS
(`announce_changes`, `subscribe_changes`): gateways forget their cached views of those
profiles and tell their evaluation streams, as the in-process core does in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from sqlalchemy.engine import Connection

from bus._database import Database, DatabaseUnavailable
from bus._dead_letters import insert_dead_letters
from bus._jetstream_setup import CONSUMER, ensure_consumer, ensure_stream
from bus._notices import ChangeListener, ChangeNotices
from bus._outbox import OutboxBus
from bus._transport import AlsoInCommit, BusUnavailable, MessageHandler, finish_within
from bus.envelope import CONTROL_SUBJECT, BusMessage

log = structlog.get_logger("consentgate.bus")

MSG_ID = "Nats-Msg-Id"
STREAM = "CONSENTGATE"
PREFIX = "consentgate"
# relaying its own outbox units, a process takes over another's only past this age (that
# process died, or lags this far behind)
ORPHAN_SECONDS = 10.0
_PUBLISH_TIMEOUT_SECONDS = 5.0
_FETCH_WAIT_SECONDS = 1.0
_CLOSE_TIMEOUT_SECONDS = 5.0

ControlListener = Callable[[BusMessage], Awaitable[None]]


class JetStreamBus:
    def __init__(
        self,
        url: str,
        database: Database,
        *,
        batch_size: int = 500,
        max_attempts: int = 5,
        ack_wait_seconds: float = 30.0,
        sync_seconds: float = 120.0,
        stream: str = STREAM,
        prefix: str = PREFIX,
    ) -> None:
        self._url = url
        self._db = database
        self._batch_size = batch_size
        self._max_attempts = max_attempts
        self._ack_wait = ack_wait_seconds
        self._stream = stream
        self._prefix = prefix
        self._outbox = OutboxBus(
            database,
            batch_size=batch_size,
            keep_delivered_seconds=sync_seconds,
            own_units_first=True,
            orphan_seconds=ORPHAN_SECONDS,
        )
        self._nc: Any = None
        self._js: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._listeners: list[ControlListener] = []
        self._notices = ChangeNotices(prefix)
        self._fetch_failures = 0

    async def start(self, handler: MessageHandler | None = None) -> None:
        import nats

        try:
            self._nc = await nats.connect(
                self._url,
                name="consentgate",
                connect_timeout=2,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                reconnected_cb=self._reconnected,
                disconnected_cb=self._disconnected,
                error_cb=self._error,
            )
        except Exception as exc:  # nats raises several kinds for an unreachable server
            raise BusUnavailable(f"cannot reach NATS at {self._url}: {exc}") from exc
        self._js = self._nc.jetstream()
        try:
            await ensure_stream(self._js, self._stream, self._prefix)
            await ensure_consumer(
                self._js,
                self._stream,
                self._prefix,
                ack_wait=self._ack_wait,
                max_ack_pending=self._batch_size * 20,
            )
        except Exception as exc:
            await self._close_connection()  # else its socket outlives the failed start
            raise BusUnavailable(f"JetStream at {self._url}: {exc}") from exc
        await self.relay_lost()  # a NATS crash while we were down may have lost some
        await self._outbox.start(self._relay)
        if handler is not None:
            subscription = await self._consumer()
            self._tasks.append(
                asyncio.create_task(self._consume(subscription, handler), name="jetstream-core")
            )
        if self._listeners:
            await self._fan_out()
        await self._notices.start(self._nc)

    def subscribe_control(self, listener: ControlListener) -> None:
        """Hear every control message published from now on, by any process (call before
        `start`)."""
        self._listeners.append(listener)

    def subscribe_changes(self, listener: ChangeListener) -> None:
        """Hear what core processes say they changed (call before `start`)."""
        self._notices.subscribe(listener)

    async def announce_changes(self, payload: bytes) -> None:
        """Tell every process what a commit changed (`bus._notices`)."""
        await self._notices.announce(payload)

    async def publish(
        self, messages: Sequence[BusMessage], also: AlsoInCommit | None = None
    ) -> None:
        await self._outbox.publish(messages, also)

    async def ping(self) -> None:
        await self._outbox.ping()
        if self._nc is None or not self._nc.is_connected:
            raise BusUnavailable(f"NATS at {self._url} is unreachable (events wait in the outbox)")

    async def pending_count(self) -> int:
        """Events not yet applied: waiting in the outbox, and in JetStream for the core."""
        waiting = await self._outbox.pending_count()
        with contextlib.suppress(Exception):
            info = await self._js.consumer_info(self._stream, CONSUMER)
            waiting += int(info.num_pending) + int(info.num_ack_pending)
        return waiting

    async def close(self) -> None:
        """Let the consumer finish the batch it is applying (cancelled mid-transaction, a
        database connection can be left in a state its pool then waits on at dispose), then
        stop; past `_CLOSE_TIMEOUT_SECONDS` it is cancelled (what it held is redelivered)."""
        self._closing = True
        tasks, self._tasks = self._tasks, []
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=_CLOSE_TIMEOUT_SECONDS)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=_CLOSE_TIMEOUT_SECONDS)
        await self._outbox.close()
        await self._close_connection()

    async def _close_connection(self) -> None:
        if self._nc is not None:
            # close, not drain: what was fetched and not acked is redelivered (we ack only
            # after applying), and a drain waits on the fan-out's ordered consumer forever
            with contextlib.suppress(Exception):
                if not await finish_within(self._nc.close(), _CLOSE_TIMEOUT_SECONDS):
                    log.warning("nats_close_timed_out", seconds=_CLOSE_TIMEOUT_SECONDS)

    def _subject(self, message: BusMessage) -> str:
        return f"{self._prefix}.{message.subject}"

    async def _consumer(self) -> Any:
        return await self._js.pull_subscribe_bind(durable=CONSUMER, stream=self._stream)

    async def _relay(self, messages: Sequence[BusMessage]) -> list[int]:
        """Publish a batch from the outbox, pipelined; once JetStream acked all, their stream
        sequences (a duplicate's is its original's)."""
        if self._nc is None or not self._nc.is_connected:
            raise BusUnavailable("NATS is unreachable")
        try:
            acks = await asyncio.gather(
                *(
                    self._js.publish(
                        self._subject(message),
                        message.payload,
                        timeout=_PUBLISH_TIMEOUT_SECONDS,
                        headers={**message.headers, MSG_ID: message.message_id},
                    )
                    for message in messages
                )
            )
        except Exception as exc:  # timeouts, no responders, a reconnect: all mean "not acked"
            raise BusUnavailable(f"JetStream did not ack: {type(exc).__name__}") from exc
        return [int(ack.seq) for ack in acks]

    async def _consume(self, subscription: Any, handler: MessageHandler) -> None:
        """Apply batch after batch, in order, with the next batch's fetch in flight meanwhile
        (a fetch is a round trip to NATS; overlapping it with the database's work is a third
        more throughput). Cancelled, the batch fetched ahead is left unacked: redelivered."""
        ahead = asyncio.ensure_future(self._fetch(subscription))
        try:
            while not self._closing:
                received = await ahead
                ahead = asyncio.ensure_future(self._fetch(subscription))
                if not received:
                    continue
                try:
                    await self._handle(received, handler)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the database went away mid-batch: redelivered later
                    log.warning("jetstream_handle_failed", error=type(exc).__name__)
                    await asyncio.sleep(1.0)
        finally:
            ahead.cancel()

    async def _fetch(self, subscription: Any) -> list[Any]:
        """The next batch; empty after a quiet wait or while NATS is away (it reconnects by
        itself; the failures back off)."""
        try:
            received: list[Any] = await subscription.fetch(
                self._batch_size, timeout=_FETCH_WAIT_SECONDS
            )
        except TimeoutError:
            return []
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fetch_failures += 1
            log.warning("jetstream_fetch_failed", error=type(exc).__name__)
            await asyncio.sleep(min(0.05 * 2**self._fetch_failures, 5.0))
            return []
        self._fetch_failures = 0
        return received

    async def _handle(self, received: list[Any], handler: MessageHandler) -> None:
        messages = [self._bus_message(raw) for raw in received]
        try:
            await handler(messages)
        except (DatabaseUnavailable, BusUnavailable):
            # not these messages' fault: all of them again later, no attempt held against them
            await asyncio.gather(*(raw.nak(delay=1.0) for raw in received), return_exceptions=True)
            return
        except Exception as exc:
            log.warning("jetstream_batch_failed", error=type(exc).__name__, size=len(messages))
            await self._handle_one_by_one(received, messages, handler)
            return
        await asyncio.gather(*(raw.ack() for raw in received), return_exceptions=True)

    async def _handle_one_by_one(
        self, received: list[Any], messages: list[BusMessage], handler: MessageHandler
    ) -> None:
        for raw, message in zip(received, messages, strict=True):
            try:
                await handler([message])
            except (DatabaseUnavailable, BusUnavailable):
                await raw.nak(delay=1.0)
                continue
            except Exception as exc:
                attempts = int(raw.metadata.num_delivered)
                if attempts < self._max_attempts:
                    await raw.nak(delay=min(0.1 * 2**attempts, 30.0))
                    continue
                await self._dead_letter(message, exc, attempts)
                log.error("jetstream_dead_letter", message_id=message.message_id, attempts=attempts)
            await raw.ack()

    async def _dead_letter(self, message: BusMessage, exc: Exception, attempts: int) -> None:
        def insert(conn: Connection) -> None:
            insert_dead_letters(conn, [(message, exc)], attempts)

        await self._db.transaction(insert)

    def _bus_message(self, raw: Any) -> BusMessage:
        headers = dict(raw.headers or {})
        message_id = headers.pop(MSG_ID, "")
        return BusMessage(
            subject=raw.subject.removeprefix(f"{self._prefix}."),
            message_id=message_id,
            payload=raw.data,
            headers=headers,
        )

    async def _fan_out(self) -> None:
        from nats.js.api import DeliverPolicy

        async def deliver(raw: Any) -> None:
            message = self._bus_message(raw)
            for listener in self._listeners:
                try:
                    await listener(message)
                except Exception as exc:  # one listener's failure must not stop the others
                    log.error("control_listener_failed", error=type(exc).__name__)

        await self._js.subscribe(
            f"{self._prefix}.{CONTROL_SUBJECT}",
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
            cb=deliver,
        )

    async def relay_kept_again(self) -> int:
        """Relay again every kept unit (what a reconnection does: a NATS crash loses what it
        acked and had not synced, and while this process was cut off others may already
        have relayed new messages under the lost sequence numbers); how many units."""
        return await self._outbox.redeliver([unit_id for unit_id, _ in await self._outbox.kept()])

    async def relay_lost(self) -> int:
        """Relay again the kept units the stream no longer holds (what a start does); how many.

        A crash loses the stream's unsynced tail, so the kept units are checked latest
        receipt first, each by its last message (the one at its receipt must carry its
        Nats-Msg-Id), until one is intact: the older ones were synced. This is sound at
        start, before this process relays anything: a process that was connected through
        the crash relays everything it kept again when it reconnects, and one that started
        after it checked before relaying anything new. Relaying everything kept instead
        would publish up to `sync_seconds` of traffic again, ahead of new events, at every
        start of every process."""
        from nats.js.errors import NotFoundError

        lost: list[int] = []
        for unit_id, receipt in await self._outbox.kept():
            if receipt is not None:
                unit = await self._outbox.unit(unit_id)
                if not unit:
                    continue  # deleted meanwhile: kept long enough
                try:
                    stored = await self._js.get_msg(self._stream, receipt)
                except NotFoundError:
                    stored = None
                if stored is not None and (stored.headers or {}).get(MSG_ID) == unit[-1].message_id:
                    break
            lost.append(unit_id)
        return await self._outbox.redeliver(lost)

    async def _reconnected(self) -> None:
        count = await self.relay_kept_again()
        log.warning("nats_reconnected", relaying_again=count)

    async def _disconnected(self) -> None:
        if not self._closing:
            log.warning("nats_disconnected")

    async def _error(self, exc: Exception) -> None:
        if not self._closing:
            log.warning("nats_error", error=type(exc).__name__)
