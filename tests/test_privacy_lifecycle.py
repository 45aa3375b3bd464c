"""Privacy requests over time: resumed after a crash or a failing step, leased against other
replicas, and watched by the deadline gauges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from litestar.testing import TestClient
from sqlalchemy import Table, insert, update

from gateway.settings import Settings
from gateway.sources import CreatedSource
from privacy._tables import PrivacyRequestRow
from tests.helpers import (
    basic,
    bearer,
    completed_privacy_request,
    execute,
    profile_when,
    sqlite_rows,
    wait_for,
)

Client = TestClient
requests = cast(Table, PrivacyRequestRow.__table__)


def _left_received(
    settings: Settings,
    request_id: str,
    source: CreatedSource,
    kind: str,
    subject: str,
    now: datetime,
    claimed_until: datetime | None = None,
) -> None:
    """A request row as a process leaves it right after recording it (status `received`)."""
    execute(
        settings.database_url,
        insert(requests).values(
            request_id=request_id,
            source_id=source.source_id,
            kind=kind,
            status="received",
            subject=subject,
            subjects=[subject],
            purposes=[],
            requested_by="test",
            received_at=now,
            deadline=now + timedelta(days=30),
            claimed_until=claimed_until,
            receipts=[],
        ),
    )


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs in both shapes (tests/conftest.py, `shaped`)."""
    return shaped


def test_open_requests_and_the_next_deadline_are_exported_as_metrics(
    client: Client, source: CreatedSource
) -> None:
    """The deadline alert's inputs: open requests by kind, seconds to the nearest deadline."""
    client.post(
        "/v1/privacy/requests",
        json={"type": "access", "userId": "m1"},
        headers=bearer(source.server_key),
    )
    text = wait_for(
        lambda: (
            body
            if 'consentgate_privacy_requests_open{kind="erasure"}'
            in (body := client.get("/metrics").text)
            else None
        )
    )
    assert 'consentgate_privacy_requests_open{kind="access"} 0' in text


def test_a_request_recorded_before_a_crash_is_resumed(
    client: Client, source: CreatedSource, migrated: Settings
) -> None:
    """A request row left `received` (the process died right after recording it) is taken
    to completion by the background task, each step once."""
    client.post(
        "/v1/track", json={"userId": "crash-1", "event": "E"}, headers=basic(source.write_key)
    )
    profile_when(client, source, "crash-1", 1)
    subject = client.get("/v1/consent/crash-1", headers=bearer(source.server_key)).json()["subject"]
    now = datetime.now().astimezone()
    _left_received(migrated, "pr_resumed", source, "erasure", subject, now)
    done = completed_privacy_request(client, bearer(source.server_key), "pr_resumed")
    assert sqlite_rows(migrated.database_url, "SELECT claimed_until FROM privacy_requests") == [
        (None,)
    ]
    assert sorted(r["store"] for r in done["receipts"]) == [
        "consent",
        "dead_letters",
        "decisions",
        "exposures",
        "keys",
        "profiles",
    ]
    assert client.get("/v1/profiles/crash-1", headers=bearer(source.server_key)).status_code == 404


def test_a_request_leased_by_another_replica_is_left_to_it(
    client: Client, source: CreatedSource, migrated: Settings
) -> None:
    """While another replica's lease runs, this one does not touch the request; once the lease
    has lapsed (that replica died), it takes the request over."""
    now = datetime.now(UTC)
    _left_received(
        migrated, "pr_leased", source, "access", "p1_x", now, claimed_until=now + timedelta(hours=1)
    )
    path, server = "/v1/privacy/requests/pr_leased", bearer(source.server_key)
    with client.portal() as portal:  # one round of what the background task does
        portal.call(client.app.state.runtime.privacy.advance)
    assert client.get(path, headers=server).json()["status"] == "received"
    metrics = client.get("/metrics").text
    assert 'consentgate_privacy_requests_open{kind="access"} 1' in metrics
    (deadline_line,) = [
        line
        for line in metrics.splitlines()
        if line.startswith("consentgate_privacy_request_next_deadline_seconds")
    ]
    assert 29 * 86400 < float(deadline_line.split()[-1]) <= 30 * 86400
    lapsed = update(requests).values(claimed_until=now - timedelta(minutes=1))
    execute(migrated.database_url, lapsed)
    assert (
        completed_privacy_request(client, server, "pr_leased")["receipts"][0]["store"] == "export"
    )


def test_a_step_failing_at_submission_leaves_an_accepted_request_that_completes(
    client: Client, source: CreatedSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request is recorded before any step runs: if one fails, the answer is still 202
    (accepted, not yet done) and the background task finishes the work."""
    keyring = client.app.state.runtime.keyring
    shred = keyring.shred
    failures = [RuntimeError("the key table is locked")]

    async def flaky_shred(source_id: str, subject: str) -> bool:
        if failures:
            raise failures.pop()
        return bool(await shred(source_id, subject))

    monkeypatch.setattr(keyring, "shred", flaky_shred)
    submitted = client.post(
        "/v1/privacy/requests",
        json={"type": "erasure", "userId": "flaky-1"},
        headers=bearer(source.server_key),
    )
    assert submitted.status_code == 202
    assert submitted.json()["status"] == "received"
    assert [r["store"] for r in submitted.json()["receipts"]] == ["consent"]
    done = completed_privacy_request(client, bearer(source.server_key), submitted.json()["id"])
    assert [r["store"] for r in done["receipts"]] == [
        "consent",
        "keys",
        "decisions",
        "dead_letters",
        "exposures",
        "profiles",
    ]
