"""The pages in a real browser: Debian's Chromium, headless, driven by Playwright, against the
real server. The privacy center used with the keyboard alone, an erasure started from it, the
consent banner on an app's page (another origin) handing its choice to Segment's analytics.js
(the npm package's UMD build), the console, and axe-core's check of every page.

`.ci/run` installs Chromium (apt) and the npm packages (tests/e2e/browser, npm ci). Without
them these tests skip, unless CONSENTGATE_REQUIRE_SERVICES=1. With CONSENTGATE_SCREENSHOTS=DIR
they also save a screenshot of each page there (the README's come from such a run).
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.servers import free_port
from tests.e2e.server import Gateway
from tests.helpers import wait_for
from tests.services import services_required

CHROMIUM = os.environ.get("CONSENTGATE_CHROMIUM", "/usr/bin/chromium")
NODE_MODULES = Path(__file__).parent / "browser" / "node_modules"
AXE = NODE_MODULES / "axe-core" / "axe.min.js"
ANALYTICS_JS = NODE_MODULES / "@segment" / "analytics-next" / "dist" / "umd" / "index.js"
# without these, Chromium reaches for Google's hosts, which this closed network refuses
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (make installs it with the dev extras)"
    if not Path(CHROMIUM).exists():
        return f"no browser at {CHROMIUM} (apt-get install chromium; .ci/run does)"
    if not AXE.exists() or not ANALYTICS_JS.exists():
        return "the npm packages are missing (npm ci --prefix tests/e2e/browser; .ci/run does)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = _missing()
    if missing is not None:
        if services_required():
            pytest.fail(f"{missing}; CONSENTGATE_REQUIRE_SERVICES=1 forbids skipping")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway for the module: a browser test is slow enough without a server each."""
    gateway = Gateway(tmp_path_factory.mktemp("browser-gateway"))
    try:
        gateway.start()
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context (no cookies, no storage). Our pages' CSP forbids every script,
    so the context bypasses CSP for axe's injection alone; the pages themselves use none."""
    context = browser.new_context(bypass_csp=True, viewport={"width": 1100, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
    finally:
        context.close()
    assert errors == [], errors  # no script error on any page


def _source(server: Gateway, name: str, jurisdiction: str) -> dict[str, Any]:
    return server.cli("sources", "create", name, "--jurisdiction", jurisdiction)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _token(server: Gateway, source: dict[str, Any], user_id: str) -> str:
    minted = httpx.post(
        f"{server.url}/v1/tokens", json={"userId": user_id}, headers=_bearer(source["server_key"])
    )
    token: str = minted.json()["token"]
    return token


def _axe(page: Any, name: str) -> None:
    """No serious or critical violation on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))}))"
    )
    bad = [v for v in found if v["impact"] in ("serious", "critical")]
    assert bad == [], f"{name}: {bad}"


def _screenshot(page: Any, name: str) -> None:
    folder = os.environ.get("CONSENTGATE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def _tab_to(page: Any, is_there: Callable[[], bool], limit: int = 40) -> None:
    """Press Tab until `is_there()`; the keyboard alone reaches it."""
    for _ in range(limit):
        if is_there():
            return
        page.keyboard.press("Tab")
    raise AssertionError("the keyboard never reached the control")


def test_privacy_center_with_the_keyboard_alone_changes_the_api_consent(
    server: Gateway, page: Any
) -> None:
    source = _source(server, "keyboard-app", "gdpr")
    page.goto(f"{server.url}/privacy?token={_token(server, source, 'kb-user')}")
    page.wait_for_url(f"{server.url}/privacy")  # the token left the URL
    page.get_by_role("checkbox", name="Analytics").wait_for()
    _axe(page, "privacy center")
    _screenshot(page, "privacy-center")
    _tab_to(page, lambda: page.evaluate("document.activeElement.id") == "purpose-analytics")
    page.keyboard.press("Space")
    _tab_to(page, lambda: page.evaluate("document.activeElement.textContent") == "Save")
    page.keyboard.press("Enter")
    page.get_by_text("Your choices are saved.").wait_for()
    assert page.get_by_role("heading", name="Your receipt").is_visible()
    consent = httpx.get(
        f"{server.url}/v1/consent/kb-user", headers=_bearer(source["server_key"])
    ).json()
    assert consent["purposes"]["analytics"]["granted"] is True
    assert consent["purposes"]["analytics"]["source"] == "privacy_center"
    assert consent["purposes"]["personalization"]["granted"] is False


def test_an_erasure_started_from_the_page_completes_with_its_receipts(
    server: Gateway, page: Any
) -> None:
    source = _source(server, "erasure-app", "none")
    httpx.post(
        f"{server.url}/v1/track",
        auth=(source["write_key"], ""),
        json={"userId": "erase-me", "event": "Signed Up"},
    )
    page.goto(f"{server.url}/privacy?token={_token(server, source, 'erase-me')}")
    page.wait_for_url(f"{server.url}/privacy")
    page.get_by_role("button", name="Delete my data").click()  # not confirmed: refused
    assert page.evaluate("document.getElementById('confirm-erasure').validity.valueMissing")
    page.get_by_label("I understand that deleting my data cannot be undone").check()
    page.get_by_role("button", name="Delete my data").click()
    page.get_by_text("Your data is being deleted").first.wait_for()
    # with JavaScript the page follows the erasure in place, and says when it is done
    done = page.locator('tr[data-status="completed"]').filter(has_text="Deletion of my data")
    done.wait_for(timeout=30_000)
    assert page.locator("#requests-status").inner_text() == "Deletion of my data: completed."
    page.goto(f"{server.url}/privacy")  # and the plain page shows the same
    row = page.get_by_role("row").filter(has_text="Deletion of my data")
    assert row.get_by_role("cell").nth(1).inner_text().startswith("completed")
    requests = httpx.get(
        f"{server.url}/v1/privacy/requests", headers=_bearer(source["server_key"])
    ).json()["items"]
    (erasure,) = [r for r in requests if r["type"] == "erasure"]
    assert erasure["status"] == "completed"
    assert erasure["receipts"]
    shown = page.get_by_role("row").filter(has_text="Deletion of my data").inner_text()
    for receipt in erasure["receipts"]:
        assert f"{receipt['store']}: {receipt['action']}" in shown
    _screenshot(page, "privacy-center-erasure")


def _app_site(folder: Path, gateway: Gateway, write_key: str) -> str:
    """The app's own page on another origin: analytics.js (the npm package's UMD build)
    sending to the gateway, and the consent banner, each with one script tag."""
    shutil.copy(ANALYTICS_JS, folder / "analytics-next.js")
    api_host = gateway.url.removeprefix("http://") + "/v1"
    (folder / "index.html").write_text(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shop</title></head>
<body><main><h1>Shop</h1><button id="signup" type="button">Sign up</button></main>
<script src="/analytics-next.js"></script>
<script src="/app.js"></script>
<script src="{gateway.url}/consent.js" data-write-key="{write_key}" defer></script>
</body></html>"""
    )
    (folder / "app.js").write_text(
        f"""const segmentio = {{ apiKey: "{write_key}", apiHost: "{api_host}", protocol: "http" }};
window.analytics = AnalyticsNext.AnalyticsBrowser.load(
  {{ writeKey: "{write_key}", cdnSettings: {{ integrations: {{ "Segment.io": segmentio }} }} }},
  {{ integrations: {{ "Segment.io": segmentio }} }},
);
document.getElementById("signup").addEventListener("click", () => {{
  analytics.track("Signed Up", {{ plan: "pro" }});
}});
"""
    )
    port = free_port()
    handler = functools.partial(_QuietHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{port}/"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_banners_choice_reaches_the_events_analytics_js_sends(
    server: Gateway, page: Any, tmp_path: Path
) -> None:
    source = _source(server, "shop", "gdpr")
    site = _app_site(tmp_path, server, source["write_key"])
    page.goto(site)
    banner = page.get_by_role("dialog", name="Your privacy choices")
    banner.wait_for()
    boxes = banner.get_by_role("checkbox")
    offered = [b for b in boxes.all() if not b.is_disabled()]
    assert offered
    assert not any(b.is_checked() for b in offered)  # GDPR: nothing pre-ticked
    _axe(page, "consent banner")
    _screenshot(page, "consent-banner")
    banner.get_by_role("checkbox", name="Analytics").check()
    banner.get_by_role("button", name="Save choices").click()
    assert banner.count() == 0
    page.get_by_role("button", name="Sign up").click()
    anonymous_id = page.evaluate("JSON.parse(localStorage.getItem('ajs_anonymous_id'))")
    auditor = server.cli("tokens", "create", "--role", "auditor")["token"]

    def decided() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = httpx.get(
            f"{server.url}/v1/decisions",
            params={"userId": anonymous_id, "source_id": source["source_id"]},
            headers=_bearer(auditor),
        ).json()["items"]
        return [d for d in found if d["event"] == "Signed Up"] or None

    (decision,) = wait_for(decided, timeout=20)
    assert decision["action"] == "forward"
    assert decision["consent_ref"] == "event"  # the choice travelled in the event itself
    history = httpx.get(
        f"{server.url}/v1/consent/history",
        params={"userId": anonymous_id},
        headers=_bearer(source["server_key"]),
    ).json()["records"]
    assert {(r["purpose"], r["granted"], r["source"]) for r in history} >= {
        ("analytics", True, "banner"),
        ("personalization", False, "banner"),
    }
    # answered: it does not show again, nothing more loads, and the visitor can reopen it
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.reload()
    reopen = page.get_by_role("button", name="Privacy choices")
    reopen.wait_for()
    assert page.get_by_role("dialog").count() == 0
    assert not [url for url in asked if "/v1/banner" in url]
    reopen.click()
    page.get_by_role("dialog", name="Your privacy choices").wait_for()
    assert [url for url in asked if "/v1/banner" in url]  # its purposes, once reopened
    assert page.get_by_role("dialog", name="Your privacy choices").is_visible()
    assert page.get_by_role("checkbox", name="Analytics").is_checked()
    assert page.evaluate("document.activeElement.closest('[role=dialog]') !== null")


