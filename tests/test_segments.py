"""Segments over HTTP: defined by admins, evaluated as each event touches a subject."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from gateway.settings import Settings
from gateway.sources import CreatedSource
from tests.helpers import basic, bearer, completed_privacy_request, sqlite_rows, wait_for

Client = TestClient


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs in both shapes (tests/conftest.py, `shaped`)."""
    return shaped


def _segments_of(client: Client, source: CreatedSource, user_id: str) -> list[str] | None:
    found = client.get(f"/v1/profiles/{user_id}", headers=bearer(source.server_key))
    return found.json()["segments"] if found.status_code == 200 else None


def _put(client: Client, admin: dict[str, str], key: str, rule: dict[str, Any]) -> Any:
    return client.put(f"/v1/segments/{key}", headers=admin, json={"name": key, "rule": rule})


def test_events_move_subjects_into_segments_as_they_are_applied(
    client: Client, source: CreatedSource, admin: dict[str, str], auditor: dict[str, str]
) -> None:
    """A trait rule, an event rule within days and a segment reference: the profile lists the
    segments it is in once its event is applied, and the segment counts its members."""
    assert (
        _put(client, admin, "pro", {"trait": "plan", "op": "eq", "value": "pro"}).status_code == 200
    )
    active = {"event": "Feature Used", "count": {"op": "gte", "value": 2}, "within_days": 7}
    assert _put(client, admin, "active", active).status_code == 200
    both = {"all": [{"segment": "pro"}, {"segment": "active"}]}
    saved = _put(client, admin, "power", both).json()
    assert (saved["key"], saved["version"]) == ("power", 1)
    write = basic(source.write_key)
    client.post("/v1/identify", headers=write, json={"userId": "ana", "traits": {"plan": "pro"}})
    assert wait_for(lambda: _segments_of(client, source, "ana")) == ["pro"]
    for _ in range(2):
        client.post("/v1/track", headers=write, json={"userId": "ana", "event": "Feature Used"})
    wait_for(lambda: _segments_of(client, source, "ana") == ["active", "power", "pro"] or None)
    assert client.get("/v1/segments/power", headers=auditor).json()["members"] == 1
    client.post("/v1/identify", headers=write, json={"userId": "ana", "traits": {"plan": "free"}})
    wait_for(lambda: _segments_of(client, source, "ana") == ["active"] or None)
    assert client.get("/v1/segments/power", headers=auditor).json()["members"] == 0
    edited = _put(client, admin, "pro", {"trait": "plan", "op": "in", "value": ["pro", "free"]})
    assert edited.json()["version"] == 2


@pytest.mark.parametrize(
    ("rule", "where"),
    [
        ({"trait": "plan", "op": "like", "value": "x"}, "$.rule.op"),
        ({"all": [{"segment": "pro"}, {"segment": "nowhere"}]}, "unknown segment 'nowhere'"),
    ],
)
def test_invalid_rules_are_400_and_change_nothing(
    client: Client, admin: dict[str, str], rule: dict[str, Any], where: str
) -> None:
    """Unknown ops and references to no segment are 400 invalid_rule naming the node."""
    _put(client, admin, "pro", {"trait": "plan", "op": "eq", "value": "pro"})
    refused = _put(client, admin, "bad", rule)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_rule"
    assert where in refused.json()["detail"]
    assert client.get("/v1/segments/bad", headers=admin).status_code == 404


def test_cycles_and_deleting_a_referenced_segment_are_refused(
    client: Client, admin: dict[str, str]
) -> None:
    """A segment cannot come to refer to itself through others, nor lose what it refers to."""
    _put(client, admin, "a", {"trait": "x", "op": "exists"})
    _put(client, admin, "b", {"segment": "a"})
    cycle = _put(client, admin, "a", {"segment": "b"})
    assert cycle.status_code == 400
    assert "cycle" in cycle.json()["detail"]
    assert client.delete("/v1/segments/a", headers=admin).status_code == 400
    assert client.delete("/v1/segments/b", headers=admin).status_code == 204
    assert client.delete("/v1/segments/a", headers=admin).status_code == 204


def test_a_segment_a_flag_or_a_flow_targets_cannot_be_deleted(
    client: Client, admin: dict[str, str]
) -> None:
    """A flag's rule or a flow variant's `when` naming a segment keeps it: deleted, the rule
    would read memberships nothing keeps current. The refusal names the rule; once no rule
    names the segment, it goes."""
    _put(client, admin, "pro", {"trait": "plan", "op": "eq", "value": "pro"})
    flag = {
        "type": "boolean",
        "variants": {"on": True, "off": False},
        "default_variant": "off",
        "rules": [{"when": {"all": [{"segment": "pro"}]}, "variant": "on"}],
    }
    assert client.put("/v1/flags/tour", headers=admin, json=flag).status_code == 200
    flow = {
        "baseline": {"steps": ["welcome"]},
        "variants": [{"name": "guided", "when": {"segment": "pro"}, "steps": ["tour"]}],
    }
    assert client.put("/v1/flows/onboarding", headers=admin, json=flow).status_code == 200
    refused = client.delete("/v1/segments/pro", headers=admin)
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_rule")
    assert "flag 'tour' $.rules[0].when" in refused.json()["detail"]
    untargeted = {**flag, "rules": [{"when": {"trait": "plan", "op": "exists"}, "variant": "on"}]}
    assert client.put("/v1/flags/tour", headers=admin, json=untargeted).status_code == 200
    refused = client.delete("/v1/segments/pro", headers=admin)
    assert "flow 'onboarding' $.variants[0].when" in refused.json()["detail"]
    flow["variants"][0]["when"] = None
    assert client.put("/v1/flows/onboarding", headers=admin, json=flow).status_code == 200
    assert client.delete("/v1/segments/pro", headers=admin).status_code == 204


