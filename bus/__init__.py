"""The message contract and its transports. Imports none of the domain packages."""

from bus._database import Database, as_utc
from bus._dead_letters import erase_dead_letters
from bus._outbox import OutboxBus
from bus._tables import NAMING_CONVENTION, metadata
from bus._transport import Bus, BusError, BusUnavailable, MessageHandler
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
    "Bus",
    "BusError",
    "BusMessage",
    "BusPayload",
    "BusUnavailable",
    "CallType",
    "ConsentChanged",
    "ControlMessage",
    "Database",
    "Erase",
    "EventEnvelope",
    "MessageHandler",
    "OptOut",
    "OutboxBus",
    "as_utc",
    "create_bus",
    "decode_payload",
    "encode_control",
    "encode_event",
    "erase_dead_letters",
    "metadata",
]


def create_bus(bus_url: str, database: Database, *, batch_size: int = 500) -> Bus:
    """The transport for `bus_url`: `memory://` is the outbox in `database`."""
    if bus_url.startswith("memory://"):
        return OutboxBus(database, batch_size=batch_size)
    raise ValueError(
        f"CONSENTGATE_BUS_URL: {bus_url!r} is not available yet; use memory:// "
        "(NATS JetStream arrives with its own issue)"
    )
