"""The validate stage: a body becomes validated calls, or the whole request is refused.

Every call of a batch is checked before any is processed, so a bad request changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from anonymization import normalize_identifier
from bus import as_utc
from gateway._body import check_depth, check_value_depth, decode_json
from gateway._wire import CALL_TYPES, Alias, Batch, Call, Group
from gateway.errors import BadRequest, PayloadTooLarge


@dataclass(frozen=True, slots=True)
class Limits:
    max_request_bytes: int
    max_event_bytes: int
    max_batch_events: int


@dataclass(slots=True)
class ValidCall:
    """One call, checked, with its identifiers normalized and its time corrected."""

    call: Call
    call_type: str
    message_id: str
    user_id: str | None
    anonymous_id: str | None
    timestamp: datetime
    context: dict[str, Any]


_CALL_NAMES = {kind: name for name, kind in CALL_TYPES.items()}
_batch_decoder = msgspec.json.Decoder(Batch)
_call_decoder = msgspec.json.Decoder(Call)
_single_decoders = {name: msgspec.json.Decoder(kind) for name, kind in CALL_TYPES.items()}


def validate_body(
    body: bytes, call_type: str | None, limits: Limits, received_at: datetime
) -> list[ValidCall]:
    """Decode a single call (`call_type` given) or a batch (`call_type` None)."""
    if call_type is not None:
        _check_event_size(body, limits, where="$")
        check_depth(body, "the event")
        call = _decode(_single_decoders[call_type], body, prefix="")
        return [_checked(call, call_type, None, None, received_at, where="$")]

    batch = _decode(_batch_decoder, body, prefix="")
    check_value_depth(batch.context, "$.context")
    check_value_depth(batch.integrations, "$.integrations")
    if len(batch.batch) > limits.max_batch_events:
        raise BadRequest(
            f"batch holds {len(batch.batch)} events; the limit is {limits.max_batch_events}",
            code="batch_too_large",
        )
    calls: list[ValidCall] = []
    for index, raw in enumerate(batch.batch):
        where = f"$.batch[{index}]"
        _check_event_size(raw, limits, where=where)
        check_depth(bytes(raw), f"the event at {where}")
        call = _decode(_call_decoder, raw, prefix=f".batch[{index}]")
        calls.append(
            _checked(call, _CALL_NAMES[type(call)], batch.sentAt, batch.context, received_at, where)
        )
    return calls


def _decode(decoder: msgspec.json.Decoder[Any], data: bytes | msgspec.Raw, prefix: str) -> Any:
    try:
        return decode_json(decoder, data, invalid_code="invalid_event")
    except BadRequest as exc:
        if not prefix or exc.code != "invalid_event":
            raise
        message = exc.detail
        if "- at `$" in message:
            message = message.replace("- at `$", f"- at `${prefix}", 1)
        else:
            message = f"{message} - at `${prefix}`"
        raise BadRequest(message, code="invalid_event") from None


def _check_event_size(data: bytes | msgspec.Raw, limits: Limits, where: str) -> None:
    size = len(data)
    if size > limits.max_event_bytes:
        raise PayloadTooLarge(
            f"event at {where} is {size} bytes; the limit is {limits.max_event_bytes}",
            code="event_too_large",
        )


def _checked(
    call: Call,
    call_type: str,
    batch_sent_at: datetime | None,
    batch_context: dict[str, Any] | None,
    received_at: datetime,
    where: str,
) -> ValidCall:
    user_id = _identifier(call.userId)
    anonymous_id = _identifier(call.anonymousId)
    if user_id is None and anonymous_id is None:
        raise BadRequest(
            f"event at {where} has neither userId nor anonymousId", code="no_user_anon_id"
        )
    if isinstance(call, Alias) and (user_id is None or _identifier(call.previousId) is None):
        raise BadRequest(f"alias at {where} needs userId and previousId", code="invalid_event")
    if isinstance(call, Group) and _identifier(call.groupId) is None:
        raise BadRequest(f"group at {where} needs a groupId", code="invalid_event")
    context = call.context or {}
    if batch_context:
        context = {**batch_context, **context}
    return ValidCall(
        call=call,
        call_type=call_type,
        message_id=call.messageId or str(uuid.uuid4()),
        user_id=user_id,
        anonymous_id=anonymous_id,
        timestamp=_timestamp_in_range(call, batch_sent_at, received_at, where),
        context=context,
    )


EARLIEST_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIMESTAMP_AHEAD = timedelta(days=1)


def _timestamp_in_range(
    call: Call, batch_sent_at: datetime | None, received_at: datetime, where: str
) -> datetime:
    """The corrected time, which must fall between 1970 and a day after receipt."""
    try:
        moment = corrected_timestamp(call, batch_sent_at, received_at)
    except OverflowError:
        moment = None
    if moment is None or not (EARLIEST_TIMESTAMP <= moment <= received_at + LATEST_TIMESTAMP_AHEAD):
        raise BadRequest(
            f"event at {where}: its time (timestamp corrected by sentAt) must fall between "
            "1970-01-01 and a day after it is received",
            code="invalid_timestamp",
        )
    return moment


def _identifier(value: str | int | None) -> str | None:
    """The identifier as sent (trimmed), or None when it is empty once normalized."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    if text.isascii():  # normalization changes nothing else in ASCII
        return text or None
    return text if normalize_identifier(text) else None


def corrected_timestamp(
    call: Call, batch_sent_at: datetime | None, received_at: datetime
) -> datetime:
    """Segment's clock-skew correction: `receivedAt - (sentAt - originalTimestamp)`."""
    original = call.timestamp or call.originalTimestamp
    sent_at = call.sentAt or batch_sent_at
    if original is None:
        return received_at
    original = as_utc(original)
    if sent_at is None:
        return original
    return received_at - (as_utc(sent_at) - original)
