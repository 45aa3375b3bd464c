"""OpenTelemetry tracing: one provider, set up once, with a PII guard before every exporter.

Export goes over OTLP/HTTP when an endpoint is configured, to the console in debug, and
nowhere otherwise; tests pass their own exporter (the SDK's `InMemorySpanExporter`). Whatever
the exporter, spans pass the guard first: any string attribute (of the span or its events)
that a PII detector flags, or that equals a raw identifier, is scrubbed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from anonymization import Scrubber

Scrub = Callable[[str], str]


def _default_scrub(value: str) -> str:
    return Scrubber({}).text(value)


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


class PiiGuardExporter(SpanExporter):
    """Scrubs every span's attributes and events, then hands them to the real exporter."""

    def __init__(self, inner: SpanExporter, scrub: Scrub = _default_scrub) -> None:
        self._inner = inner
        self._scrub = scrub

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([self._guarded(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def _guarded(self, span: ReadableSpan) -> ReadableSpan:
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=scrub_attributes(span.attributes, self._scrub),
            events=[
                Event(
                    name=event.name,
                    attributes=scrub_attributes(event.attributes, self._scrub),
                    timestamp=event.timestamp,
                )
                for event in span.events
            ],
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )


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
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": "consentgate", "service.version": service_version}
        ),
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
    )
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(PiiGuardExporter(exporter)))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(
            BatchSpanProcessor(PiiGuardExporter(OTLPSpanExporter(endpoint=endpoint)))
        )
    if console:
        provider.add_span_processor(SimpleSpanProcessor(PiiGuardExporter(ConsoleSpanExporter())))
    return provider
