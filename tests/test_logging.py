"""Logs: JSON lines with trace ids, and no detected PII even when code logs it by mistake."""

from __future__ import annotations

import json

import pytest
import structlog
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from observability import configure_logging, create_tracer_provider


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
