"""The compliance console (`/console`) through HTTP, as a browser without JavaScript uses it:
sign-in with a staff token (never kept in the cookie), the queue nearest deadline first with
overdue requests marked, the audit log's verification and an entry's proven inclusion, the
decisions chart, the lookup, and suppressions that only an admin can lift."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from litestar.testing import TestClient
from sqlalchemy import Table, update

from gateway.settings import Settings
from gateway.sources import CreatedSource, hash_key
from privacy._tables import PrivacyRequestRow
from tests.helpers import basic, bearer, completed_privacy_request, execute

Client = TestClient
CONSENTED = {"consent": {"categoryPreferences": {"analytics": True}}}
REFUSED = {"consent": {"categoryPreferences": {"analytics": False}}}


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Both shapes: the chart counts by hour in each database's own SQL."""
    return shaped


def _token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


def _sign_in(client: Client, headers: dict[str, str]) -> str:
    """Sign in as a browser does; the console's first page."""
    form = client.get("/console")
    assert form.status_code == 200
    signed = client.post(
        "/console/signin", data={"csrf": _csrf(form.text), "token": _token(headers)}
    )
    assert signed.status_code == 200, signed.text  # followed the 303 to /console
    assert "Compliance console" in signed.text
    assert "Sign out" in signed.text
    return signed.text


def _erase(client: Client, source: CreatedSource, user_id: str) -> dict[str, Any]:
    server = bearer(source.server_key)
    submitted = client.post(
        "/v1/privacy/requests", headers=server, json={"type": "erasure", "userId": user_id}
    )
    assert submitted.status_code == 202
    return completed_privacy_request(client, server, submitted.json()["id"])


def test_sign_in_keeps_only_the_tokens_hash_and_needs_the_forms_csrf(
    client: Client, auditor: dict[str, str]
) -> None:
    form = client.get("/console")
    assert re.search(
        r'<label for="token">Token</label>\s*<input type="password" id="token"', form.text
    )
    assert '<button type="submit">Sign in</button>' in form.text
    assert "frame-ancestors 'none'" in form.headers["content-security-policy"]
    token = _token(auditor)
    refused = client.post("/console/signin", data={"csrf": "forged", "token": token})
    assert refused.status_code == 401
    assert "expired" in refused.text
    wrong = client.post(
        "/console/signin", data={"csrf": _csrf(refused.text), "token": "at_not-a-token"}
    )
    assert wrong.status_code == 401
    assert "Sign in" in wrong.text
    signed = client.post(
        "/console/signin",
        data={"csrf": _csrf(wrong.text), "token": token},
        follow_redirects=False,
    )
    assert signed.status_code == 303
    cookie = signed.headers["set-cookie"]
    assert "cg_console=" in cookie
    assert "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    assert "Path=/console" in cookie
    assert token not in cookie
    page = client.get("/console")
    assert "Signed in as auditor" in page.text
    # signing out needs the page's CSRF token too, then the session is gone
    client.post("/console/signout", data={"csrf": "forged"})
    assert "Signed in as auditor" in client.get("/console").text
    client.post("/console/signout", data={"csrf": _csrf(page.text)})
    assert "Sign in" in client.get("/console").text
    assert client.get("/console/audit", follow_redirects=False).status_code == 303


def test_a_revoked_token_ends_the_session(client: Client, auditor: dict[str, str]) -> None:
    from gateway.cli import main

    _sign_in(client, auditor)
    assert (
        main(["tokens", "revoke", hash_key(_token(auditor))[:16]]) == 0
    )  # the id tokens list shows
    assert '<label for="token">Token</label>' in client.get("/console").text


def test_the_queue_puts_the_nearest_deadline_first_and_marks_overdue_ones(
    client: Client, source: CreatedSource, auditor: dict[str, str], migrated: Settings
) -> None:
    server = bearer(source.server_key)
    ids = []
    for user in ("q-1", "q-2"):
        made = client.post(
            "/v1/privacy/requests", headers=server, json={"type": "access", "userId": user}
        )
        ids.append(made.json()["id"])
    requests = cast(Table, PrivacyRequestRow.__table__)
    now = datetime.now(UTC)
    for request_id, deadline in zip(
        ids, (now + timedelta(days=10), now - timedelta(days=2)), strict=True
    ):
        execute(
            migrated.database_url,
            update(requests)
            .where(requests.c.request_id == request_id)
            .values(deadline=deadline, status="in_progress"),
        )
    home = _sign_in(client, auditor)
    queue = home.split('id="queue-heading"')[1].split("</section>")[0]
    assert queue.index(ids[1]) < queue.index(ids[0])  # overdue first
    rows = queue.split("<tr")
    overdue = [row for row in rows if "Overdue" in row]
    assert len(overdue) == 1
    assert ids[1] in overdue[0]
    assert 'class="overdue"' in overdue[0]


