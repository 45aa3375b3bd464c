"""Request ids, and the telemetry guards' knowledge of the request's raw identifiers."""

from __future__ import annotations

import json
import re

import pytest
import structlog
from litestar.testing import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.settings import Settings
from gateway.sources import CreatedSource
from observability import (
    configure_logging,
    create_tracer_provider,
    remember_raw_identifiers,
    request_scope,
)
from tests.helpers import basic, bearer, dump_database, wait_for

Client = TestClient
RAW_ID = "plain-user-7f3a9c"  # nothing a PII detector would flag


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs in both shapes (tests/conftest.py, `shaped`): the canaries are
    searched in PostgreSQL's rows too."""
    return shaped


def test_span_guard_scrubs_the_requests_raw_identifiers(exported: InMemorySpanExporter) -> None:
    """A raw identifier of the request, whole or inside text, never leaves on a span."""
    tracer = create_tracer_provider(service_version="t", exporter=exported).get_tracer("t")
    with request_scope("req-1"):
        remember_raw_identifiers([RAW_ID, "u7", None])
        with tracer.start_as_current_span(f"lookup {RAW_ID}") as span:
            span.set_attribute("user", RAW_ID)
            span.set_attribute("short", "u7")
            span.add_event("retry", {"detail": f"no profile for {RAW_ID} yet"})
    with tracer.start_as_current_span("outside") as span:
        span.set_attribute("user", RAW_ID)
    guarded, outside = exported.get_finished_spans()
    assert RAW_ID not in guarded.to_json()
    assert guarded.name == "lookup [identifier]"
    assert guarded.attributes["user"] == "[identifier]"
    assert guarded.attributes["short"] == "[identifier]"
    assert guarded.events[0].attributes["detail"] == "no profile for [identifier] yet"
    # outside any request the guard has no identifiers to look for (the detectors still run)
    assert outside.attributes["user"] == RAW_ID


def test_log_guard_scrubs_the_requests_raw_identifiers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A log line written while serving a request carries its id and none of its raw ids."""
    configure_logging("info", "json")
    try:
        with request_scope("req-2"):
            remember_raw_identifiers([RAW_ID])
            structlog.get_logger("t").info("oops", user=RAW_ID, ids=[f"x {RAW_ID}"])
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    finally:
        structlog.reset_defaults()
    assert line["request_id"] == "req-2"
    assert line["user"] == "[identifier]"
    assert line["ids"] == ["x [identifier]"]


def test_request_ids_are_echoed_or_made(client: Client, source: CreatedSource) -> None:
    """A plain X-Request-Id comes back as sent; anything else is replaced by a new id."""
    given = client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = client.get("/healthz")
    assert len(made.headers["x-request-id"]) == 32
    hostile = client.get("/healthz", headers={"X-Request-Id": f"{RAW_ID} <script>"})
    assert hostile.headers["x-request-id"] != f"{RAW_ID} <script>"
    ingest = client.post(
        "/v1/track",
        json={"userId": "u", "event": "E"},
        headers={**basic(source.write_key), "X-Request-Id": "ingest-9"},
    )
    assert ingest.headers["x-request-id"] == "ingest-9"


def test_root_spans_carry_the_request_id(
    traced: Client, source: CreatedSource, exported: InMemorySpanExporter
) -> None:
    """The ingest root span and other routes' server spans name the request id."""
    traced.post(
        "/v1/track",
        json={"userId": RAW_ID, "event": "E"},
        headers={**basic(source.write_key), "X-Request-Id": "req-ingest"},
    )
    traced.get(
        f"/v1/consent/{RAW_ID}",
        headers={**bearer(source.server_key), "X-Request-Id": "req-consent"},
    )
    wait_for(lambda: any(s.name == "core.apply" for s in exported.get_finished_spans()) or None)
    by_name = {s.name: s for s in exported.get_finished_spans()}
    assert by_name["HTTP POST /v1/track"].attributes["consentgate.request_id"] == "req-ingest"
    consent = by_name["HTTP GET /v1/consent/{user_id:str}"]
    assert consent.attributes["consentgate.request_id"] == "req-consent"
    assert RAW_ID not in "".join(s.to_json() for s in exported.get_finished_spans())
    metrics = traced.get("/metrics").text
    assert RAW_ID not in metrics


