"""Onboarding flows and experiments: definitions, the personalize answer (variant, reason,
steps, flags, progress, ETag), sticky exposures, results with a two-proportion test checked by
hand, and erasure / opt-out reaching exposures."""

from __future__ import annotations

import math
from typing import Any

import pytest
from litestar.testing import TestClient

from gateway.settings import Settings
from gateway.sources import CreatedSource
from personalization import FlagError, parse_flow, two_proportion_p_value
from tests.helpers import basic, bearer, completed_privacy_request, profile_when, sqlite_rows


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs in both shapes (tests/conftest.py, `shaped`)."""
    return shaped


Client = TestClient
CONSENTED = {"consent": {"categoryPreferences": {"analytics": True, "personalization": True}}}
ONBOARDING: dict[str, Any] = {
    "baseline": {"steps": ["welcome", "profile", "invite"], "flags": {"tour": False}},
    "variants": [
        {
            "name": "guided",
            "when": {"trait": "plan", "op": "eq", "value": "pro"},
            "weight": 100,
            "steps": ["welcome", "tour", "profile"],
            "flags": {"tour": True},
        }
    ],
    "goal": "Onboarding Completed",
}


def test_the_p_value_matches_a_hand_computation() -> None:
    """30/100 against 20/100: pooled 0.25, SE sqrt(0.25*0.75*(1/100+1/100)) = 0.061237,
    z = 0.1/0.061237 = 1.63299, two-sided p = 2*(1 - Phi(1.63299)) = 0.10247."""
    assert two_proportion_p_value(30, 100, 20, 100) == pytest.approx(0.10247, abs=1e-5)
    assert two_proportion_p_value(0, 0, 20, 100) is None
    assert two_proportion_p_value(0, 10, 0, 10) is None  # no variance at all
    same = two_proportion_p_value(20, 100, 20, 100)
    assert same is not None
    assert math.isclose(same, 1.0)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"baseline": {"steps": []}}, "$.baseline.steps"),
        ({"variants": [{"name": "baseline", "steps": ["a"]}]}, "$.variants[0].name"),
        ({"variants": [{"name": "x", "steps": ["a"], "weight": 101}]}, "$.variants[0].weight"),
        (
            {"variants": [{"name": "x", "steps": ["a"], "when": {"trait": "p", "op": "like"}}]},
            "$.variants[0].when.op",
        ),
        (
            {
                "variants": [
                    {"name": "x", "steps": ["a"], "weight": 60},
                    {"name": "y", "steps": ["a"], "weight": 60},
                ]
            },
            "$.variants",
        ),
        ({"requires_consent": "all"}, "$.requires_consent"),
    ],
)
def test_invalid_flows_name_the_path(change: dict[str, Any], where: str) -> None:
    with pytest.raises(FlagError) as refused:
        parse_flow({**ONBOARDING, **change}, known_segments=set())
    assert str(refused.value).endswith(f"at {where}"), str(refused.value)


def _user(client: Client, source: CreatedSource, user_id: str, plan: str, total: int) -> None:
    write = basic(source.write_key)
    traits = {"userId": user_id, "traits": {"plan": plan}, "context": CONSENTED}
    client.post("/v1/identify", headers=write, json=traits)
    step = {"flow": "onboarding", "step": "welcome"}
    client.post(
        "/v1/track",
        headers=write,
        json={
            "userId": user_id,
            "event": "Onboarding Step",
            "properties": step,
            "context": CONSENTED,
        },
    )
    profile_when(client, source, user_id, total)


def _personalize(client: Client, source: CreatedSource, user_id: str, **headers: str) -> Any:
    return client.get(
        "/v1/personalize",
        params={"flow": "onboarding", "userId": user_id},
        headers={**bearer(source.server_key), **headers},
    )


def test_personalize_serves_the_variant_progress_and_the_baseline_with_reasons(
    client: Client, source: CreatedSource, admin: dict[str, str]
) -> None:
    assert client.put("/v1/flows/onboarding", headers=admin, json=ONBOARDING).status_code == 200
    _user(client, source, "pro-user", "pro", 2)
    _user(client, source, "free-user", "free", 2)
    pro = _personalize(client, source, "pro-user")
    assert pro.status_code == 200
    assert pro.headers["cache-control"].startswith("private")
    assert pro.json() == {
        "flow": "onboarding",
        "variant": "guided",
        "reason": "targeted",
        "steps": ["welcome", "tour", "profile"],
        "flags": {"tour": True},
        "recommendations": [],
        "progress": {"done": ["welcome"], "next": "tour"},
    }
    assert (
        _personalize(
            client, source, "pro-user", **{"If-None-Match": pro.headers["etag"]}
        ).status_code
        == 304
    )
    free = _personalize(client, source, "free-user").json()
    assert (free["variant"], free["reason"], free["flags"]) == (
        "baseline",
        "no_match",
        {"tour": False},
    )
    unknown = _personalize(client, source, "nobody").json()
    assert (unknown["variant"], unknown["reason"]) == ("baseline", "unknown_subject")
    # sticky: the exposure holds after the targeting stops matching
    client.post(
        "/v1/identify",
        headers=basic(source.write_key),
        json={"userId": "pro-user", "traits": {"plan": "free"}, "context": CONSENTED},
    )
    profile_when(client, source, "pro-user", 3)
    assert _personalize(client, source, "pro-user").json()["variant"] == "guided"
    withdrawal = {"purposes": {"personalization": False}, "policy_version": "v1"}
    client.put("/v1/consent/pro-user", headers=bearer(source.server_key), json=withdrawal)
    withdrawn = _personalize(client, source, "pro-user").json()
    assert (withdrawn["variant"], withdrawn["reason"]) == ("baseline", "consent_missing")
    token = client.post("/v1/tokens", headers=bearer(source.server_key),
                        json={"userId": "free-user"}).json()["token"]  # fmt: skip
    mine = client.get("/v1/personalize", params={"flow": "onboarding"}, headers=bearer(token))
    assert mine.json()["reason"] == "no_match"
    both = client.get(
        "/v1/personalize", params={"flow": "onboarding"}, headers=bearer(source.server_key)
    )
    assert (both.status_code, both.json()["error"]) == (400, "invalid_query")
    missing = client.get(
        "/v1/personalize", params={"flow": "none", "userId": "x"}, headers=bearer(source.server_key)
    )
    assert (missing.status_code, missing.json()["error"]) == (404, "flow_not_found")


def test_results_count_exposures_and_conversions_after_exposure(
    client: Client, source: CreatedSource, admin: dict[str, str], auditor: dict[str, str]
) -> None:
    """Two pro users (guided) and three free ones (baseline); one guided and one baseline user
    complete onboarding after exposure, one baseline user completed it before (not counted)."""
    write = basic(source.write_key)
    client.put("/v1/flows/onboarding", headers=admin, json=ONBOARDING)
    done = {"event": "Onboarding Completed", "context": CONSENTED}
    client.post("/v1/track", headers=write, json={"userId": "early", **done})
    for user, plan in (
        ("g1", "pro"),
        ("g2", "pro"),
        ("b1", "free"),
        ("b2", "free"),
        ("early", "free"),
    ):
        _user(client, source, user, plan, 2 if user != "early" else 3)
        assert _personalize(client, source, user).status_code == 200
    for user in ("g1", "b1"):
        client.post("/v1/track", headers=write, json={"userId": user, **done})
        profile_when(client, source, user, 3)
    results = client.get("/v1/flows/onboarding/results", headers=auditor).json()
    by_variant = {v["variant"]: v for v in results["variants"]}
    assert (by_variant["guided"]["exposures"], by_variant["guided"]["conversions"]) == (2, 1)
    assert (by_variant["baseline"]["exposures"], by_variant["baseline"]["conversions"]) == (3, 1)
    assert by_variant["guided"]["rate"] == 0.5
    assert by_variant["guided"]["p_value"] == pytest.approx(two_proportion_p_value(1, 2, 1, 3))
    assert by_variant["baseline"]["p_value"] is None


def test_erasure_and_an_opt_out_of_personalization_delete_exposures(
    client: Client, source: CreatedSource, admin: dict[str, str], migrated: Any
) -> None:
    client.put("/v1/flows/onboarding", headers=admin, json=ONBOARDING)
    server = bearer(source.server_key)
    for user in ("gone", "quiet"):
        _user(client, source, user, "pro", 2)
        _personalize(client, source, user)
    assert len(sqlite_rows(migrated.database_url, "SELECT * FROM personalization_exposures")) == 2
    erasure = client.post(
        "/v1/privacy/requests", headers=server, json={"type": "erasure", "userId": "gone"}
    ).json()
    receipts = completed_privacy_request(client, server, erasure["id"])["receipts"]
    assert {"store": "exposures", "action": "deleted", "count": 1} in [
        {k: r[k] for k in ("store", "action", "count")} for r in receipts
    ]
    opt_out = client.post(
        "/v1/privacy/requests",
        headers=server,
        json={"type": "opt_out", "userId": "quiet", "purposes": ["personalization"]},
    ).json()
    completed_privacy_request(client, server, opt_out["id"])
    assert sqlite_rows(migrated.database_url, "SELECT * FROM personalization_exposures") == []
