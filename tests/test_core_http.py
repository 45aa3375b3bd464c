"""The core over HTTP: stitched profiles, consent changes and opt-outs reaching the core, and
erasure leaving no personalization row."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from gateway.settings import Settings
from gateway.sources import CreatedSource
from tests.helpers import (
    basic,
    bearer,
    completed_privacy_request,
    dump_database,
    dump_table,
    wait_for,
)

Client = TestClient


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs in both shapes (tests/conftest.py, `shaped`)."""
    return shaped


def _profile(client: Client, source: CreatedSource, **query: str) -> dict[str, Any] | None:
    found = client.get("/v1/profiles", params=query, headers=bearer(source.server_key))
    return found.json() if found.status_code == 200 else None


def _profile_once(
    client: Client, source: CreatedSource, holds: Any, **query: str
) -> dict[str, Any]:
    """The profile once `holds(profile)` is true."""

    def probe() -> dict[str, Any] | None:
        profile = _profile(client, source, **query)
        return profile if profile is not None and holds(profile) else None

    return wait_for(probe)


def _track(client: Client, source: CreatedSource, **event: Any) -> None:
    answer = client.post("/v1/track", headers=basic(source.write_key), json=event)
    assert answer.status_code == 200, answer.text


def test_identify_merges_the_anonymous_profile_into_the_users(
    client: Client, source: CreatedSource
) -> None:
    """Events before sign-up (anonymous) and after (identified) make one profile, read by
    either identifier."""
    for step in ("welcome", "profile"):
        _track(
            client,
            source,
            anonymousId="device-1",
            event="Onboarding Step",
            properties={"flow": "onboarding", "step": step},
            context={"os": {"name": "iOS"}},
        )
    _profile_once(client, source, lambda p: True, anonymousId="device-1")
    identify = {"userId": "ana", "anonymousId": "device-1", "traits": {"plan": "pro"}}
    assert client.post("/v1/identify", headers=basic(source.write_key), json=identify).is_success
    _track(client, source, userId="ana", event="Feature Used")
    merged = _profile_once(
        client, source, lambda p: "Feature Used" in p["computed"]["event_counts"], userId="ana"
    )
    computed = merged["computed"]
    assert computed["event_counts"] == {"Onboarding Step": 2, "identify": 1, "Feature Used": 1}
    assert computed["flows"] == {
        "onboarding": {"done": ["welcome", "profile"], "last_step": "profile"}
    }
    assert (computed["platform"], computed["device"]) == ("ios", "mobile")
    assert merged["traits"] == {"plan": "pro"}
    assert len(merged["merged"]) == 1
    assert _profile(client, source, anonymousId="device-1") == merged
    both = client.get(
        "/v1/profiles",
        params={"userId": "ana", "anonymousId": "device-1"},
        headers=bearer(source.server_key),
    )
    assert (both.status_code, both.json()["error"]) == (400, "invalid_query")


def test_withdrawn_consent_drops_the_subject_from_consent_gated_segments(
    client: Client, source: CreatedSource, admin: dict[str, str]
) -> None:
    """A consent change reaches the core without any further event: the segment that needs
    personalization consent loses the subject, and its change log says why."""
    rule = {"all": [{"consent": "personalization"}, {"event": "Signed Up"}]}
    assert client.put(
        "/v1/segments/onboarding-target", headers=admin, json={"name": "t", "rule": rule}
    ).is_success
    _track(client, source, userId="bo", event="Signed Up")
    _profile_once(client, source, lambda p: p["segments"] == ["onboarding-target"], userId="bo")
    withdrawal = {"purposes": {"personalization": False}, "policy_version": "v1"}
    assert client.put(
        "/v1/consent/bo", headers=bearer(source.server_key), json=withdrawal
    ).is_success
    _profile_once(client, source, lambda p: p["segments"] == [], userId="bo")


def test_an_opt_out_of_personalization_stops_computed_traits_at_once(
    client: Client, source: CreatedSource
) -> None:
    """After an opt-out request naming personalization, events still count (analytics) but no
    longer feed sessions, flows or windows."""
    _track(client, source, userId="cy", event="Signed Up", timestamp="2026-01-01T10:00:00Z")
    before = _profile_once(client, source, lambda p: True, userId="cy")
    assert before["computed"]["sessions"] == 1
    server = bearer(source.server_key)
    request = client.post(
        "/v1/privacy/requests",
        headers=server,
        json={"type": "opt_out", "userId": "cy", "purposes": ["personalization"]},
    ).json()
    done = completed_privacy_request(client, server, request["id"])
    assert "profiles" in [store["store"] for store in done["receipts"]]
    _track(client, source, userId="cy", event="Later", timestamp="2026-01-03T10:00:00Z")
    after = _profile_once(
        client, source, lambda p: "Later" in p["computed"]["event_counts"], userId="cy"
    )
    assert after["computed"]["sessions"] == 1  # the later event started no session
    assert "Later" not in after["computed"]["windows"]["30d"]


def test_erasure_leaves_no_personalization_row(
    client: Client, source: CreatedSource, admin: dict[str, str], migrated: Any
) -> None:
    """Profiles, identity links, memberships and their change log: nothing of the subject or
    the anonymous id merged into it stays, only the erasure receipts."""
    client.put(
        "/v1/segments/all", headers=admin, json={"name": "all", "rule": {"event": "Signed Up"}}
    )
    _track(client, source, anonymousId="dev-9", event="Signed Up")
    identify = {"userId": "dee", "anonymousId": "dev-9"}
    client.post("/v1/identify", headers=basic(source.write_key), json=identify)
    profile = _profile_once(client, source, lambda p: p["merged"], userId="dee")
    pseudonyms = [profile["subject"], *profile["merged"]]
    server = bearer(source.server_key)
    request = client.post(
        "/v1/privacy/requests", headers=server, json={"type": "erasure", "userId": "dee"}
    ).json()
    completed_privacy_request(client, server, request["id"])
    for table in (
        "profiles",
        "profiles_identity_links",
        "profiles_segment_members",
        "profiles_segment_changes",
    ):
        rows = dump_table(migrated.database_url, table)
        assert not any(p in rows for p in pseudonyms), table
    everything = dump_database(migrated.database_url)
    assert all(p in everything for p in pseudonyms)  # the receipts (tombstones) only
