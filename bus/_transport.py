"""The transport interface every bus implements (the durable outbox with in-process dispatch,
and the outbox relayed to NATS JetStream)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from bus.envelope import BusMessage

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

MessageHandler = Callable[[Sequence[BusMessage]], Awaitable[None]]
# what the outbox hands its units to: the core (embedded), or the relay to JetStream, which
# returns each message's stream sequence (its receipt)
DeliveryHandler = Callable[[Sequence[BusMessage]], Awaitable[Sequence[int] | None]]
# work committed in the same transaction as a publish's messages (a consent write's rows and
# audit entry with its `consent_changed`)
AlsoInCommit = Callable[["Connection"], object]


async def finish_within(work: Coroutine[Any, Any, Any], seconds: float) -> bool:
    """Run `work` for up to `seconds`; whether it finished. Past that it is cancelled and left:
    unlike `asyncio.wait_for`, which then waits for the cancellation to complete, and waits
    forever on a library that ignores it (a shutdown must end)."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        return False
    if not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
    return True


class BusError(Exception):
    """Base of the bus errors."""


class BusUnavailable(BusError):
    """The bus could not take the message durably; the caller must not acknowledge it."""


class Bus(Protocol):
    async def start(self, handler: MessageHandler | None = None) -> None:
        """Open the transport; when `handler` is given, deliver messages to it.

        A handler that returns has processed its messages (they are acknowledged); one that
        raises gets them again. Handlers dedupe by `message_id`: delivery is at least once.
        """

    async def publish(
        self, messages: Sequence[BusMessage], also: AlsoInCommit | None = None
    ) -> None:
        """Return only once every message is durable; raise `BusUnavailable` otherwise.
        `also(conn)` commits in the same transaction as the messages, or neither does."""

    async def ping(self) -> None:
        """Raise `BusUnavailable` when the bus cannot take messages."""

    async def close(self) -> None:
        """Stop delivering and release the transport; pending durable messages stay."""
