"""OFREP over HTTP: the protocol's bodies and error codes, ETag/304, the baseline with its reason
(consent, suppression, unknown subject, the core's time budget), rate limits, and flags' admin
API (versions, audit, 400 naming the path)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from anonymization import KekSet
from gateway.app import create_app
from gateway.settings import Settings
from gateway.sources import CreatedSource
from tests.helpers import basic, bearer, completed_privacy_request, profile_when

Client = TestClient
FLAGS: dict[str, dict[str, Any]] = {
    "tour": {
        "type": "boolean",
        "variants": {"on": True, "off": False},
        "default_variant": "off",
        "rules": [{"when": {"trait": "plan", "op": "eq", "value": "pro"}, "variant": "on"}],
    },
    "hero": {
        "type": "string",
        "variants": {"a": "Welcome!", "b": "Hello there"},
        "default_variant": "a",
        "rules": [{"when": {"event": "Signed Up"}, "split": {"a": 50, "b": 50}}],
    },
    "config": {
        "type": "object",
        "variants": {"v1": {"max_items": 3}},
        "default_variant": "v1",
        "requires_consent": None,
    },
}
CONSENTED = {"consent": {"categoryPreferences": {"analytics": True, "personalization": True}}}


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs in both shapes (tests/conftest.py, `shaped`)."""
    return shaped


def _define(client: Client, admin: dict[str, str]) -> None:
    for key, definition in FLAGS.items():
        answer = client.put(f"/v1/flags/{key}", headers=admin, json=definition)
        assert answer.status_code == 200, answer.text


def _known_user(client: Client, source: CreatedSource, user_id: str = "ofrep-ana") -> None:
    write = basic(source.write_key)
    client.post(
        "/v1/identify",
        headers=write,
        json={"userId": user_id, "traits": {"plan": "pro"}, "context": CONSENTED},
    )
    client.post(
        "/v1/track",
        headers=write,
        json={"userId": user_id, "event": "Signed Up", "context": CONSENTED},
    )
    profile_when(client, source, user_id, 2)


def _evaluate(client: Client, headers: dict[str, str], key: str, **context: Any) -> Any:
    return client.post(
        f"/ofrep/v1/evaluate/flags/{key}", headers=headers, json={"context": context}
    )


def _token(client: Client, source: CreatedSource, user_id: str) -> dict[str, str]:
    minted = client.post(
        "/v1/tokens", headers=bearer(source.server_key), json={"userId": user_id}
    ).json()
    return bearer(minted["token"])


def test_single_flag_evaluation_for_a_subject_and_for_a_server_key(
    client: Client, source: CreatedSource, admin: dict[str, str]
) -> None:
    _define(client, admin)
    _known_user(client, source)
    server = bearer(source.server_key)
    tour = _evaluate(client, server, "tour", targetingKey="ofrep-ana").json()
    assert tour == {
        "key": "tour",
        "value": True,
        "variant": "on",
        "reason": "TARGETING_MATCH",
        "metadata": {"version": 1, "rule": 0},
    }
    mine = _evaluate(client, _token(client, source, "ofrep-ana"), "hero").json()
    theirs = _evaluate(client, server, "hero", targetingKey="ofrep-ana").json()
    assert mine == theirs
    assert mine["reason"] == "SPLIT"
    assert mine["value"] == FLAGS["hero"]["variants"][mine["variant"]]
    config = _evaluate(client, server, "config").json()  # not personalized: no subject needed
    assert (config["value"], config["reason"]) == ({"max_items": 3}, "STATIC")


def test_ofrep_errors_use_the_protocols_codes(
    client: Client, source: CreatedSource, admin: dict[str, str]
) -> None:
    _define(client, admin)
    server = bearer(source.server_key)
    missing = _evaluate(client, server, "nope", targetingKey="x")
    assert (missing.status_code, missing.json()["errorCode"], missing.json()["key"]) == (
        404,
        "FLAG_NOT_FOUND",
        "nope",
    )
    no_key = _evaluate(client, server, "hero")
    assert (no_key.status_code, no_key.json()["errorCode"]) == (400, "TARGETING_KEY_MISSING")
    garbled = client.post("/ofrep/v1/evaluate/flags/tour", headers=server, content=b"{nope")
    assert (garbled.status_code, garbled.json()["errorCode"]) == (400, "PARSE_ERROR")
    wrong = client.post("/ofrep/v1/evaluate/flags/tour", headers=server, json={"context": [1]})
    assert (wrong.status_code, wrong.json()["errorCode"]) == (400, "INVALID_CONTEXT")
    bulk = client.post("/ofrep/v1/evaluate/flags", headers=server, content=b"[")
    assert (bulk.status_code, bulk.json()["errorCode"]) == (400, "PARSE_ERROR")
    for headers in (basic(source.write_key), bearer(source.write_key), {}):
        refused = _evaluate(client, headers, "config")
        assert refused.status_code == 401, headers