def test_decisions_chart_the_audit_verifies_and_an_entry_proves_its_inclusion(
    client: Client, source: CreatedSource, auditor: dict[str, str]
) -> None:
    writer = basic(source.write_key)
    for i in range(3):
        client.post(
            "/v1/track",
            headers=writer,
            json={"userId": f"c-{i}", "event": "E", "context": CONSENTED},
        )
    client.post(
        "/v1/track", headers=writer, json={"userId": "c-x", "event": "E", "context": REFUSED}
    )
    home = _sign_in(client, auditor)
    # the decision log is written by the core, asynchronously
    for _ in range(50):
        if "3 forward" in home:
            break
        home = client.get("/console").text
    assert re.search(r"<title id=\"chart-title\">[^<]*3 forward, 0 strip, 1 drop", home)
    assert len(re.findall(r'<rect class="bar bar-forward"', home)) == 1
    assert len(re.findall(r'<rect class="bar bar-drop"', home)) == 1
    assert "Verified:" in home
    with client.portal() as portal:
        size = portal.call(client.app.state.runtime.audit.checkpoint)
    assert size
    entry = client.get(f"/console/audit/{size}")
    assert entry.status_code == 200
    assert "Proven:" in entry.text
    listing = client.get("/console/audit")
    assert f'href="/console/audit/{size}"' in listing.text
    assert client.get("/console/audit/999999").status_code == 404
    assert "Decisions per day" in client.get("/console", params={"window": "14d"}).text


def test_lookup_by_user_or_trace_shows_decisions_and_consent_without_logging_the_user(
    client: Client, source: CreatedSource, auditor: dict[str, str]
) -> None:
    writer = basic(source.write_key)
    client.put(
        "/v1/consent/lookup-user",
        json={"purposes": {"analytics": True}, "policy_version": "v1"},
        headers=bearer(source.server_key),
    )
    client.post("/v1/track", headers=writer, json={"userId": "lookup-user", "event": "Looked"})
    _sign_in(client, auditor)
    found = ""
    for _ in range(50):
        found = client.get("/console/lookup", params={"q": "lookup-user"}).text
        if "Looked" in found:
            break
    assert "<q>Looked</q>" in found
    assert "granted" in found  # the consent history
    assert "lookup-user" not in found.replace('value="lookup-user"', "")
    trace = re.search(r"q=([0-9a-f]{32})", found)
    assert trace is not None
    by_trace = client.get("/console/lookup", params={"q": trace.group(1)}).text
    assert "<q>Looked</q>" in by_trace
    entries = client.get("/v1/audit", params={"kind": "audit.query"}, headers=auditor).json()
    lookups = [e for e in entries["items"] if e["entry"]["details"]["endpoint"] == "console.lookup"]
    assert len(lookups) >= 2
    assert "lookup-user" not in json.dumps(entries)


def test_only_an_admin_lifts_a_suppression_from_the_console(
    client: Client,
    source: CreatedSource,
    auditor: dict[str, str],
    admin: dict[str, str],
) -> None:
    erased = _erase(client, source, "console-gone")
    _sign_in(client, auditor)
    page = client.get("/console/suppressions").text
    assert erased["subject"] in page
    assert ">Lift</button>" not in page
    refused = client.post(
        "/console/suppressions/lift",
        data={"csrf": _csrf(page), "source_id": source.source_id, "subject": erased["subject"]},
    )
    assert refused.status_code == 403
    assert client.get("/v1/suppressions", headers=auditor).json()["items"] != []
    client.cookies.clear()
    _sign_in(client, admin)
    page = client.get("/console/suppressions").text
    forged = client.post(
        "/console/suppressions/lift",
        data={"csrf": "forged", "source_id": source.source_id, "subject": erased["subject"]},
    )
    assert forged.status_code == 200  # back to the console, nothing changed
    assert client.get("/v1/suppressions", headers=auditor).json()["items"] != []
    lifted = client.post(
        "/console/suppressions/lift",
        data={"csrf": _csrf(page), "source_id": source.source_id, "subject": erased["subject"]},
    )
    assert lifted.status_code == 200
    assert "is lifted" in lifted.text
    assert client.get("/v1/suppressions", headers=auditor).json()["items"] == []
    entries = client.get("/v1/audit", params={"kind": "suppression.lifted"}, headers=auditor)
    assert [e["entry"]["actor"] for e in entries.json()["items"]] == ["admin:console"]


def test_the_chart_stacks_each_column_in_proportion() -> None:
    from web import stacked_bars

    chart = stacked_bars(["a", "b", "c"], {"forward": [3, 0, 1], "drop": [1, 0, 0]})
    assert chart.totals == (("forward", 4), ("drop", 1))
    assert [t.text for t in chart.y_ticks] == ["0", "2", "4"]  # the axis top is >= the peak
    first = [bar for bar in chart.bars if bar.title.startswith("a:")]
    assert [bar.series for bar in first] == ["forward", "drop"]
    forward, drop = first
    assert forward.height == pytest.approx(3 * drop.height)
    assert drop.y + drop.height == pytest.approx(forward.y)  # stacked, no gap
    assert forward.y + forward.height == chart.plot_bottom
    assert not [bar for bar in chart.bars if bar.title.startswith("b:")]  # nothing drawn for 0
    with pytest.raises(ValueError, match="one count per label"):
        stacked_bars(["a"], {"forward": [1, 2]})
