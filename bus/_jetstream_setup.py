"""The JetStream stream and the core's durable consumer, created or brought to this
configuration by every process at start (idempotent)."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

log = structlog.get_logger("consentgate.bus")

CONSUMER = "core"
STREAM_MAX_AGE_SECONDS = 7 * 24 * 3600.0
DUPLICATE_WINDOW_SECONDS = 120.0
STREAM_CREATE_ATTEMPTS = 3


async def ensure_stream(js: Any, stream: str, prefix: str) -> None:
    """Create the stream, or bring an existing one to this configuration."""
    from nats.js.api import RetentionPolicy, StorageType, StreamConfig
    from nats.js.errors import NotFoundError, ServerError

    config = StreamConfig(
        name=stream,
        subjects=[f"{prefix}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=STREAM_MAX_AGE_SECONDS,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
    )
    for attempt in range(STREAM_CREATE_ATTEMPTS):
        try:
            await js.stream_info(stream)
            await js.update_stream(config)
            return
        except NotFoundError:
            pass
        try:
            await js.add_stream(config)
            return
        except ServerError as exc:
            # processes starting together race to create it, and the server can answer the
            # loser 500 "error creating store for stream": look again, then retry
            if attempt + 1 == STREAM_CREATE_ATTEMPTS:
                raise
            log.warning("nats_stream_create_retried", stream=stream, error=str(exc))
            await asyncio.sleep(0.2 * 2**attempt)


async def ensure_consumer(
    js: Any, stream: str, prefix: str, *, ack_wait: float, max_ack_pending: int
) -> None:
    """The core's durable consumer, created by every process: it holds the events from the
    moment the first gateway starts, whether or not a core runs yet, and its pending count is
    the bus lag."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    await js.add_consumer(
        stream,
        config=ConsumerConfig(
            durable_name=CONSUMER,
            filter_subject=f"{prefix}.>",
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ack_wait,
            max_deliver=-1,  # we dead-letter after max_attempts ourselves: never silently
            max_ack_pending=max_ack_pending,
        ),
    )