def test_bulk_etag_changes_when_consent_does(
    client: Client, source: CreatedSource, admin: dict[str, str]
) -> None:
    """304 while nothing changed; after a withdrawal, the very next evaluation is the baseline
    (reason DEFAULT, metadata.fallback consent_missing) under a new ETag."""
    _define(client, admin)
    _known_user(client, source)
    subject = _token(client, source, "ofrep-ana")
    first = client.post("/ofrep/v1/evaluate/flags", headers=subject, json={})
    assert first.status_code == 200
    etag = first.headers["etag"]
    by_key = {flag["key"]: flag for flag in first.json()["flags"]}
    assert (by_key["tour"]["value"], set(by_key)) == (True, set(FLAGS))
    again = client.post(
        "/ofrep/v1/evaluate/flags", headers={**subject, "If-None-Match": etag}, json={}
    )
    assert again.status_code == 304
    withdrawal = {"purposes": {"personalization": False}, "policy_version": "v1"}
    assert client.put("/v1/me/consent", headers=subject, json=withdrawal).is_success
    after = client.post(
        "/ofrep/v1/evaluate/flags", headers={**subject, "If-None-Match": etag}, json={}
    )
    assert after.status_code == 200
    assert after.headers["etag"] != etag
    tour = {flag["key"]: flag for flag in after.json()["flags"]}["tour"]
    assert (tour["value"], tour["reason"], tour["metadata"]["fallback"]) == (
        False,
        "DEFAULT",
        "consent_missing",
    )


def test_unknown_and_erased_subjects_get_the_baseline(
    client: Client, source: CreatedSource, admin: dict[str, str]
) -> None:
    _define(client, admin)
    server = bearer(source.server_key)
    unknown = _evaluate(client, server, "tour", targetingKey="never-seen").json()
    assert (unknown["value"], unknown["metadata"]["fallback"]) == (False, "unknown_subject")
    _known_user(client, source, "to-erase")
    request = client.post(
        "/v1/privacy/requests", headers=server, json={"type": "erasure", "userId": "to-erase"}
    ).json()
    completed_privacy_request(client, server, request["id"])
    erased = _evaluate(client, server, "tour", targetingKey="to-erase").json()
    assert (erased["value"], erased["metadata"]["fallback"]) == (False, "suppressed")


@pytest.fixture
def strict(migrated: Settings, keks: KekSet) -> Iterator[Client]:
    """A gateway with a tiny core time budget and one OFREP evaluation a second per caller."""
    settings = msgspec.structs.replace(
        migrated,
        core_time_budget_ms=0.001,
        ofrep_rate_limit_per_second=1.0,
        ofrep_rate_limit_burst=1,
    )
    with TestClient(create_app(settings, keks)) as test_client:
        yield test_client


def test_a_slow_core_is_the_baseline_and_callers_are_rate_limited(
    strict: Client, source: CreatedSource, admin: dict[str, str]
) -> None:
    _define(strict, admin)
    _known_user(strict, source)
    server = bearer(source.server_key)
    slow = _evaluate(strict, server, "tour", targetingKey="ofrep-ana").json()
    assert (slow["value"], slow["metadata"]["fallback"]) == (False, "core_unavailable")
    limited = _evaluate(strict, server, "tour", targetingKey="ofrep-ana")
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1


def test_flag_changes_are_versioned_audited_and_validated(
    client: Client, admin: dict[str, str], auditor: dict[str, str]
) -> None:
    _define(client, admin)
    changed = {**FLAGS["tour"], "enabled": False}
    assert client.put("/v1/flags/tour", headers=admin, json=changed).json()["version"] == 2
    refused = client.put(
        "/v1/flags/tour", headers=admin, json={**FLAGS["tour"], "default_variant": "maybe"}
    )
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_flag")
    assert refused.json()["detail"].endswith("at $.default_variant")
    assert client.get("/v1/flags/tour", headers=auditor).json()["version"] == 2
    assert client.put("/v1/flags/tour", headers=auditor, json=changed).status_code == 403
    entries = client.get("/v1/audit", headers=auditor, params={"limit": 1000}).json()["items"]
    saved = [e["entry"] for e in entries if e["entry"]["kind"] == "flag.saved"]
    assert [e["details"]["version"] for e in saved if e["details"]["key"] == "tour"] == [1, 2]
    listing = client.get("/v1/flags", headers=auditor, params={"limit": 2}).json()
    assert [f["key"] for f in listing["items"]] == ["config", "hero"]
    assert listing["next"] == "hero"


