"""The privacy center (`/privacy`), through HTTP as a browser without JavaScript uses it: the
token traded for a session cookie, choices saved with a receipt, CSRF, sessions that end,
requests to download or delete, and no way to another subject's data."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar.testing import TestClient

from gateway.callers import SubjectCaller
from gateway.privacy_center_view import privacy_center_html
from gateway.settings import Settings
from gateway.sources import CreatedSource
from tests.helpers import bearer, completed_privacy_request

Client = TestClient


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs in both shapes (tests/conftest.py, `shaped`)."""
    return shaped


def _token(client: Client, source: CreatedSource, user_id: str) -> dict[str, Any]:
    minted = client.post("/v1/tokens", json={"userId": user_id}, headers=bearer(source.server_key))
    assert minted.status_code == 200, minted.text
    result: dict[str, Any] = minted.json()
    return result


def _open(client: Client, source: CreatedSource, user_id: str) -> str:
    """Follow the app's link; the privacy center's HTML."""
    entered = client.get("/privacy", params={"token": _token(client, source, user_id)["token"]})
    assert entered.status_code == 200
    page = client.get("/privacy")
    assert page.status_code == 200, page.text
    return page.text


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


def _consent(client: Client, source: CreatedSource, user_id: str) -> dict[str, Any]:
    answer = client.get(f"/v1/consent/{user_id}", headers=bearer(source.server_key))
    purposes: dict[str, Any] = answer.json()["purposes"]
    return purposes


def test_the_token_becomes_a_strict_http_only_cookie_and_leaves_the_url(
    client: Client, source: CreatedSource
) -> None:
    token = _token(client, source, "pc-1")["token"]
    entered = client.get("/privacy", params={"token": token})
    assert entered.status_code == 200
    cookie = entered.headers["set-cookie"]
    assert "cg_privacy=" in cookie
    assert "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    assert "Path=/privacy" in cookie
    assert "Max-Age=1800" in cookie
    # a same-site hop to the bare URL (a Strict cookie is not sent on a cross-site redirect)
    assert 'http-equiv="refresh" content="0; url=/privacy"' in entered.text
    assert token not in entered.text
    assert entered.headers["referrer-policy"] == "no-referrer"
    page = client.get("/privacy")
    assert page.status_code == 200
    for name in ("Analytics", "Personalization", "Marketing"):
        assert re.search(rf'<label for="purpose-\w+">{name}</label>', page.text), name
    for button in ("Save", "Download my data", "Delete my data"):
        assert f'<button type="submit">{button}</button>' in page.text


def test_pages_forbid_inline_script_framing_and_caching(
    client: Client, source: CreatedSource
) -> None:
    _open(client, source, "pc-csp")
    page = client.get("/privacy")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    # one script, from here, and no inline one (the page works without it)
    assert "script-src 'self'" in policy
    assert "connect-src 'self'" in policy
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, flags=re.S)
    assert scripts == [(' src="/pages/privacy.js" defer', "")]
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "style=" not in page.text
    assert not re.search(r"<[^>]+\son\w+=", page.text)  # no inline event handler
    assert client.get("/pages/pages.css").headers["content-type"].startswith("text/css")
    assert client.get("/pages/privacy.js").headers["content-type"].startswith("text/javascript")
    # the message pages (a session that ended) run nothing at all
    client.cookies.clear()
    ended = client.get("/privacy")
    assert "script-src" not in ended.headers["content-security-policy"]
    assert "<script" not in ended.text


def test_the_pages_script_reads_the_sessions_own_requests_only(
    client: Client, source: CreatedSource
) -> None:
    html = _open(client, source, "pc-poll")
    client.post("/privacy/requests", data={"csrf": _csrf(html), "type": "access"})
    mine = client.get("/privacy/requests.json")
    assert mine.status_code == 200
    (request,) = mine.json()
    assert request["kind_name"] == "Download of my data"
    assert set(request) == {"id", "kind_name", "status", "download", "receipts"}
    client.cookies.clear()
    assert client.get("/privacy/requests.json").status_code == 401


def test_saving_choices_records_them_for_the_api_and_shows_the_signed_receipt(
    client: Client, source: CreatedSource
) -> None:
    html = _open(client, source, "pc-save")
    shown = re.findall(r'name="shown" value="(\w+)"', html)
    assert {"analytics", "personalization", "marketing"} <= set(shown)
    saved = client.post(
        "/privacy/consent",
        data={"csrf": _csrf(html), "shown": shown, "granted": ["analytics"]},
    )
    assert saved.status_code == 200, saved.text
    assert "Your choices are saved." in saved.text
    assert "Your receipt" in saved.text
    purposes = _consent(client, source, "pc-save")
    assert purposes["analytics"]["granted"] is True
    assert purposes["analytics"]["source"] == "privacy_center"
    assert purposes["marketing"]["granted"] is False
    # the page now says where each state came from, and the history lists the choices
    page = client.get("/privacy").text
    assert "Allowed by you, here" in page
    assert "Refused by you, here" in page
    assert page.count("<td>Analytics</td>") == 1


