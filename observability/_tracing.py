"""OpenTelemetry tracing: one provider, set up once, with a PII guard before every exporter.

Export goes over OTLP/HTTP when an endpoint is configured, to the console in debug, and
nowhere otherwise; tests pass their own exporter (the SDK's `InMemorySpanExporter`). Whatever
the exporter, spans pass the guard first: any string attribute (of the span or its events)
that a PII detector flags, or that holds a raw identifier of the request, is scrubbed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span as AnySpan
from opentelemetry.trace import SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from observability._lean_tracing import SAMPLE_ALL, LeanTracerProvider
from observability._request import current_scrubber

Scrub = Callable[[str], str]
_PROPAGATOR = TraceContextTextMapPropagator()


def server_span(
    tracer: Tracer, name: str, carrier: Mapping[str, str]
) -> AbstractContextManager[AnySpan]:
    """A request's server span, current while it runs, in the caller's trace when `carrier`
    (the request's headers) holds a W3C traceparent. Exceptions are not recorded on it: their
    text may echo request data (an error code says what went wrong)."""
    return tracer.start_as_current_span(
        name,
        context=_PROPAGATOR.extract(carrier),
        kind=SpanKind.SERVER,
        record_exception=False,
        set_status_on_exception=False,
    )


def trace_headers(span: AnySpan) -> dict[str, str]:
    """The W3C `traceparent` (and `tracestate`) naming `span`, as the propagator's `inject`
    writes them for the current span, without looking the span up in the context."""
    context = span.get_span_context()
    if not context.is_valid:
        return {}
    headers = {
        "traceparent": f"00-{context.trace_id:032x}-{context.span_id:016x}-"
        f"{context.trace_flags:02x}"
    }
    if context.trace_state:
        headers["tracestate"] = context.trace_state.to_header()
    return headers


def scrub_attributes(attributes: Mapping[str, Any] | None, scrub: Scrub) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        if isinstance(value, str):
            cleaned[key] = scrub(value)
        elif isinstance(value, tuple | list):
            cleaned[key] = tuple(scrub(v) if isinstance(v, str) else v for v in value)
        else:
            cleaned[key] = value
    return cleaned


def _scrubbed(attributes: Mapping[str, Any] | None, scrub: Scrub) -> dict[str, Any] | None:
    """`scrub_attributes`, or None when scrubbing changes nothing."""
    if not attributes:
        return None
    for value in attributes.values():
        if type(value) in _NUMBERS:
            continue  # most of a span's attributes: timings and counts
        if _changes(value, scrub):
            return scrub_attributes(attributes, scrub)
    return None


_NUMBERS = (int, float, bool)


def _changes(value: Any, scrub: Scrub) -> bool:
    if isinstance(value, str):
        return scrub(value) != value
    if isinstance(value, tuple | list):
        return any(isinstance(v, str) and scrub(v) != v for v in value)
    return False


class PiiGuardProcessor(SpanProcessor):
    """Scrubs every ended span's attributes and events, then hands it to the real processor.

    It runs where the span ends, inside the request: so it knows the request's raw
    identifiers (`observability.remember_raw_identifiers`), which an exporter on a batch
    thread would not.
    """

    def __init__(self, inner: SpanProcessor) -> None:
        self._inner = inner

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._inner.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self._inner.on_end(_guarded(span, current_scrubber().text))

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


def _guarded(span: ReadableSpan, scrub: Scrub) -> ReadableSpan:
    """`span` with its name and string attributes scrubbed (its events' too); the span itself
    when nothing needed scrubbing (a copy costs more than the scan)."""
    name = scrub(span.name)
    attributes = _scrubbed(span.attributes, scrub)
    events = [(event, _scrubbed(event.attributes, scrub)) for event in span.events]
    if name == span.name and attributes is None and all(a is None for _, a in events):
        return span
    return _copy(span, name, attributes, events)


def _copy(
    span: ReadableSpan,
    name: str,
    attributes: dict[str, Any] | None,
    events: list[tuple[Event, dict[str, Any] | None]],
) -> ReadableSpan:
    return ReadableSpan(
        name=name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=span.attributes if attributes is None else attributes,
        events=[
            event
            if cleaned is None
            else Event(name=event.name, attributes=cleaned, timestamp=event.timestamp)
            for event, cleaned in events
        ],
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def otlp_traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a collector given as its base (`http://collector:4318`,
    as OTEL_EXPORTER_OTLP_ENDPOINT is) or as the traces URL itself (`…/v1/traces`)."""
    base = endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else base + "/v1/traces"


def create_tracer_provider(
    *,
    service_version: str,
    otlp_endpoint: str | None = None,
    console: bool = False,
    exporter: SpanExporter | None = None,
    sample_ratio: float = 1.0,
) -> TracerProvider:
    """The process's tracer provider; never installed globally (passed where needed).

    `sample_ratio` below 1 records that share of traces (children follow their parent).
    Unsampled requests still get trace ids, so decisions still name their trace.
    """
    provider = LeanTracerProvider(
        resource=Resource.create(
            {"service.name": "consentgate", "service.version": service_version}
        ),
        # every trace at 1 (the ratio sampler's arithmetic costs a span about a microsecond)
        sampler=SAMPLE_ALL if sample_ratio >= 1 else ParentBased(TraceIdRatioBased(sample_ratio)),
    )
    if exporter is not None:
        provider.add_span_processor(PiiGuardProcessor(SimpleSpanProcessor(exporter)))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = otlp_traces_url(otlp_endpoint)
        provider.add_span_processor(
            PiiGuardProcessor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        )
    if console:
        provider.add_span_processor(PiiGuardProcessor(SimpleSpanProcessor(ConsoleSpanExporter())))
    return provider