def test_splits_are_stable_across_restarts_and_key_rotations(
    migrated: Settings, keks: KekSet, source: CreatedSource, admin: dict[str, str]
) -> None:
    """The same users get the same variants from a restarted gateway, through rotated keys:
    the bucket is the pseudonym's, and pseudonyms stay within an epoch."""
    import asyncio
    from datetime import timedelta

    from gateway.database import open_database
    from gateway.source_admin import rotate_keys

    users = [f"stable-{n}" for n in range(12)]
    # A loaded test machine must not turn a split into the time budget's baseline ("a" too).
    patient = msgspec.structs.replace(migrated, core_time_budget_ms=10_000.0)

    def variants(server_key: str) -> list[str]:
        with TestClient(create_app(patient, keks)) as fresh:
            _define(fresh, admin)
            for user in users:
                if fresh.get(f"/v1/profiles/{user}", headers=bearer(server_key)).status_code != 200:
                    _known_user(fresh, source, user)
            answers = [
                _evaluate(fresh, bearer(server_key), "hero", targetingKey=user).json()
                for user in users
            ]
            assert [a["reason"] for a in answers] == ["SPLIT"] * len(users), answers
            return [answer["variant"] for answer in answers]

    before = variants(source.server_key)
    assert len(set(before)) == 2  # both variants occur among twelve users

    async def rotate() -> str:
        database = open_database(migrated.database_url)
        try:
            return (await rotate_keys(database, source.source_id, timedelta(0))).server_key
        finally:
            await database.dispose()

    assert variants(asyncio.run(rotate())) == before


def test_flags_file_is_loaded_at_start_without_bumping_unchanged_versions(
    migrated: Settings, keks: KekSet, tmp_path: Any, auditor: dict[str, str]
) -> None:
    """CONSENTGATE_FLAGS_FILE (TOML) defines flags at start; a restart with the same file keeps
    their versions, an edited flag gets the next one; an invalid file names the flag and path."""
    from personalization import FlagError, read_flags_file

    flags_file = tmp_path / "flags.toml"
    flags_file.write_text(
        '[banner]\ntype = "string"\ndefault_variant = "off"\n'
        '[banner.variants]\noff = ""\nsale = "20% off"\n'
    )
    settings = msgspec.structs.replace(migrated, flags_file=str(flags_file))

    def version() -> int:
        with TestClient(create_app(settings, keks)) as started:
            answer = started.get("/v1/flags/banner", headers=auditor)
            assert answer.status_code == 200, answer.text
            assert answer.json()["origin"] == "file"
            return int(answer.json()["version"])

    assert version() == 1
    assert version() == 1  # unchanged: no new version
    flags_file.write_text(flags_file.read_text().replace("20% off", "30% off"))
    assert version() == 2
    flags_file.write_text(
        flags_file.read_text().replace('default_variant = "off"', 'default_variant = "x"')
    )
    with pytest.raises(FlagError, match=r"flag 'banner': .* at \$\.default_variant"):
        read_flags_file(str(flags_file))


def test_an_evaluation_sees_the_profile_as_soon_as_the_core_has_applied_an_event(
    client: Client, source: CreatedSource, admin: dict[str, str]
) -> None:
    """Views are cached between evaluations, and forgotten when the core changes the profile
    (the subject's own, or one merged into it): no evaluation serves a stale one."""
    _define(client, admin)
    write, server = basic(source.write_key), bearer(source.server_key)
    client.post(
        "/v1/track",
        headers=write,
        json={"anonymousId": "device-c", "event": "Opened", "context": CONSENTED},
    )
    identify = {"userId": "cache-user", "anonymousId": "device-c", "traits": {"plan": "free"}}
    client.post("/v1/identify", headers=write, json={**identify, "context": CONSENTED})
    profile_when(client, source, "cache-user", 2)
    before = _evaluate(client, server, "tour", targetingKey="cache-user").json()
    assert before["value"] is False  # now cached
    upgrade = {"userId": "cache-user", "traits": {"plan": "pro"}, "context": CONSENTED}
    client.post("/v1/identify", headers=write, json=upgrade)
    profile_when(client, source, "cache-user", 3)
    assert _evaluate(client, server, "tour", targetingKey="cache-user").json()["value"] is True


def test_the_view_cache_forgets_pseudonyms_merged_into_a_changed_profile() -> None:
    from datetime import date

    from personalization import NOT_CACHED, ViewCache
    from profiles import ProfileView

    cache = ViewCache()
    today = date(2026, 11, 29)
    view = ProfileView(today=today)
    cache.put("src", "p1_anon", today, "p1_user", view, cache.clock())
    cache.put("src", "p1_user", today, "p1_user", view, cache.clock())
    cache.put("src", "p1_other", today, "p1_other", view, cache.clock())
    assert cache.get("src", "p1_anon", today) is view
    cache.forget("src", "p1_user")
    assert cache.get("src", "p1_anon", today) is NOT_CACHED
    assert cache.get("src", "p1_user", today) is NOT_CACHED
    assert cache.get("src", "p1_other", today) is view
    assert cache.get("src", "p1_other", date(2026, 11, 30)) is NOT_CACHED  # a new day
    started = cache.clock()  # a read begins; the profile changes before its answer is kept
    cache.forget("src", "p1_user")
    cache.put("src", "p1_anon", today, "p1_user", view, started)
    assert cache.get("src", "p1_anon", today) is NOT_CACHED