def test_auditors_read_segments_and_only_admins_change_them(
    client: Client, admin: dict[str, str], auditor: dict[str, str], source: CreatedSource
) -> None:
    """An auditor's PUT is 403; a server key's is 401."""
    rule = {"name": "x", "rule": {"trait": "x", "op": "exists"}}
    assert client.put("/v1/segments/x", headers=auditor, json=rule).status_code == 403
    server = bearer(source.server_key)
    assert client.put("/v1/segments/x", headers=server, json=rule).status_code == 401
    assert client.put("/v1/segments/x", headers=admin, json=rule).status_code == 200
    assert [s["key"] for s in client.get("/v1/segments", headers=auditor).json()["items"]] == ["x"]


def test_erasure_leaves_no_membership(
    client: Client, source: CreatedSource, admin: dict[str, str], migrated: Any
) -> None:
    """An erased subject's memberships go with its profile."""
    _put(client, admin, "everyone", {"event": "Signed Up"})
    event = {"userId": "gone", "event": "Signed Up"}
    client.post("/v1/track", headers=basic(source.write_key), json=event)
    wait_for(lambda: _segments_of(client, source, "gone"))
    members = "SELECT subject FROM profiles_segment_members"
    assert len(sqlite_rows(migrated.database_url, members)) == 1
    server = bearer(source.server_key)
    request = client.post(
        "/v1/privacy/requests", headers=server, json={"type": "erasure", "userId": "gone"}
    ).json()
    completed_privacy_request(client, server, request["id"])
    assert sqlite_rows(migrated.database_url, members) == []


def test_a_segments_change_log_holds_its_own_joins_and_leaves_only(
    client: Client, source: CreatedSource, admin: dict[str, str], auditor: dict[str, str]
) -> None:
    """One event moves a subject in and out of several segments at once; each segment's log
    shows its own changes, newest first, however alike the keys (`_` is a LIKE wildcard,
    `a` a prefix of `a_1`)."""
    signed_up = {"event": "Signed Up"}
    on_plan = {"trait": "plan", "op": "exists"}
    for key, rule in (("a_1", signed_up), ("ab1", on_plan), ("a", {"not": signed_up})):
        _put(client, admin, key, rule)
    write = basic(source.write_key)
    client.post("/v1/identify", headers=write, json={"userId": "u1", "traits": {"plan": "pro"}})
    wait_for(lambda: _segments_of(client, source, "u1") == ["a", "ab1"] or None)
    client.post("/v1/track", headers=write, json={"userId": "u1", "event": "Signed Up"})
    wait_for(lambda: _segments_of(client, source, "u1") == ["a_1", "ab1"] or None)

    def log(key: str, **params: Any) -> list[tuple[bool, str]]:
        found = client.get(f"/v1/segments/{key}/changes", headers=auditor, params=params)
        return [(c["joined"], c["cause"].partition(":")[0]) for c in found.json()["items"]]

    assert log("a") == [(False, "event"), (True, "event")]
    assert log("a_1") == log("ab1") == [(True, "event")]
    newest = client.get("/v1/segments/a/changes", headers=auditor).json()["items"][0]
    assert log("a", before=newest["id"]) == [(True, "event")]
    assert log("a", before=newest["id"], limit=1) == [(True, "event")]


def test_segment_lists_members_and_changes_come_in_pages(
    client: Client, source: CreatedSource, admin: dict[str, str], auditor: dict[str, str]
) -> None:
    """Segments, a segment's members (pseudonyms) and its change log (time and cause) are
    paged; a bad limit is 400."""
    for key in ("a1", "a2", "a3"):
        _put(client, admin, key, {"event": "Signed Up"})
    first = client.get("/v1/segments", params={"limit": 2}, headers=auditor).json()
    assert [s["key"] for s in first["items"]] == ["a1", "a2"]
    rest = client.get("/v1/segments", params={"after": first["next"]}, headers=auditor).json()
    assert ([s["key"] for s in rest["items"]], rest["next"]) == (["a3"], None)
    write = basic(source.write_key)
    for user in ("m1", "m2", "m3"):
        client.post("/v1/track", headers=write, json={"userId": user, "event": "Signed Up"})
    wait_for(lambda: client.get("/v1/segments/a1", headers=auditor).json()["members"] == 3 or None)
    page = client.get("/v1/segments/a1/members", params={"limit": 2}, headers=auditor).json()
    after = client.get(
        "/v1/segments/a1/members", params={"after": page["next"]}, headers=auditor
    ).json()
    subjects = [m["subject"] for m in page["items"] + after["items"]]
    assert len(set(subjects)) == 3
    assert all(s.startswith("p") and s != "m1" for s in subjects)  # pseudonyms only
    changes = client.get("/v1/segments/a1/changes", headers=auditor).json()
    assert len(changes["items"]) == 3
    assert all(c["joined"] and c["cause"].startswith("event:") for c in changes["items"])
    refused = client.get("/v1/segments", params={"limit": 0}, headers=auditor)
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_query")
    missing = client.get("/v1/segments/none/members", headers=auditor)
    assert missing.status_code == 404
