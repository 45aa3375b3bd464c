"""The ingestion pipeline: authenticate, validate, consent, anonymize, record, forward.

`Pipeline.run` is the whole sequence for one request; the HTTP handler only reads the body
and calls it. Per-event stages are plain callables over one `EventContext`, run by one loop.
A stage that refuses an event raises `EventRefused`, handled in exactly one place
(`Pipeline._process`): the identifiers are pseudonymized and the decision recorded. The
request gets its 200 only after `forward` has the bus's durable acknowledgement.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from anonymization import Keyring
from bus import Bus, BusUnavailable, EventEnvelope, encode_event
from consent import ConsentState, ConsentStore, Decision, merge_states
from gateway._body import decode_content
from gateway._validate import Limits, ValidCall, validate_body
from gateway.errors import Unavailable
from gateway.sources import Source
from observability import DecisionRecord, decisions_message


class EventRefused(Exception):
    """A stage refused the event; it is recorded and not forwarded."""


@dataclass(slots=True)
class EventContext:
    """One event on its way through the stages.

    `call` holds the raw inbound event and `user_id`/`anonymous_id` its raw identifiers
    until the anonymize stage, which clears all three: nothing raw goes past it. The
    pseudonyms are set when the stored consent is looked up, before the consent stage.
    """

    source: Source
    call: ValidCall | None
    call_type: str
    message_id: str
    received_at: datetime
    sec_gpc: str | None
    user_id: str | None = field(default=None, repr=False)
    anonymous_id: str | None = field(default=None, repr=False)
    subject: str | None = None
    anonymous: str | None = None
    event_name: str | None = None
    stored: ConsentState = field(default_factory=dict)
    data_key: bytes | None = field(default=None, repr=False)
    decision: Decision | None = None
    envelope: EventEnvelope | None = None
    record: DecisionRecord | None = None

    @classmethod
    def from_call(
        cls, source: Source, call: ValidCall, received_at: datetime, sec_gpc: str | None = None
    ) -> EventContext:
        return cls(
            source=source,
            call=call,
            call_type=call.call_type,
            message_id=call.message_id,
            received_at=received_at,
            sec_gpc=sec_gpc,
            user_id=call.user_id,
            anonymous_id=call.anonymous_id,
        )


Stage = Callable[[EventContext], EventContext]
Authenticate = Callable[[str | None, bytes], Awaitable[Source]]


@dataclass(frozen=True, slots=True)
class IngestRequest:
    """What the pipeline needs of an HTTP request: its body as received and a few headers."""

    call_type: str | None  # None: a batch
    body: bytes
    content_encoding: str | None = None
    authorization: str | None = None
    sec_gpc: str | None = None
    traceparent: str | None = None


class Pipeline:
    """Runs the stages for every event of a request; the handler only calls `run`."""

    __slots__ = (
        "_authenticate",
        "_bus",
        "_consent",
        "_keyring",
        "_limits",
        "_pseudonymize_ids",
        "_record",
        "_stages",
    )

    def __init__(
        self,
        *,
        authenticate: Authenticate,
        consent: ConsentStore,
        keyring: Keyring,
        bus: Bus,
        limits: Limits,
        stages: Sequence[Stage],
        pseudonymize_ids: Stage,
        record: Stage,
    ) -> None:
        self._authenticate = authenticate
        self._consent = consent
        self._keyring = keyring
        self._bus = bus
        self._limits = limits
        self._stages = tuple(stages)
        self._pseudonymize_ids = pseudonymize_ids
        self._record = record

    async def run(self, request: IngestRequest) -> None:
        received_at = datetime.now(UTC)
        body = decode_content(
            request.body, request.content_encoding, self._limits.max_request_bytes
        )
        source = await self._authenticate(request.authorization, body)
        calls = validate_body(body, request.call_type, self._limits, received_at)
        contexts = [
            EventContext.from_call(source, call, received_at, request.sec_gpc) for call in calls
        ]
        await self._load_stored_consent(source, contexts)
        if source.fields.needs_data_keys:
            await self._load_data_keys(source, contexts)
        envelopes = []
        for context in contexts:
            envelope = self._process(context)
            if envelope is not None:
                envelopes.append(envelope)
        records = [c.record for c in contexts if c.record is not None]
        await self._forward(envelopes, records, request.traceparent)

    async def _load_stored_consent(self, source: Source, contexts: list[EventContext]) -> None:
        """Pseudonymize each event's subject and attach its stored consent (cached).

        With several pseudonym key versions, the choices recorded under any of the subject's
        pseudonyms count: a withdrawal made before a new epoch still holds after it.
        """
        pseudonymize = source.pseudonymize
        older = source.pseudonymizers[1:]
        for context in contexts:
            if context.user_id:
                context.subject = pseudonymize("subject", context.user_id)
            if context.anonymous_id:
                context.anonymous = pseudonymize("subject", context.anonymous_id)
        keys = {key for c in contexts for key in (c.subject, c.anonymous) if key}
        aliases: dict[str, list[str]] = {}
        if older:
            for context in contexts:
                for raw, current in (
                    (context.user_id, context.subject),
                    (context.anonymous_id, context.anonymous),
                ):
                    if raw and current:
                        aliases[current] = [p("subject", raw) for p in older]
                        keys.update(aliases[current])
        states = await self._consent.states(source.source_id, keys)
        for context in contexts:
            # The user's own choices first; an anonymous visitor's apply until identified.
            context.stored = self._state_of(context.subject, states, aliases) or (
                self._state_of(context.anonymous, states, aliases) or {}
            )

    async def _load_data_keys(self, source: Source, contexts: list[EventContext]) -> None:
        """The subjects' data keys, for the fields the source's policy encrypts."""
        owners = {c.subject or c.anonymous for c in contexts} - {None}
        keys = await self._keyring.subject_keys(source.source_id, owners)  # type: ignore[arg-type]
        for context in contexts:
            owner = context.subject or context.anonymous
            context.data_key = keys.get(owner) if owner else None

    @staticmethod
    def _state_of(
        subject: str | None, states: dict[str, ConsentState], aliases: dict[str, list[str]]
    ) -> ConsentState:
        if subject is None:
            return {}
        state = states.get(subject, {})
        if subject not in aliases:
            return state
        return merge_states([state, *(states.get(alias, {}) for alias in aliases[subject])])

    def _process(self, context: EventContext) -> EventEnvelope | None:
        try:
            for stage in self._stages:
                context = stage(context)
        except EventRefused:
            self._record(self._pseudonymize_ids(context))
            return None
        return context.envelope

    async def _forward(
        self, envelopes: list[EventEnvelope], records: list[DecisionRecord], traceparent: str | None
    ) -> None:
        headers = {"traceparent": traceparent} if traceparent else None
        messages = [encode_event(e, headers) for e in envelopes]
        if records:
            # The decisions ride in the same durable commit as the events they decided.
            messages.append(decisions_message("decisions:" + records[0].message_id, records))
        try:
            await self._bus.publish(messages)
        except BusUnavailable as exc:
            raise Unavailable(
                "events were not accepted; retry the request", code="bus_unavailable"
            ) from exc
