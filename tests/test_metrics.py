"""/metrics: Prometheus text with decisions, stage latencies, errors and bus lag; no PII labels."""

from __future__ import annotations

import re

import msgspec
import pytest
from litestar.testing import TestClient

from anonymization import KekSet
from gateway.app import create_app
from gateway.settings import Settings
from gateway.sources import CreatedSource
from observability import METRIC_NAMES
from tests.helpers import MakeSource, basic, bearer


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs in both shapes (tests/conftest.py, `shaped`)."""
    return shaped


Client = TestClient
_SAMPLE = re.compile(r"^([a-z_]+)(\{[^}]*\})? (\S+)$")


def _samples(text: str) -> dict[str, list[tuple[str, float]]]:
    found: dict[str, list[tuple[str, float]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a Prometheus sample: {line!r}"
        found.setdefault(match.group(1), []).append((match.group(2) or "", float(match.group(3))))
    return found


def test_metrics_count_decisions_latencies_and_errors(
    client: Client, make_source: MakeSource
) -> None:
    """Forwarded and dropped events by reason, stage histograms and HTTP errors are exported."""
    gdpr = make_source("m", "gdpr")
    consent = {"consent": {"categoryPreferences": {"analytics": True}}}
    client.post(
        "/v1/track",
        json={"userId": "a@b.io", "event": "x", "context": consent},
        headers=basic(gdpr.write_key),
    )
    client.post("/v1/track", json={"userId": "a@b.io", "event": "y"}, headers=basic(gdpr.write_key))
    client.post("/v1/track", json={"event": "no id"}, headers=basic(gdpr.write_key))
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    assert (
        set(samples) - {n + s for n in METRIC_NAMES for s in ("", "_bucket", "_sum", "_count")}
        == set()
    )
    events = dict(samples["consentgate_events_total"])
    assert any('action="forward"' in labels for labels in events)
    assert any('reason="no_consent_gdpr_opt_in"' in labels for labels in events)
    assert any(
        'stage="anonymize"' in labels
        for labels, _ in samples["consentgate_stage_duration_seconds_bucket"]
    )
    assert any(
        'code="no_user_anon_id"' in labels for labels, _ in samples["consentgate_http_errors_total"]
    )
    assert "a@b.io" not in response.text
    assert "p1_" not in response.text


def test_metrics_token_guards_the_endpoint(
    migrated: Settings, keks: KekSet, source: CreatedSource
) -> None:
    """With CONSENTGATE_METRICS_TOKEN set, /metrics needs it."""
    guarded = msgspec.structs.replace(migrated, metrics_token="s3cret-metrics")
    with TestClient(create_app(guarded, keks)) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=bearer("wrong")).status_code == 401
        assert client.get("/metrics", headers=bearer("s3cret-metrics")).status_code == 200


@pytest.mark.parametrize("name", ["consentgate_bus_lag_events", "consentgate_audit_verified"])
def test_gauges_are_exported(client: Client, name: str) -> None:
    """The bus-lag and audit-verification gauges are always there for alerts."""
    assert name in _samples(client.get("/metrics").text)


def test_every_documented_series_is_exported_from_the_start_with_help(
    client: TestClient,
) -> None:
    """Before any event: HELP and TYPE for every series, counters at zero (an alert on
    `consentgate_core_apply_failures_total` needs the series before its first failure)."""
    text = client.get("/metrics").text
    for name in METRIC_NAMES:
        assert f"# HELP {name} " in text, name
        assert f"# TYPE {name} " in text, name
    lines = text.splitlines()
    assert "consentgate_core_apply_failures_total 0" in lines
    assert "consentgate_http_errors_total 0" in lines
    assert "consentgate_stage_duration_seconds_count 0" in lines
