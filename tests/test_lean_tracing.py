"""The lean tracer against the SDK's own: the same operations export the same spans."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from observability._lean_tracing import SAMPLE_ALL, LeanTracerProvider
from observability._tracing import trace_headers


class _CountingIds(IdGenerator):
    """Ids 1, 2, 3…: two providers given one each make the same ids in the same order."""

    def __init__(self) -> None:
        self._next = itertools.count(1)

    def generate_span_id(self) -> int:
        return next(self._next)

    def generate_trace_id(self) -> int:
        return next(self._next) << 64


def _pair(
    sampler: Sampler = SAMPLE_ALL,  # decided inline by the lean tracer: the SDK checks it
    limits: SpanLimits | None = None,
) -> list[tuple[TracerProvider, InMemorySpanExporter]]:
    made = []
    resource = Resource.create({"service.name": "test"})
    for kind in (TracerProvider, LeanTracerProvider):
        exporter = InMemorySpanExporter()
        provider = kind(
            sampler=sampler,
            resource=resource,
            id_generator=_CountingIds(),
            span_limits=limits or SpanLimits(),
            shutdown_on_exit=False,
        )
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        made.append((provider, exporter))
    return made


def _exported(span: ReadableSpan, event_times: bool) -> dict[str, Any]:
    """All a span exporter reads of a span, but its start and end times (and its events' when
    they were not given, and a recorded exception's stack, which names the tracer's frames)."""
    return {
        "name": span.name,
        "context": span.context,
        "parent": span.parent,
        "kind": span.kind,
        "attributes": list(span.attributes.items()),  # order too
        "dropped_attributes": span.dropped_attributes,
        "events": [
            (
                e.name,
                [
                    (k, v.splitlines()[-1] if k == "exception.stacktrace" else v)
                    for k, v in e.attributes.items()
                ],
                e.timestamp if event_times else None,
                e.dropped_attributes,
            )
            for e in span.events
        ],
        "dropped_events": span.dropped_events,
        "links": [(link.context, list(link.attributes.items())) for link in span.links],
        "dropped_links": span.dropped_links,
        "status": (span.status.status_code, span.status.description),
        "resource": span.resource.attributes,
        "scope": span.instrumentation_scope,
    }


def _same_spans(
    run: Callable[[trace_api.Tracer], object], event_times: bool = False, **pair: Any
) -> list[dict[str, Any]]:
    results = []
    for provider, exporter in _pair(**pair):
        run(provider.get_tracer("consentgate.test", "1"))
        results.append([_exported(span, event_times) for span in exporter.get_finished_spans()])
    sdk, lean = results
    assert len(lean) == len(sdk)
    for ours, theirs in zip(lean, sdk, strict=True):
        assert {k: v for k, v in ours.items() if theirs[k] != v} == {}, theirs
    return lean


_KEYS = st.sampled_from(["a", "b", "c", "consentgate.events", "", "d"])
_PLAIN_VALUES = st.one_of(
    st.text(max_size=12), st.integers(), st.floats(allow_nan=False), st.booleans()
)
_VALUES = st.one_of(
    _PLAIN_VALUES,
    st.none(),
    st.binary(max_size=4),
    st.lists(_PLAIN_VALUES, max_size=3),
    st.dictionaries(st.text(max_size=3), _PLAIN_VALUES, max_size=2),
    st.just(object()),  # no str of its own: replaced by None
    st.just(SpanKind.SERVER),  # has one: its str
)
_OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("set_attribute"), _KEYS, _VALUES),
        st.tuples(st.just("set_attributes"), st.dictionaries(_KEYS, _VALUES, max_size=4)),
        st.tuples(
            st.just("add_event"),
            st.text(max_size=5),
            st.dictionaries(_KEYS, _VALUES, max_size=3),
            st.integers(min_value=1, max_value=2**40),
        ),
        st.tuples(
            st.just("set_status"),
            st.sampled_from(list(StatusCode)),
            st.one_of(st.none(), st.text(max_size=5)),
            st.booleans(),  # as a Status object, or a code and a description
        ),
        st.tuples(st.just("update_name"), st.text(max_size=8)),
        st.tuples(
            st.just("add_link"),
            st.booleans(),  # a valid context or not
            st.dictionaries(_KEYS, _PLAIN_VALUES, max_size=2),
        ),
        st.tuples(st.just("end")),
    ),
    max_size=14,
)
_LIMITS = st.builds(
    SpanLimits,
    max_span_attributes=st.one_of(st.none(), st.integers(0, 4)),
    max_span_attribute_length=st.one_of(st.none(), st.integers(0, 6)),
    max_events=st.one_of(st.none(), st.integers(0, 2)),
    max_links=st.one_of(st.none(), st.integers(0, 2)),
    max_event_attributes=st.one_of(st.none(), st.integers(0, 2)),
    max_link_attributes=st.one_of(st.none(), st.integers(0, 2)),
    max_attribute_length=st.one_of(st.none(), st.integers(0, 6)),
)


def _apply(span: trace_api.Span, operation: tuple[Any, ...]) -> None:
    name, *arguments = operation
    if name == "set_status":
        code, description, as_status = arguments
        if as_status:
            span.set_status(Status(code, description))
        else:
            span.set_status(code, description)
    elif name == "add_event":
        event_name, attributes, timestamp = arguments
        span.add_event(event_name, attributes, timestamp)
    elif name == "add_link":
        valid, attributes = arguments
        context = (
            SpanContext(7 << 64, 9, is_remote=True) if valid else trace_api.INVALID_SPAN_CONTEXT
        )
        span.add_link(context, attributes)
    else:
        getattr(span, name)(*arguments)


@settings(max_examples=300, deadline=None)
@example(  # OK is final
    operations=[
        ("set_status", StatusCode.OK, None, True),
        ("set_status", StatusCode.ERROR, "x", 0),
    ],
    limits=SpanLimits(),
    start_attributes={},
)
@given(
    operations=_OPERATIONS,
    limits=_LIMITS,
    start_attributes=st.dictionaries(_KEYS, _VALUES, max_size=3),
)
def test_a_span_exports_as_the_sdks_does(
    operations: list[tuple[Any, ...]], limits: SpanLimits, start_attributes: dict[str, Any]
) -> None:
    def run(tracer: trace_api.Tracer) -> None:
        span = tracer.start_span("request", Context(), SpanKind.SERVER, start_attributes)
        for operation in operations:
            _apply(span, operation)
        span.end()

    _same_spans(run, event_times=True, limits=limits)


def test_current_spans_nest_and_record_an_error_as_the_sdks_do() -> None:
    def run(tracer: trace_api.Tracer) -> None:
        with tracer.start_as_current_span("outer", kind=SpanKind.SERVER) as outer:
            outer.set_attribute("consentgate.events", 3)
            with pytest.raises(ValueError, match="boom"), tracer.start_as_current_span("inner"):
                raise ValueError("boom")
            with (
                pytest.raises(KeyError),
                tracer.start_as_current_span(
                    "quiet", record_exception=False, set_status_on_exception=False
                ),
            ):
                raise KeyError("no")
        assert trace_api.get_current_span() is trace_api.INVALID_SPAN

    spans = _same_spans(run)
    inner, quiet, outer = spans
    assert inner["parent"] == outer["context"] == quiet["parent"]
    assert inner["status"] == (StatusCode.ERROR, "ValueError: boom")
    assert inner["events"][0][0] == "exception"
    assert quiet["status"] == (StatusCode.UNSET, None)
    assert quiet["events"] == []


def test_a_span_joins_the_callers_trace_and_follows_its_sampling() -> None:
    propagator = TraceContextTextMapPropagator()
    sampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"

    def run(tracer: trace_api.Tracer) -> None:
        for traceparent in (sampled, unsampled):
            carrier = {"traceparent": traceparent, "tracestate": "vendor=1"}
            with tracer.start_as_current_span("joined", propagator.extract(carrier)) as span:
                headers = trace_headers(span)
                injected: dict[str, str] = {}
                propagator.inject(injected)
                assert headers == injected  # what the core reads, as the propagator writes it
                assert headers["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")

    (joined,) = _same_spans(run)  # the unsampled caller's span is not recorded
    assert joined["parent"].span_id == 0xB7AD6B7169203331
    assert joined["context"].trace_id == 0x0AF7651916CD43DD8448EB211C80319C


@pytest.mark.parametrize("sampler", [ALWAYS_OFF, ParentBased(TraceIdRatioBased(0))])
def test_an_unsampled_request_still_has_a_trace_id(sampler: Sampler) -> None:
    """Decisions name their trace whether or not it is sampled."""

    def run(tracer: trace_api.Tracer) -> None:
        with tracer.start_as_current_span("request") as span:
            context = span.get_span_context()
            assert context.is_valid
            assert not context.trace_flags.sampled
            assert not span.is_recording()
            assert trace_headers(span)["traceparent"].endswith("-00")

    assert _same_spans(run, sampler=sampler) == []


def test_links_at_start_and_a_disabled_sdk() -> None:
    link = Link(SpanContext(5 << 64, 6, is_remote=True, trace_flags=TraceFlags(1)), {"k": "v"})

    def run(tracer: trace_api.Tracer) -> None:
        tracer.start_span(
            "linked", Context(), links=[link, Link(trace_api.INVALID_SPAN_CONTEXT)]
        ).end()

    (linked,) = _same_spans(run)
    assert linked["links"] == [(link.context, [("k", "v")])]


def test_a_disabled_sdk_hands_out_no_op_tracers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    tracer = LeanTracerProvider(shutdown_on_exit=False).get_tracer("x")
    assert isinstance(tracer, trace_api.NoOpTracer)


def test_as_a_decorator_each_call_gets_its_own_span() -> None:
    def run(tracer: trace_api.Tracer) -> None:
        @tracer.start_as_current_span("work")
        def work() -> int:
            return trace_api.get_current_span().get_span_context().span_id

        assert work() != work()

    assert len(_same_spans(run)) == 2
