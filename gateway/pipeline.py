"""The ingestion pipeline: authenticate, validate, consent, anonymize, record, forward.

`Pipeline.run` is the whole sequence for one request; the HTTP handler only reads the body
and calls it. Per-event stages are plain callables over one `EventContext`; each runs over
all of a request's events in its own span.
A stage that refuses an event raises `EventRefused`, handled in exactly one place
(`Pipeline._apply`): the identifiers are pseudonymized and the decision recorded. The
request gets its 200 only after `forward` has the bus's durable acknowledgement.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from opentelemetry.trace import (
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    format_trace_id,
    get_current_span,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from anonymization import Keyring
from bus import Bus, BusUnavailable, EventEnvelope, encode_event
from consent import ConsentState, ConsentStore, Decision, merge_states
from gateway._body import decode_content
from gateway._validate import Limits, ValidCall, validate_body
from gateway.edge import RateLimiter
from gateway.errors import GatewayError, Unavailable
from gateway.sources import Source
from observability import (
    DecisionRecord,
    Metrics,
    current_request_id,
    decisions_message,
    remember_raw_identifiers,
)


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
    trace_id: str | None = None

    @classmethod
    def from_call(
        cls,
        source: Source,
        call: ValidCall,
        received_at: datetime,
        sec_gpc: str | None = None,
        trace_id: str | None = None,
    ) -> EventContext:
        return cls(
            trace_id=trace_id,
            source=source,
            call=call,
            call_type=call.call_type,
            message_id=source.message_id(call.message_id),
            received_at=received_at,
            sec_gpc=sec_gpc,
            user_id=call.user_id,
            anonymous_id=call.anonymous_id,
        )


Stage = Callable[[EventContext], EventContext]


@dataclass(frozen=True, slots=True)
class StageSpec:
    """A named stage. One that reads subjects' data keys has them looked up just before it,
    for the events still live: a refused (say, erased) subject's key is never touched."""

    name: str
    run: Stage
    needs_data_keys: bool = False


_PROPAGATOR = TraceContextTextMapPropagator()
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
    origin: str | None = None  # a browser's Origin header


class Pipeline:
    """Runs the stages for every event of a request; the handler only calls `run`."""

    __slots__ = (
        "_authenticate",
        "_bus",
        "_consent",
        "_keyring",
        "_limits",
        "_metrics",
        "_pseudonymize_ids",
        "_publish_decisions",
        "_rate_limiter",
        "_record",
        "_stages",
        "_tracer",
    )

    def __init__(
        self,
        *,
        authenticate: Authenticate,
        consent: ConsentStore,
        keyring: Keyring,
        bus: Bus,
        limits: Limits,
        stages: Sequence[StageSpec],
        pseudonymize_ids: Stage,
        record: Stage,
        tracer: Tracer,
        metrics: Metrics | None = None,
        publish_decisions: bool = True,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self._tracer = tracer
        self._rate_limiter = rate_limiter
        self._metrics = metrics
        self._publish_decisions = publish_decisions  # off only to measure what it costs
        self._authenticate = authenticate
        self._consent = consent
        self._keyring = keyring
        self._bus = bus
        self._limits = limits
        self._stages = tuple(stages)
        self._pseudonymize_ids = pseudonymize_ids
        self._record = record

    async def run(self, request: IngestRequest) -> None:
        carrier = {"traceparent": request.traceparent} if request.traceparent else {}
        name = f"ingest {request.call_type or 'batch'}"
        # Exceptions are not recorded on spans: their text may echo request data. The error
        # code alone says what went wrong.
        with self._tracer.start_as_current_span(
            name,
            context=_PROPAGATOR.extract(carrier),
            kind=SpanKind.SERVER,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            request_id = current_request_id()
            if request_id is not None:
                span.set_attribute("consentgate.request_id", request_id)
            try:
                await self._run(request, span)
            except GatewayError as exc:
                span.set_attribute("consentgate.error", exc.code)
                span.set_status(Status(StatusCode.ERROR, exc.code))
                raise

    async def _run(self, request: IngestRequest, span: Span) -> None:
        received_at = datetime.now(UTC)
        with self._span("authenticate"):
            limit = self._limits.max_request_bytes
            body = decode_content(request.body, request.content_encoding, limit)
            source = await self._authenticate(request.authorization, body)
            source.edge.check_origin(request.origin)
            if self._rate_limiter is not None:
                self._rate_limiter.admit(source.source_id, source.edge)
        span.set_attribute("consentgate.source_id", source.source_id)
        with self._span("validate"):
            calls = validate_body(body, request.call_type, self._limits, received_at)
            remember_raw_identifiers(_raw_identifiers(calls))
        span.set_attribute("consentgate.events", len(calls))
        trace_id = format_trace_id(span.get_span_context().trace_id)
        contexts = [
            EventContext.from_call(source, call, received_at, request.sec_gpc, trace_id)
            for call in calls
        ]
        with self._span("consent.lookup"):
            await self._load_stored_consent(source, contexts)
        live = contexts
        for stage in self._stages:
            if stage.needs_data_keys and source.fields.needs_data_keys and live:
                with self._span("keys.lookup"):
                    await self._load_data_keys(source, live)
            with self._span(stage.name) as stage_span:
                live = self._apply(stage.run, live)
                stage_span.set_attribute("consentgate.events", len(live))
        envelopes = [c.envelope for c in live if c.envelope is not None]
        records = [c.record for c in contexts if c.record is not None]
        with self._span("forward"):
            await self._forward(envelopes, records)
        if self._metrics is not None:
            self._metrics.record_decisions(source.source_id, records)

    @contextmanager
    def _span(self, name: str) -> Iterator[Span]:
        """A child span for one stage (when the trace is sampled), timed into the
        stage-duration histogram either way."""
        started = time.perf_counter()
        current = get_current_span()
        if current.is_recording():
            with self._tracer.start_as_current_span(
                name, record_exception=False, set_status_on_exception=False
            ) as span:
                yield span
        else:
            yield current
        if self._metrics is not None:
            elapsed = time.perf_counter() - started
            self._metrics.stage_seconds.record(elapsed, {"stage": name})

    def _apply(self, stage: Stage, contexts: list[EventContext]) -> list[EventContext]:
        """Run one stage over every live event; a refusal is recorded here and nowhere else."""
        kept = []
        for context in contexts:
            try:
                kept.append(stage(context))
            except EventRefused:
                self._record(self._pseudonymize_ids(context))
        return kept

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

    async def _forward(self, envelopes: list[EventEnvelope], records: list[DecisionRecord]) -> None:
        headers: dict[str, str] = {}
        _PROPAGATOR.inject(headers)  # the W3C traceparent, for the core's spans
        messages = [encode_event(e, headers) for e in envelopes]
        if records and self._publish_decisions:
            # The decisions ride in the same durable commit as the events they decided.
            messages.append(decisions_message("decisions:" + records[0].message_id, records))
        try:
            await self._bus.publish(messages)
        except BusUnavailable as exc:
            raise Unavailable(
                "events were not accepted; retry the request", code="bus_unavailable"
            ) from exc


def _raw_identifiers(calls: list[ValidCall]) -> Iterator[str | None]:
    """Every raw identifier the request's calls carry, for the telemetry guards."""
    for call in calls:
        yield call.user_id
        yield call.anonymous_id
        for name in ("groupId", "previousId"):
            value = getattr(call.call, name, None)
            if value is not None:
                yield str(value)