def test_the_banner_honours_gpc_and_offers_do_not_sell_under_ccpa(
    server: Gateway, page: Any, tmp_path: Path
) -> None:
    source = _source(server, "ccpa-shop", "ccpa")
    site = _app_site(tmp_path, server, source["write_key"])
    page.add_init_script(
        "Object.defineProperty(navigator, 'globalPrivacyControl', {get: () => true})"
    )
    page.goto(site)
    banner = page.get_by_role("dialog", name="Your privacy choices")
    banner.wait_for()
    assert banner.get_by_text("Global Privacy Control").is_visible()
    assert banner.get_by_role("checkbox", name="Marketing").is_disabled()
    assert not banner.get_by_role("checkbox", name="Marketing").is_checked()
    assert banner.get_by_role("checkbox", name="Analytics").is_checked()  # CCPA: opt-out
    _axe(page, "consent banner (ccpa)")
    banner.get_by_role("link", name="Do not sell or share my personal information").click()
    prefs = page.evaluate("window.consentgate.preferences()")
    assert prefs["sale_sharing"] is False
    assert prefs["marketing"] is False
    assert prefs["analytics"] is True
    anonymous_id = page.evaluate("JSON.parse(localStorage.getItem('ajs_anonymous_id'))")

    def recorded() -> dict[str, bool] | None:
        records = httpx.get(
            f"{server.url}/v1/consent/history",
            params={"userId": anonymous_id},
            headers=_bearer(source["server_key"]),
        ).json()["records"]
        return {r["purpose"]: r["granted"] for r in records} or None

    assert wait_for(recorded, timeout=10)["sale_sharing"] is False