def test_a_form_without_the_session_csrf_token_changes_nothing(
    client: Client, source: CreatedSource
) -> None:
    html = _open(client, source, "pc-csrf")
    shown = re.findall(r'name="shown" value="(\w+)"', html)
    for csrf in (None, "forged", _csrf(html)[:-2] + "xx"):
        data: dict[str, Any] = {"shown": shown, "granted": shown}
        if csrf is not None:
            data["csrf"] = csrf
        refused = client.post("/privacy/consent", data=data)
        assert refused.status_code == 403
        requested = client.post(
            "/privacy/requests", data={**data, "type": "erasure", "confirm": "yes"}
        )
        assert requested.status_code == 403
    assert _consent(client, source, "pc-csrf") == {}
    assert "Your requests" not in client.get("/privacy").text


def test_without_a_valid_session_or_token_the_page_says_so_and_shows_nothing(
    client: Client, source: CreatedSource
) -> None:
    assert client.get("/privacy").status_code == 401
    assert client.get("/privacy", params={"token": "st_forged.x"}).status_code == 401
    minted = _token(client, source, "pc-revoked")
    client.get("/privacy", params={"token": minted["token"]})
    assert client.get("/privacy").status_code == 200
    revoked = client.delete(f"/v1/tokens/{minted['token_id']}", headers=bearer(source.server_key))
    assert revoked.status_code in (200, 204)
    ended = client.get("/privacy")
    assert ended.status_code == 401
    assert "session has ended" in ended.text
    client.cookies.set("cg_privacy", "tampered.value", path="/privacy")
    assert client.get("/privacy").status_code == 401


def test_a_session_reaches_its_own_subject_only(client: Client, source: CreatedSource) -> None:
    """BOLA through the pages: B's session can neither read nor download A's request."""
    html = _open(client, source, "pc-alice")
    client.post("/privacy/requests", data={"csrf": _csrf(html), "type": "access"})
    server = bearer(source.server_key)
    (alice_request,) = client.get("/v1/privacy/requests", headers=server).json()["items"]
    completed_privacy_request(client, server, alice_request["id"])
    _open(client, source, "pc-bob")  # the same browser, now Bob's session
    page = client.get("/privacy").text
    assert alice_request["id"] not in page
    stolen = client.get(f"/privacy/requests/{alice_request['id']}/export")
    assert stolen.status_code == 404


def test_download_my_data_prepares_an_export_the_page_then_offers(
    client: Client, source: CreatedSource
) -> None:
    client.post("/v1/track", json={"userId": "pc-export", "event": "Signed Up"},
                auth=(source.write_key, ""))  # fmt: skip
    html = _open(client, source, "pc-export")
    asked = client.post("/privacy/requests", data={"csrf": _csrf(html), "type": "access"})
    assert asked.status_code == 200
    assert "Your download is being prepared" in asked.text
    request_id = re.search(r"<code>(pr_\w+)</code>", asked.text)
    assert request_id is not None
    completed_privacy_request(client, bearer(source.server_key), request_id.group(1))
    page = client.get("/privacy").text
    link = f"/privacy/requests/{request_id.group(1)}/export"
    assert f'href="{link}"' in page
    export = client.get(link)
    assert export.status_code == 200
    assert export.headers["content-disposition"].startswith("attachment;")
    assert export.json()["request_id"] == request_id.group(1)


def test_delete_my_data_needs_the_confirmation_then_completes_with_receipts(
    client: Client, source: CreatedSource
) -> None:
    html = _open(client, source, "pc-erase")
    unconfirmed = client.post("/privacy/requests", data={"csrf": _csrf(html), "type": "erasure"})
    assert unconfirmed.status_code == 400
    assert "Your requests" not in client.get("/privacy").text
    asked = client.post(
        "/privacy/requests", data={"csrf": _csrf(html), "type": "erasure", "confirm": "yes"}
    )
    assert asked.status_code == 200
    assert "Your data is being deleted" in asked.text
    request_id = re.search(r"<code>(pr_\w+)</code>", asked.text)
    assert request_id is not None
    done = completed_privacy_request(client, bearer(source.server_key), request_id.group(1))
    assert done["status"] == "completed"


def test_a_request_done_before_the_page_is_rendered_is_announced_as_the_script_would(
    client: Client, source: CreatedSource
) -> None:
    """The script announces a request that completes while the page is open. One that
    completed before the page was rendered (the core can erase that fast) leaves the script
    nothing to follow, so the page itself announces it. Rendered here once the erasure has
    completed, as the answer to the form would be had the core been that quick."""
    html = _open(client, source, "pc-fast")
    asked = client.post(
        "/privacy/requests", data={"csrf": _csrf(html), "type": "erasure", "confirm": "yes"}
    )
    request_id = re.search(r"<code>(pr_\w+)</code>", asked.text)
    assert request_id is not None
    done = completed_privacy_request(client, bearer(source.server_key), request_id.group(1))
    assert done["status"] == "completed"
    runtime = client.app.state.runtime
    with client.portal() as portal:
        found = portal.call(runtime.sources.by_id, source.source_id)
        caller = SubjectCaller(source=found, subject=found.pseudonymize("subject", "pc-fast"))

        def page(submitted: str | None) -> str:
            html: str = portal.call(
                privacy_center_html,
                caller,
                "csrf",
                runtime.consent,
                runtime.privacy,
                "Your data is being deleted.",
                None,
                submitted,
            )
            match = re.search(r'<p id="requests-status"[^>]*>([^<]*)</p>', html)
            assert match is not None
            return match.group(1)

        assert page(request_id.group(1)) == "Deletion of my data: completed."
        assert page(None) == ""  # a plain visit announces nothing
