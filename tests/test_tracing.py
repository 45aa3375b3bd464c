"""Tracing: one trace from the HTTP request to the core, and no PII in any exported span."""

from __future__ import annotations

from litestar.testing import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.sources import CreatedSource
from observability import create_tracer_provider
from tests.helpers import basic, bearer, wait_for

Client = TestClient
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def test_one_trace_from_request_to_profile_update(
    traced: Client, source: CreatedSource, exported: InMemorySpanExporter
) -> None:
    """The request continues the caller's trace, with its stages' times; the core's spans
    join it."""
    batch = {"batch": [{"type": "track", "userId": "t1", "event": "Traced"}]}
    headers = {**basic(source.write_key), "traceparent": TRACEPARENT}
    assert traced.post("/v1/batch", json=batch, headers=headers).status_code == 200
    wait_for(
        lambda: True if any(s.name == "core.apply" for s in exported.get_finished_spans()) else None
    )
    spans = {s.name: s for s in exported.get_finished_spans()}
    assert {"HTTP POST /v1/batch", "core.apply"} <= set(spans)
    for span in spans.values():
        assert format(span.context.trace_id, "032x") == TRACE_ID
    root = spans["HTTP POST /v1/batch"]
    # one span per request: each stage's time is an attribute of it
    stages = ("authenticate", "validate", "consent.lookup", "consent", "anonymize", "forward")
    for stage in (*stages, "record"):
        timed = (root.attributes or {}).get(f"consentgate.stage.{stage}.ms")
        assert isinstance(timed, float), stage
        assert timed >= 0, stage
    assert spans["core.apply"].parent.span_id == root.context.span_id
    assert root.resource.attributes["service.name"] == "consentgate"


def test_decisions_carry_the_trace_id(
    traced: Client,
    source: CreatedSource,
    auditor: dict[str, str],
) -> None:
    """A decision names the trace of the request it was made in."""
    headers = {**basic(source.write_key), "traceparent": TRACEPARENT}
    traced.post("/v1/track", json={"userId": "t2", "event": "E"}, headers=headers)
    items = wait_for(
        lambda: (
            traced.get(
                "/v1/decisions", params={"source_id": source.source_id}, headers=auditor
            ).json()["items"]
            or None
        )
    )
    assert items[0]["trace_id"] == TRACE_ID


def test_no_pii_or_raw_identifier_in_any_span(
    traced: Client, source: CreatedSource, exported: InMemorySpanExporter
) -> None:
    """Canaries planted in events and in an error path reach no exported span."""
    canary_email = "span.canary@example.org"
    batch = {
        "batch": [
            {"type": "identify", "userId": "span-user-canary", "traits": {"email": canary_email}},
            {"type": "track", "userId": "span-user-canary", "event": f"Mail {canary_email}"},
        ]
    }
    traced.post("/v1/batch", json=batch, headers=basic(source.write_key))
    traced.post("/v1/track", json={"userId": [canary_email]}, headers=basic(source.write_key))
    bad_type = {"batch": [{"type": "span-user-canary", "userId": "x"}]}
    assert (
        traced.post("/v1/batch", json=bad_type, headers=basic(source.write_key)).status_code == 400
    )
    wait_for(
        lambda: True if any(s.name == "core.apply" for s in exported.get_finished_spans()) else None
    )
    dumped = "".join(span.to_json() for span in exported.get_finished_spans())
    assert canary_email not in dumped
    assert "span-user-canary" not in dumped
    errors = [s for s in exported.get_finished_spans() if s.attributes.get("consentgate.error")]
    assert {s.attributes["consentgate.error"] for s in errors} == {"invalid_event"}


def test_the_guard_scrubs_attributes_and_events(exported: InMemorySpanExporter) -> None:
    """Whatever code puts on a span, detected PII is gone before any exporter sees it."""
    tracer = create_tracer_provider(service_version="test", exporter=exported).get_tracer("t")
    with tracer.start_as_current_span("leaky") as span:
        span.set_attribute("note", "write to leak@example.org or +14155550123")
        span.set_attribute("ids", ["ok", "card 4111 1111 1111 1111"])
        span.add_event("oops", {"detail": "ssn 123-45-6789"})
    with tracer.start_as_current_span("mail leak@example.org") as span:  # the name alone
        span.set_attribute("fine", "nothing here")
    with tracer.start_as_current_span("clean") as span:  # an event alone
        span.set_attribute("fine", "nothing here")
        span.add_event("oops", {"detail": "ssn 123-45-6789"})
    with tracer.start_as_current_span("clean") as span:  # nothing: exported as it ended
        span.set_attribute("fine", "nothing here")
    leaky, named, evented, clean = exported.get_finished_spans()
    assert leaky.attributes["note"] == "write to [email] or [phone]"
    assert leaky.attributes["ids"] == ("ok", "card [card]")
    assert leaky.events[0].attributes["detail"] == "ssn [ssn]"
    assert (named.name, dict(named.attributes or {})) == ("mail [email]", {"fine": "nothing here"})
    assert evented.events[0].attributes["detail"] == "ssn [ssn]"
    fine = {"fine": "nothing here"}
    assert dict(evented.attributes or {}) == dict(clean.attributes or {}) == fine


def test_other_routes_get_a_server_span_named_by_template(
    traced: Client, source: CreatedSource, exported: InMemorySpanExporter
) -> None:
    """Consent and profile reads are traced too, named by route template, never by user id."""
    headers = {**bearer(source.server_key), "traceparent": TRACEPARENT}
    traced.get("/v1/consent/raw-user-in-path", headers=headers)
    traced.get("/v1/profiles/raw-user-in-path", headers=headers)
    spans = [s for s in exported.get_finished_spans() if s.name.startswith("HTTP GET")]
    names = {s.name for s in spans}
    assert names == {"HTTP GET /v1/consent/{user_id:str}", "HTTP GET /v1/profiles/{user_id:str}"}
    assert all(format(s.context.trace_id, "032x") == TRACE_ID for s in spans)
    statuses = {
        s.attributes["http.route"]: s.attributes["http.response.status_code"] for s in spans
    }
    assert statuses["/v1/profiles/{user_id:str}"] == 404
    assert "raw-user-in-path" not in "".join(s.to_json() for s in exported.get_finished_spans())


def test_the_guard_passes_flush_and_shutdown_to_its_processor() -> None:
    """Spans still queued in the processor behind the guard are exported on a flush and on
    shutdown (what a stopping server relies on)."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from observability import PiiGuardProcessor

    exporter = InMemorySpanExporter()
    provider = create_tracer_provider(service_version="test")
    provider.add_span_processor(
        PiiGuardProcessor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    )
    with provider.get_tracer("t").start_as_current_span("queued"):
        pass
    assert exporter.get_finished_spans() == ()
    assert provider.force_flush()
    assert [span.name for span in exporter.get_finished_spans()] == ["queued"]
    with provider.get_tracer("t").start_as_current_span("at shutdown"):
        pass
    provider.shutdown()
    assert [span.name for span in exporter.get_finished_spans()][-1] == "at shutdown"