def test_the_console_shows_the_queue_the_verification_and_its_chart(
    server: Gateway, page: Any
) -> None:
    source = _source(server, "console-app", "gdpr")
    writer = (source["write_key"], "")
    for i, analytics in enumerate((True, True, False)):
        context = {"consent": {"categoryPreferences": {"analytics": analytics}}}
        httpx.post(
            f"{server.url}/v1/track",
            auth=writer,
            json={"userId": f"console-{i}", "event": "Viewed", "context": context},
        )
    made = httpx.post(
        f"{server.url}/v1/privacy/requests",
        headers=_bearer(source["server_key"]),
        json={"type": "access", "userId": "console-0"},
    ).json()
    token = server.cli("tokens", "create", "--role", "auditor")["token"]
    page.goto(f"{server.url}/console")
    _axe(page, "console sign-in")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Compliance console").wait_for()
    assert made["id"] in page.get_by_role("region", name="Privacy requests").inner_text()
    assert page.get_by_text("Verified:").first.is_visible()

    def charted() -> bool | None:
        page.reload()
        return page.locator("svg.chart rect.bar").count() >= 2 or None

    wait_for(charted, timeout=20)
    chart = page.locator("svg.chart").bounding_box()
    assert chart is not None
    assert chart["width"] > 300
    assert chart["height"] > 100
    bar = page.locator("svg.chart rect.bar-forward").first.bounding_box()
    assert bar is not None
    assert bar["height"] > 0
    _axe(page, "console")
    _screenshot(page, "console")
    page.get_by_role("link", name="Audit log").first.click()
    page.get_by_role("heading", name="Audit log", level=1).wait_for()
    _axe(page, "console audit log")
    page.locator("table a").first.click()
    page.get_by_role("heading", name="Inclusion proof").wait_for()
    _axe(page, "console audit entry")
    page.get_by_role("link", name="Lookup").first.click()
    page.get_by_label("userId or trace id").fill("console-0")
    page.get_by_role("button", name="Look up").click()
    page.get_by_role("heading", name="Decisions").wait_for()
    assert re.search(r"forward", page.content())
    _axe(page, "console lookup")
    _screenshot(page, "console-lookup")
