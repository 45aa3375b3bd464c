"""The ingestion pipeline: one ordered list of named stages, run by one loop, a span each.

    authenticate → validate → consent.lookup → consent → keys.lookup → anonymize → record → forward

Every stage works on the request as a whole (`RequestContext`); the per-event stages (consent,
anonymize, record: `gateway.stages`) run over its live events through `each`, where a refusal
(`EventRefused`) is handled in exactly one place: the event's identifiers are pseudonymized and
its decision recorded. `build_pipeline` makes the list, for the runtime and the benchmarks
alike. The request gets its 200 only after `forward` has the bus's durable acknowledgement.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from opentelemetry.trace import (
    INVALID_SPAN,
    Span,
    Status,
    StatusCode,
    Tracer,
)
from opentelemetry.util.types import AttributeValue

from bus import EventEnvelope
from consent import ConsentState, Decision
from gateway._validate import ValidCall
from gateway.errors import GatewayError
from gateway.sources import Source
from observability import DecisionRecord, Metrics, current_request_id, server_span

Pseudonymize = Callable[[str, str], str]  # (kind, raw identifier) -> pseudonym


class EventRefused(Exception):
    """A stage refused the event; it is recorded and not forwarded."""


@dataclass(slots=True)
class EventContext:
    """One event on its way through the stages.

    `call` holds the raw inbound event and `user_id`/`anonymous_id` its raw identifiers
    until the anonymize stage, which clears all three: nothing raw goes past it. The
    pseudonyms are set when the stored consent is looked up, before the consent stage.
    `pseudonymize` is the request's: each identifier is keyed once per request.
    """

    source: Source
    call: ValidCall | None
    call_type: str
    message_id: str
    received_at: datetime
    sec_gpc: str | None
    pseudonymize: Pseudonymize = field(repr=False)
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
        pseudonymize: Pseudonymize | None = None,
    ) -> EventContext:
        return cls(
            trace_id=trace_id,
            source=source,
            call=call,
            call_type=call.call_type,
            message_id=source.message_id(call.message_id),
            received_at=received_at,
            sec_gpc=sec_gpc,
            pseudonymize=pseudonymize or source.pseudonymize,  # type: ignore[arg-type]
            user_id=call.user_id,
            anonymous_id=call.anonymous_id,
        )


@dataclass(frozen=True, slots=True)
class IngestRequest:
    """What the pipeline needs of an HTTP request: its body as received and a few headers."""

    call_type: str | None  # None: a batch
    body: bytes
    path: str = "/v1/batch"  # the route it came in at (its root span's name)
    content_encoding: str | None = None
    authorization: str | None = None
    sec_gpc: str | None = None
    traceparent: str | None = None
    origin: str | None = None  # a browser's Origin header


@dataclass(slots=True)
class RequestContext:
    """One request on its way: what each stage found, for the stages after it."""

    request: IngestRequest
    received_at: datetime
    span: Span = INVALID_SPAN
    body: bytes = b""
    source: Source | None = None
    calls: list[ValidCall] = field(default_factory=list)
    events: list[EventContext] = field(default_factory=list)  # every event of the request
    live: list[EventContext] = field(default_factory=list)  # those no stage has refused
    trace_id: str | None = None
    # what the stages say of the request, set on its span at once when it ends (one call into
    # the tracing SDK, not one per attribute: each costs a lock and a cleaning pass)
    attributes: dict[str, AttributeValue] = field(default_factory=dict)

    @property
    def authenticated(self) -> Source:
        if self.source is None:
            raise RuntimeError("a stage ran before authenticate")
        return self.source


RequestStage = Callable[[RequestContext], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class NamedStage:
    """A stage and its span name; `needed` skips it for requests that have no use for it."""

    name: str
    run: RequestStage
    needed: Callable[[RequestContext], bool] | None = None
    timing_attribute: str = field(init=False)  # the request span's attribute for its time

    def __post_init__(self) -> None:
        object.__setattr__(self, "timing_attribute", f"consentgate.stage.{self.name}.ms")


class Pipeline:
    """Runs the stages for a request; the HTTP handler only reads the body and calls `run`."""

    __slots__ = ("_metrics", "_stages", "_tracer")

    def __init__(
        self, stages: Sequence[NamedStage], tracer: Tracer, metrics: Metrics | None = None
    ) -> None:
        self._stages = tuple(stages)
        self._tracer = tracer
        self._metrics = metrics

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in self._stages)

    async def run(self, request: IngestRequest) -> None:
        carrier = {"traceparent": request.traceparent} if request.traceparent else {}
        with server_span(self._tracer, f"HTTP POST {request.path}", carrier) as span:
            context = RequestContext(request=request, received_at=datetime.now(UTC), span=span)
            request_id = current_request_id()
            if request_id is not None:
                context.attributes["consentgate.request_id"] = request_id
            timings: list[tuple[NamedStage, float]] = []
            try:
                started = time.perf_counter()
                for stage in self._stages:
                    if stage.needed is not None and not stage.needed(context):
                        continue
                    await stage.run(context)
                    ended = time.perf_counter()
                    timings.append((stage, ended - started))
                    started = ended
            except GatewayError as exc:
                context.attributes["consentgate.error"] = exc.code
                span.set_status(Status(StatusCode.ERROR, exc.code))
                raise
            finally:
                self._timed(span, context.attributes, timings)

    def _timed(
        self,
        span: Span,
        attributes: dict[str, AttributeValue],
        timings: list[tuple[NamedStage, float]],
    ) -> None:
        """Each stage's time: an attribute of the request's span (when the trace is sampled;
        one span per request, not one per stage, keeps tracing's cost down), set with the
        stages' other attributes, and the stage-duration histogram either way."""
        if span.is_recording():
            for stage, seconds in timings:
                # ms to the microsecond (truncated: a third of round()'s cost)
                attributes[stage.timing_attribute] = int(seconds * 1e6) / 1000
            span.set_attributes(attributes)
        if self._metrics is not None:
            for stage, seconds in timings:
                self._metrics.stage_seconds.record(seconds, {"stage": stage.name})


EventStage = Callable[[EventContext], EventContext]


def each(stage: EventStage, refused: Callable[[EventContext], object]) -> RequestStage:
    """A per-event stage over the request's live events; a refusal is handed to `refused`
    (which records it) here and nowhere else."""

    async def run(context: RequestContext) -> None:
        kept = []
        for event in context.live:
            try:
                kept.append(stage(event))
            except EventRefused:
                refused(event)
        context.live = kept
        context.attributes["consentgate.events"] = len(kept)

    return run
