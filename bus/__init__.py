"""The message contract and its transports. Imports none of the domain packages."""

from bus._database import Database, DatabaseUnavailable, as_utc
from bus._dead_letters import count_dead_letters, erase_dead_letters
from bus._driver import (
    delete_many,
    execute_compiled,
    insert_many,
    run_one,
    select_in,
    stored_json,
    stored_time,
)
from bus._jetstream import JetStreamBus
from bus._outbox import OutboxBus
from bus._tables import NAMING_CONVENTION, metadata
from bus._transport import (
    AlsoInCommit,
    Bus,
    BusError,
    BusUnavailable,
    MessageHandler,
    finish_within,
)
from bus.envelope import (
    CONTROL_SUBJECT,
    EVENTS_SUBJECT,
    BusMessage,
    BusPayload,
    CallType,
    ConsentChanged,
    ControlMessage,
    Erase,
    EventEnvelope,
    OptOut,
    decode_payload,
    encode_control,
    encode_event,
)

__all__ = [
    "CONTROL_SUBJECT",
    "EVENTS_SUBJECT",
    "NAMING_CONVENTION",
    "AlsoInCommit",
    "Bus",
    "BusError",
    "BusMessage",
    "BusPayload",
    "BusUnavailable",
    "CallType",
    "ConsentChanged",
    "ControlMessage",
    "Database",
    "DatabaseUnavailable",
    "Erase",
    "EventEnvelope",
    "JetStreamBus",
    "MessageHandler",
    "OptOut",
    "OutboxBus",
    "as_utc",
    "count_dead_letters",
    "create_bus",
    "decode_payload",
    "delete_many",
    "encode_control",
    "encode_event",
    "erase_dead_letters",
    "execute_compiled",
    "finish_within",
    "insert_many",
    "metadata",
    "run_one",
    "select_in",
    "stored_json",
    "stored_time",
]


def create_bus(
    bus_url: str,
    database: Database,
    *,
    batch_size: int = 500,
    nats_sync_seconds: float = 120.0,
    nats_stream: str = "CONSENTGATE",
    poll_interval: float = 1.0,
) -> Bus:
    """The transport for `bus_url`: `memory://` is the outbox in `database`, delivered in this
    process; `nats://host:port` is that outbox relayed to NATS JetStream. `poll_interval`:
    how often the outbox looks for units other processes committed (a core child's)."""
    if bus_url.startswith("memory://"):
        return OutboxBus(
            database, batch_size=batch_size, poll_interval=poll_interval, own_units_first=True
        )
    if bus_url.startswith(("nats://", "tls://")):
        return JetStreamBus(
            bus_url,
            database,
            batch_size=batch_size,
            sync_seconds=nats_sync_seconds,
            stream=nats_stream,
            prefix=nats_stream.lower(),
        )
    raise ValueError(
        f"CONSENTGATE_BUS_URL: expected memory:// or nats://host:port, got {bus_url!r}"
    )
