"""Recommendations: item-item cosine over consented interactions, the popular fallback, and
interactions that never enter (refused) or leave (erased) the model."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from anonymization import KekSet
from gateway.app import create_app
from gateway.settings import Settings
from gateway.sources import CreatedSource
from personalization import build_model, recommend
from tests.helpers import basic, bearer, completed_privacy_request, profile_when, wait_for


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs in both shapes (tests/conftest.py, `shaped`)."""
    return shaped


Client = TestClient


def test_it_recommends_what_co_occurs_and_the_popular_without_history() -> None:
    """a and b are used together by two of the three users of a: b first (2/sqrt(3*2)), then c
    (1/sqrt(3*1)); nothing used yet gives the most used items, marked popular."""
    model = build_model({"u1": ["a", "b"], "u2": ["a", "b"], "u3": ["a", "c"], "u4": ["d"]})
    picks = recommend(model, ["a"], 3)
    assert [(r.item, r.basis) for r in picks] == [("b", "similar"), ("c", "similar")]
    assert picks[0].score == pytest.approx(2 / math.sqrt(6), abs=1e-6)
    assert picks[1].score == pytest.approx(1 / math.sqrt(3), abs=1e-6)
    popular = recommend(model, [], 2)
    assert [(r.item, r.basis) for r in popular] == [("a", "popular"), ("b", "popular")]
    assert recommend(None, ["a"], 3) == []


FLOW: dict[str, Any] = {
    "baseline": {"steps": ["welcome"]},
    "recommend": {"event": "Feature Used", "item_property": "feature", "count": 3},
}
YES = {"consent": {"categoryPreferences": {"analytics": True, "personalization": True}}}
NO = {"consent": {"categoryPreferences": {"analytics": True, "personalization": False}}}


@pytest.fixture
def quick(migrated: Settings, keks: KekSet) -> Iterator[Client]:
    """A gateway rebuilding its recommendation models every 0.2 s."""
    settings = msgspec.structs.replace(migrated, recommend_refresh_seconds=0.2)
    with TestClient(create_app(settings, keks)) as test_client:
        yield test_client


def _use(
    client: Client, source: CreatedSource, user: str, features: list[str], consent: Any
) -> None:
    write = basic(source.write_key)
    for feature in features:
        event = {"userId": user, "event": "Feature Used", "properties": {"feature": feature}}
        client.post("/v1/track", headers=write, json={**event, "context": consent})


def _recommended(client: Client, source: CreatedSource, user: str) -> list[dict[str, Any]]:
    answer = client.get(
        "/v1/personalize",
        params={"flow": "onboarding", "userId": user},
        headers=bearer(source.server_key),
    )
    items: list[dict[str, Any]] = answer.json()["recommendations"]
    return items


def _scores(client: Client, source: CreatedSource, user: str) -> dict[str, float]:
    return {r["item"]: r["score"] for r in _recommended(client, source, user)}


def test_refused_interactions_never_enter_and_erased_ones_leave(
    quick: Client, source: CreatedSource, admin: dict[str, str]
) -> None:
    assert quick.put("/v1/flows/onboarding", headers=admin, json=FLOW).status_code == 200
    _use(quick, source, "ann", ["export", "share"], YES)
    _use(quick, source, "ben", ["export", "share"], YES)
    _use(quick, source, "cat", ["export", "only-cat"], YES)
    _use(quick, source, "refuser", ["export", "secret"] * 5, NO)  # personalization refused
    _use(quick, source, "dee", ["export"], YES)
    for user, total in (("ann", 2), ("ben", 2), ("cat", 2), ("refuser", 10), ("dee", 1)):
        profile_when(quick, source, user, total)

    def for_dee() -> list[str] | None:
        items = [r["item"] for r in _recommended(quick, source, "dee")]
        assert "secret" not in items  # never, not even while the model catches up
        return items if items else None

    # what co-occurs with export, once the model's refresh has seen every profile
    assert wait_for(lambda: for_dee() == ["share", "only-cat"] or None)
    server = bearer(source.server_key)
    request = quick.post(
        "/v1/privacy/requests", headers=server, json={"type": "erasure", "userId": "cat"}
    ).json()
    completed_privacy_request(quick, server, request["id"])
    wait_for(lambda: for_dee() == ["share"] or None)  # cat's interactions left the model
    opt_out = quick.post(
        "/v1/privacy/requests",
        headers=server,
        json={"type": "opt_out", "userId": "ben", "purposes": ["personalization"]},
    ).json()
    completed_privacy_request(quick, server, opt_out["id"])
    # ben's interactions left too: export is used by ann and dee, share by ann: 1/sqrt(2)
    wait_for(lambda: _scores(quick, source, "dee") == {"share": round(1 / math.sqrt(2), 6)} or None)
    newcomer = _recommended(quick, source, "nobody-yet")
    assert newcomer == []  # an unknown subject gets the baseline, nothing personal
    quick.post(
        "/v1/track",
        headers=basic(source.write_key),
        json={"userId": "eve", "event": "Signed Up", "context": YES},
    )
    profile_when(quick, source, "eve", 1)
    fresh = _recommended(quick, source, "eve")  # known, no history yet: the most used, marked
    assert [(r["item"], r["basis"]) for r in fresh][:1] == [("export", "popular")]