def test_canaries_reach_no_span_metric_label_log_line_or_row(
    traced: Client,
    source: CreatedSource,
    exported: InMemorySpanExporter,
    migrated: Settings,
    auditor: dict[str, str],
) -> None:
    """Canaries planted in events, in paths, queries and bodies, and in error paths: every
    exported span, every /metrics line, every log line and every database row (privacy
    requests and the audit log included) is free of them."""
    canary_id, canary_mail = "canary-raw-5e6f7a", "canary.person@example.net"
    server, write = bearer(source.server_key), basic(source.write_key)
    with structlog.testing.capture_logs() as logs:
        batch = [
            {"type": "identify", "userId": canary_id, "traits": {"email": canary_mail}},
            {"type": "track", "userId": canary_id, "event": f"Mailed {canary_mail}"},
            {"type": "group", "userId": canary_id, "groupId": f"{canary_id}-g"},
        ]
        traced.post("/v1/batch", json={"batch": batch}, headers=write)
        traced.post("/v1/batch", json={"batch": [{"type": canary_id}]}, headers=write)
        traced.post("/v1/track", json={"userId": [canary_mail]}, headers=write)
        traced.put(f"/v1/consent/{canary_id}", json={"purposes": {canary_id: True}}, headers=server)
        traced.get(f"/v1/consent/{canary_mail}/history", headers=server)
        traced.get(f"/v1/profiles/{canary_id}", headers={"Authorization": f"Bearer {canary_id}"})
        traced.post(
            "/v1/privacy/requests", json={"type": "access", "userId": canary_id}, headers=server
        )
        traced.post(
            "/v1/privacy/requests", json={"type": canary_id, "userId": canary_id}, headers=server
        )
        traced.get("/v1/decisions", params={"userId": canary_id})
        # the personalization reads: query parameters and an OFREP context
        traced.get("/v1/profiles", params={"anonymousId": canary_id}, headers=server)
        traced.get(
            "/v1/personalize", params={"flow": "x", "anonymousId": canary_mail}, headers=server
        )
        traced.post(
            "/ofrep/v1/evaluate/flags/nope",
            json={"context": {"targetingKey": canary_id}},
            headers=server,
        )
        # the privacy center: a token for the canary user, its page, its forms, a forged link
        minted = traced.post("/v1/tokens", json={"userId": canary_id}, headers=server).json()
        traced.get("/privacy", params={"token": minted["token"]})
        csrf = re.findall(r'name="csrf" value="([^"]+)"', traced.get("/privacy").text)[0]
        form = {"csrf": csrf, "shown": ["analytics"], "granted": ["analytics"]}
        traced.post("/privacy/consent", data=form)
        traced.post("/privacy/requests", data={"csrf": csrf, "type": "access"})
        traced.post("/privacy/requests", data={"csrf": csrf, "type": canary_mail})
        traced.get("/privacy", params={"token": canary_mail})
        # the banner: choices for canary anonymousIds; the console: a lookup of the canary
        for anonymous, purpose in ((canary_mail, "analytics"), (canary_id, canary_mail)):
            choice = {"anonymousId": anonymous, "purposes": {purpose: True}}
            traced.post("/v1/consent/banner", json=choice, headers=write)
        signin = re.findall(r'name="csrf" value="([^"]+)"', traced.get("/console").text)[0]
        staff = auditor["Authorization"].removeprefix("Bearer ")
        traced.post("/console/signin", data={"csrf": signin, "token": staff})
        assert "Signed in as auditor" in traced.get("/console/lookup", params={"q": canary_id}).text
        traced.get("/console/lookup", params={"q": canary_mail})
        traced.post("/console/signin", data={"csrf": signin, "token": canary_mail})
        wait_for(lambda: any(s.name == "core.apply" for s in exported.get_finished_spans()) or None)
        metrics = traced.get("/metrics").text
    spans = "".join(s.to_json() for s in exported.get_finished_spans())
    rows = dump_database(migrated.database_url)
    assert "privacy_center" in rows  # the page's consent choice was recorded
    assert "privacy_request.received" in rows  # the access request was recorded
    assert "banner" in rows  # the banner's choice was recorded
    assert "console.lookup" in rows  # and the console's lookup audited
    for sink in (spans, metrics, repr(logs), rows):
        assert canary_id not in sink
        assert canary_mail not in sink
