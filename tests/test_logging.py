"""Logs: JSON lines with trace ids, and no detected PII even when code logs it by mistake."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from observability import configure_logging, create_tracer_provider
from observability._tracing import otlp_traces_url


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """configure_logging takes over the root logger; give it back after each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers, root.level = handlers, level
    structlog.reset_defaults()


def test_log_lines_carry_trace_ids_and_no_pii(capsys: pytest.CaptureFixture[str]) -> None:
    """A line inside a span names its trace; an e-mail or card logged by mistake is scrubbed."""
    configure_logging("info", "json")
    try:
        tracer = create_tracer_provider(
            service_version="t", exporter=InMemorySpanExporter()
        ).get_tracer("t")
        with tracer.start_as_current_span("work") as span:
            structlog.get_logger("t").info(
                "oops", note="from leak@example.org", card=["4111 1111 1111 1111"]
            )
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    finally:
        structlog.reset_defaults()
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert line["note"] == "from [email]"
    assert line["card"] == ["[card]"]


def test_library_log_records_are_json_lines_too(capsys: pytest.CaptureFixture[str]) -> None:
    """The OTLP exporter's retry warnings (stdlib logging) come out as JSON lines with the
    rest, scrubbed the same way, instead of breaking the stream."""
    configure_logging("info", "json")
    logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter").warning(
        "Transient error %s encountered while exporting span batch, retrying in %ss.",
        "HTTPConnectionPool(host='collector', port=4318) for leak@example.org",
        1,
    )
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["level"] == "warning"
    assert line["logger"] == "opentelemetry.exporter.otlp.proto.http.trace_exporter"
    assert line["event"].startswith("Transient error HTTPConnectionPool")
    assert "leak@example.org" not in line["event"]


@pytest.mark.parametrize(
    "given", ["http://collector:4318", "http://collector:4318/", "http://collector:4318/v1/traces"]
)
def test_an_otlp_endpoint_is_taken_as_a_base_or_as_the_traces_url(given: str) -> None:
    assert otlp_traces_url(given) == "http://collector:4318/v1/traces"
