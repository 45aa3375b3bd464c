"""The message contract: privacy-safe event envelopes and control messages.

Nothing here carries a raw identifier: `subject`, `anonymous`, `group` and `previous` are
pseudonyms, and `properties`, `traits` and `context` have been scrubbed by the gateway.
New fields get defaults; existing field types never change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

CallType = Literal["track", "identify", "page", "screen", "group", "alias"]

EVENTS_SUBJECT = "events"
CONTROL_SUBJECT = "control"


class EventEnvelope(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="event"):
    message_id: str
    source_id: str
    type: CallType
    subject: str | None
    anonymous: str | None
    received_at: datetime
    timestamp: datetime
    event: str | None = None
    name: str | None = None
    group: str | None = None
    previous: str | None = None
    properties: dict[str, Any] = {}
    traits: dict[str, Any] = {}
    context: dict[str, Any] = {}
    purposes: tuple[str, ...] = ()
    consent_ref: str | None = None


class Erase(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="erase"):
    """Erase `subject` (and `others`: its pseudonyms of older key versions, its anonymous
    ids) from the core; events received before `at` that arrive later are skipped."""

    source_id: str
    subject: str
    request_id: str
    at: datetime
    others: tuple[str, ...] = ()


class ConsentChanged(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="consent_changed"
):
    """The subject's consent changed (through the API, the privacy center, a banner): the core
    takes it as the subject's consent now and re-evaluates its segments."""

    source_id: str
    subjects: tuple[str, ...]  # the subject's pseudonyms
    granted: tuple[str, ...]
    refused: tuple[str, ...]
    at: datetime
    change_id: str


class OptOut(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="opt_out"):
    """An opt-out request withdrew `purposes`: from now on the core keeps nothing for them
    (withdrawing `personalization` stops the subject's personalization state at once)."""

    source_id: str
    subjects: tuple[str, ...]
    purposes: tuple[str, ...]
    request_id: str
    at: datetime


# A message type exists only while something consumes it (DESIGN): every one of these is
# handled by the core's consumer, in one `match`.
ControlMessage = Erase | ConsentChanged | OptOut
BusPayload = EventEnvelope | Erase | ConsentChanged | OptOut


class BusMessage(msgspec.Struct, frozen=True, kw_only=True):
    """What a transport carries: a subject, a dedupe id, headers and an encoded payload."""

    subject: str
    message_id: str
    payload: bytes
    headers: dict[str, str] = {}


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(BusPayload)


def encode_event(envelope: EventEnvelope, headers: dict[str, str] | None = None) -> BusMessage:
    return BusMessage(
        subject=EVENTS_SUBJECT,
        message_id=envelope.message_id,
        payload=_encoder.encode(envelope),
        headers=headers or {},
    )


def encode_control(message: ControlMessage, message_id: str) -> BusMessage:
    return BusMessage(
        subject=CONTROL_SUBJECT, message_id=message_id, payload=_encoder.encode(message)
    )


def decode_payload(message: BusMessage) -> BusPayload:
    payload: BusPayload = _decoder.decode(message.payload)
    return payload
