"""The transport interface every bus implements (the durable outbox with in-process dispatch,
and the outbox relayed to NATS JetStream)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from bus.envelope import BusMessage

MessageHandler = Callable[[Sequence[BusMessage]], Awaitable[None]]
# what the outbox hands its units to: the core (embedded), or the relay to JetStream, which
# returns each message's stream sequence (its receipt)
DeliveryHandler = Callable[[Sequence[BusMessage]], Awaitable[Sequence[int] | None]]


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

    async def publish(self, messages: Sequence[BusMessage]) -> None:
        """Return only once every message is durable; raise `BusUnavailable` otherwise."""

    async def ping(self) -> None:
        """Raise `BusUnavailable` when the bus cannot take messages."""

    async def close(self) -> None:
        """Stop delivering and release the transport; pending durable messages stay."""
