"""Per-write-key rate limits (429 + Retry-After), per-source origins, and CORS on ingestion."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from anonymization import KekSet
from gateway.app import create_app
from gateway.database import open_database
from gateway.edge import EdgeConfig, EdgeConfigError, RateLimiter, load_edge_config
from gateway.errors import TooManyRequests
from gateway.settings import Settings
from gateway.sources import CreatedSource, create_source
from tests.helpers import basic, bearer, profile_when


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs in both shapes (tests/conftest.py, `shaped`)."""
    return shaped


Client = TestClient
EVENT = {"userId": "u", "event": "Clicked"}


def _source(settings: Settings, edge: dict[str, Any]) -> CreatedSource:
    async def create() -> CreatedSource:
        database = open_database(settings.database_url)
        try:
            return await create_source(database, "edge", "none", edge_config=edge)
        finally:
            await database.dispose()

    return asyncio.run(create())


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_the_burst_then_refills_at_the_rate() -> None:
    """A bucket lets `burst` requests through, then one per 1/rate seconds."""
    clock = _Clock()
    limiter = RateLimiter(2.0, 3, clock=clock)
    for _ in range(3):
        limiter.admit("src", EdgeConfig())
    with pytest.raises(TooManyRequests) as refused:
        limiter.admit("src", EdgeConfig())
    assert refused.value.retry_after == 1
    clock.now += 0.5
    limiter.admit("src", EdgeConfig())
    with pytest.raises(TooManyRequests):
        limiter.admit("src", EdgeConfig())
    limiter.admit("other", EdgeConfig())  # buckets are per key


def test_a_source_overrides_the_defaults_and_zero_means_no_limit() -> None:
    """A source's own rate and burst win; a rate of 0 turns the limit off."""
    clock = _Clock()
    limiter = RateLimiter(1000.0, 1000, clock=clock)
    tight = EdgeConfig(rate_limit_per_second=1, rate_limit_burst=1)
    limiter.admit("a", tight)
    with pytest.raises(TooManyRequests):
        limiter.admit("a", tight)
    for _ in range(5000):
        limiter.admit("b", EdgeConfig(rate_limit_per_second=0))


def test_invalid_edge_configuration_is_refused() -> None:
    """Bad origins or negative rates are refused with the field named."""
    with pytest.raises(EdgeConfigError, match="allowed_origins"):
        load_edge_config({"allowed_origins": ["not an origin"]})
    with pytest.raises(EdgeConfigError, match="rate_limit_per_second"):
        load_edge_config({"rate_limit_per_second": -1})


def test_over_the_limit_gets_429_with_retry_after(client: Client, migrated: Settings) -> None:
    """Past its burst a write key gets 429 rate_limited with Retry-After; others are unaffected."""
    tight = _source(migrated, {"rate_limit_per_second": 0.5, "rate_limit_burst": 3})
    other = _source(migrated, {})
    answers = [
        client.post("/v1/track", headers=basic(tight.write_key), json=EVENT) for _ in range(5)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert answers[3].json()["error"] == "rate_limited"
    assert int(answers[3].headers["retry-after"]) >= 1
    assert client.post("/v1/track", headers=basic(other.write_key), json=EVENT).status_code == 200


def test_origins_outside_the_sources_list_get_403(client: Client, migrated: Settings) -> None:
    """A source with allowed origins refuses other origins; server SDKs send no Origin."""
    narrow = _source(migrated, {"allowed_origins": ["https://app.example"]})
    headers = basic(narrow.write_key)
    ok = client.post("/v1/track", headers={**headers, "Origin": "https://app.example"}, json=EVENT)
    assert ok.status_code == 200
    bad = client.post(
        "/v1/track", headers={**headers, "Origin": "https://evil.example"}, json=EVENT
    )
    assert bad.status_code == 403
    assert bad.json()["error"] == "origin_not_allowed"
    assert client.post("/v1/track", headers=headers, json=EVENT).status_code == 200


def test_ingestion_preflight_allows_any_origin_without_credentials(client: Client) -> None:
    """A preflight on an ingestion path is answered for any origin, cached, no credentials."""
    response = client.options(
        "/v1/batch",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "authorization" in response.headers["access-control-allow-headers"]
    assert int(response.headers["access-control-max-age"]) >= 600
    assert "access-control-allow-credentials" not in response.headers


def test_ingestion_responses_carry_cors_errors_included(
    client: Client, source: CreatedSource
) -> None:
    """Events and their errors are readable cross-origin (the page sees why it failed)."""
    origin = {"Origin": "https://shop.example"}
    sent = client.post("/v1/t", headers={**origin, **basic(source.write_key)}, json=EVENT)
    assert sent.headers["access-control-allow-origin"] == "*"
    refused = client.post("/v1/track", headers=origin, json=EVENT)
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize("path", ["/v1/consent/u1", "/v1/me/consent", "/v1/audit", "/healthz"])
def test_other_paths_stay_same_origin(client: Client, source: CreatedSource, path: str) -> None:
    """No CORS header outside ingestion: a preflight there is not granted."""
    preflight = client.options(
        path, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert "access-control-allow-origin" not in preflight.headers
    read = client.get(path, headers={"Origin": "https://evil.example", **bearer("sk_x")})
    assert "access-control-allow-origin" not in read.headers


def test_profile_maps_are_capped_and_counted(
    migrated: Settings, keks: KekSet, source: CreatedSource
) -> None:
    """10,000 invented event names cannot grow a profile: past the cap they count as (other),
    and /metrics says how many were folded."""
    settings = msgspec.structs.replace(migrated, profile_max_keys=10)
    with TestClient(create_app(settings, keks)) as client:
        batch = [{"type": "track", "userId": "u", "event": f"e{index}"} for index in range(25)]
        sent = client.post("/v1/batch", headers=basic(source.write_key), json={"batch": batch})
        assert sent.status_code == 200
        profile = profile_when(client, source, "u", 25)
        assert len(profile["computed"]["event_counts"]) == 11
        assert profile["computed"]["event_counts"]["(other)"] == 15
        metrics = client.get("/metrics").text
        assert 'consentgate_profile_keys_capped_total{map="event_counts"} 15' in metrics
