"""The consent banner's server side: the script and its size, what it asks, and recording a
visitor's choice for an anonymousId only (a write key is public). The banner's behaviour in a
browser is in tests/e2e/test_browser.py."""

from __future__ import annotations

import asyncio
import gzip
import re

import pytest
from litestar.testing import TestClient

from gateway.database import open_database
from gateway.settings import Settings
from gateway.sources import CreatedSource, create_source
from tests.helpers import basic, bearer

Client = TestClient


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs in both shapes (tests/conftest.py, `shaped`)."""
    return shaped


def test_the_script_is_small_first_party_and_embeddable(client: Client) -> None:
    script = client.get("/consent.js")
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.headers["cross-origin-resource-policy"] == "cross-origin"
    assert len(gzip.compress(script.content, 9)) < 15 * 1024
    code = re.sub(r"/\*.*?\*/", "", script.text, flags=re.S)  # the usage comment names a URL
    assert not re.search(r"https?://", code)  # loads nothing from any other host
    assert "eval(" not in code
    assert "innerHTML" not in code  # text only: a purpose's description cannot inject markup
    style = client.get("/pages/banner.css")
    assert style.headers["content-type"].startswith("text/css")


def test_the_banner_asks_the_sources_consent_purposes(client: Client, make_source: object) -> None:
    source = make_source("shop", "ccpa")  # type: ignore[operator]
    assert client.get("/v1/banner").status_code == 401
    config = client.get("/v1/banner", headers=basic(source.write_key)).json()
    assert config["jurisdiction"] == "ccpa"
    asked = {p["key"]: p["asks_consent"] for p in config["purposes"]}
    assert asked["necessary"] is False
    assert asked["analytics"] is True
    assert config["do_not_sell"] == ["sale_sharing", "marketing"]
    assert client.get("/v1/banner", headers=bearer(source.server_key)).status_code == 401


def test_a_choice_is_recorded_for_the_anonymous_id_and_governs_its_events(
    client: Client, make_source: object
) -> None:
    source: CreatedSource = make_source("gdpr-app", "gdpr")  # type: ignore[operator]
    writer = basic(source.write_key)
    event = {"anonymousId": "anon-banner-1", "event": "Viewed"}
    assert client.post("/v1/track", headers=writer, json=event).json() == {"success": True}
    recorded = client.post(
        "/v1/consent/banner",
        headers=writer,
        json={"anonymousId": "anon-banner-1", "purposes": {"analytics": True, "marketing": False}},
    )
    assert recorded.status_code == 200, recorded.text
    receipt = recorded.json()["receipt"]
    assert receipt["collection_method"] == "banner"
    assert "anon-banner-1" not in recorded.text  # the receipt names the pseudonym
    assert {r["purpose"]: r["granted"] for r in receipt["records"]} == {
        "analytics": True,
        "marketing": False,
    }
    client.post("/v1/track", headers=writer, json=event)
    decisions = client.get(
        "/v1/consent/history", params={"userId": "anon-banner-1"}, headers=bearer(source.server_key)
    ).json()
    assert [r["source"] for r in decisions["records"]] == ["banner", "banner"]


def test_bad_choices_are_refused_and_change_nothing(client: Client, source: CreatedSource) -> None:
    writer = basic(source.write_key)
    cases = [
        ({"userId": "u", "anonymousId": "a", "purposes": {"analytics": True}}, "userId"),
        ({"anonymousId": "a", "purposes": {"necessary": False}}, "necessary"),
        ({"anonymousId": "a", "purposes": {"astrology": True}}, "astrology"),
        ({"anonymousId": "a", "purposes": {}}, "purposes"),
        ({"anonymousId": "", "purposes": {"analytics": True}}, "anonymousId"),
    ]
    for body, named in cases:
        refused = client.post("/v1/consent/banner", headers=writer, json=body)
        assert refused.status_code == 400, body
        assert named in refused.json()["detail"], refused.json()
    assert client.post("/v1/consent/banner", json=cases[1][0]).status_code == 401
    history = client.get(
        "/v1/consent/history", params={"userId": "a"}, headers=bearer(source.server_key)
    ).json()
    assert history["records"] == []


def test_the_banner_takes_the_sources_origins_and_preflights(
    client: Client, migrated: Settings
) -> None:
    async def create() -> CreatedSource:
        database = open_database(migrated.database_url)
        try:
            edge = {"allowed_origins": ["https://shop.example"]}
            return await create_source(database, "edge", "gdpr", edge_config=edge)
        finally:
            await database.dispose()

    source = asyncio.run(create())
    writer = basic(source.write_key)
    other = client.get("/v1/banner", headers={**writer, "Origin": "https://evil.example"})
    assert other.status_code == 403
    ours = client.get("/v1/banner", headers={**writer, "Origin": "https://shop.example"})
    assert ours.status_code == 200
    assert ours.headers["access-control-allow-origin"] == "*"
    preflight = client.options(
        "/v1/consent/banner",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 204
    assert "authorization" in preflight.headers["access-control-allow-headers"]
