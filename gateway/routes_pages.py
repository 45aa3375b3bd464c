"""The privacy center (`/privacy`): an end user's own consent and privacy requests, as pages
that work without JavaScript. The pages (`web`) render; this module supplies the subject's
data and carries out the forms through the same functions as the API.

An app links its user to `/privacy?token=st_…`. The token is traded for a session cookie
(HttpOnly, SameSite=Strict, 30 minutes) and dropped from the URL by a same-site hop: a Strict
cookie set during a cross-site navigation is not sent on that navigation's redirect. Every
request checks the token again (revoked or expired, the session ends), and every form carries
a CSRF token bound to the session. The pages take no user id: a session reaches its own
subject only.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import FormMultiDict
from litestar.params import FromPath

from gateway.callers import SubjectCaller
from gateway.errors import GatewayError
from gateway.privacy_center_view import KINDS, privacy_center_html, request_row
from gateway.route_helpers import runtime_of, set_session_cookie
from gateway.routes_consent import ConsentChange, SignedReceipt, record_consent
from gateway.routes_privacy import export_of
from privacy import PrivacyError
from web import (
    PAGE_HEADERS,
    SCRIPTED_PAGE_HEADERS,
    SESSION_SECONDS,
    Session,
    SessionError,
    render,
    static_file,
)

COOKIE = "cg_privacy"
POLICY_VERSION = "privacy-center"  # what the receipts name as the policy the choice was made on


def _page(html: str, status: int = 200, scripted: bool = False) -> Response[str]:
    headers = SCRIPTED_PAGE_HEADERS if scripted else PAGE_HEADERS
    return Response(html, status_code=status, media_type=MediaType.HTML, headers=headers)


def _entered(request: Request[Any, Any, Any], cookie: str) -> Response[str]:
    """The hop page that sets the session cookie (Secure whenever the page came over HTTPS)."""
    response = _page(render("enter.html"))
    return set_session_cookie(request, response, COOKIE, cookie, "/privacy", SESSION_SECONDS)


def _message(title: str, detail: str, status: int, back: bool = False) -> Response[str]:
    html = render("message.html", title=title, detail=detail, back="/privacy" if back else None)
    return _page(html, status)


async def _caller(request: Request[Any, Any, Any]) -> tuple[SubjectCaller, Session] | Response[str]:
    """The session's subject, or the page that says why there is none."""
    runtime = runtime_of(request)
    try:
        session = runtime.pages.decode(request.cookies.get(COOKIE))
        claims = await runtime.tokens.verify(session.token)
    except (SessionError, GatewayError):
        return _message(
            "Your session has ended",
            "Open your privacy center again from the link in the app.",
            401,
        )
    source = await runtime.sources.by_id(claims.source_id)
    if source is None:
        return _message("Your session has ended", "This app no longer exists.", 401)
    return SubjectCaller(source=source, subject=claims.subject), session


async def _posted_form(
    request: Request[Any, Any, Any],
) -> tuple[SubjectCaller, Session, FormMultiDict] | Response[str]:
    """A form's session subject and fields, once its CSRF token matched the session's."""
    found = await _caller(request)
    if isinstance(found, Response):
        return found
    caller, session = found
    form = await request.form()
    if not runtime_of(request).pages.check_csrf(session, form.get("csrf")):
        return _message("This form has expired", "Reload the page and try again.", 403, True)
    return caller, session, form


async def _center_page(
    request: Request[Any, Any, Any],
    caller: SubjectCaller,
    session: Session,
    notice: str | None = None,
    receipt: SignedReceipt | None = None,
    submitted: str | None = None,
) -> Response[str]:
    """The privacy center, with a notice (and the receipt, or the request) of what was just
    done."""
    runtime = runtime_of(request)
    csrf = runtime.pages.csrf_token(session)
    html = await privacy_center_html(
        caller, csrf, runtime.consent, runtime.privacy, notice, receipt, submitted
    )
    return _page(html, scripted=True)


@get("/pages/pages.css", include_in_schema=False)
async def pages_stylesheet() -> Response[bytes]:
    return Response(
        static_file("pages.css"),
        media_type="text/css",
        headers={"cache-control": "public, max-age=3600", "x-content-type-options": "nosniff"},
    )


@get("/pages/privacy.js", include_in_schema=False)
async def privacy_center_script() -> Response[bytes]:
    return Response(
        static_file("privacy.js"),
        media_type="text/javascript",
        headers={"cache-control": "public, max-age=300", "x-content-type-options": "nosniff"},
    )


@get("/privacy/requests.json", include_in_schema=False)
async def my_requests_now(
    request: Request[Any, Any, Any],
) -> Response[Any]:
    """The session subject's requests as the page's script updates them (status, receipts,
    the download once ready)."""
    found = await _caller(request)
    if isinstance(found, Response):
        ended = {"error": "session_ended", "detail": "open the privacy center again from the app"}
        return Response(ended, status_code=401, headers=PAGE_HEADERS)
    caller, _ = found
    privacy = runtime_of(request).privacy
    listed = await privacy.store.listing(source_id=caller.source.source_id, subject=caller.subject)
    rows = [request_row(privacy.view(r)) for r in listed]
    return Response(
        [
            {
                "id": row["id"],
                "kind_name": row["kind_name"],
                "status": row["status_code"],
                "download": row["download"],
                "receipts": row["receipts"],
            }
            for row in rows
        ],
        headers=PAGE_HEADERS,
    )


@get("/privacy", include_in_schema=False)
async def privacy_center(
    request: Request[Any, Any, Any],
) -> Response[str]:
    token = request.query_params.get("token")
    pages = runtime_of(request).pages
    if token is not None:
        try:
            await runtime_of(request).tokens.verify(token)
        except GatewayError:
            return _message(
                "This link no longer works",
                "It has expired or was withdrawn. Open your privacy center again from the app.",
                401,
            )
        return _entered(request, pages.encode(pages.new(token)))
    found = await _caller(request)
    if isinstance(found, Response):
        return found
    caller, session = found
    return await _center_page(request, caller, session)


@post("/privacy/consent", include_in_schema=False, status_code=200)
async def save_choices(
    request: Request[Any, Any, Any],
) -> Response[str]:
    posted = await _posted_form(request)
    if isinstance(posted, Response):
        return posted
    caller, session, form = posted
    known = set(caller.source.consent.known_purposes())
    shown = [p for p in form.getall("shown") if p in known] if "shown" in form else []
    granted = set(form.getall("granted")) if "granted" in form else set()
    if not shown or not granted <= set(shown):
        return _message("Nothing was saved", "The form did not name the purposes shown.", 400, True)
    change = ConsentChange(
        purposes={purpose: purpose in granted for purpose in shown}, policy_version=POLICY_VERSION
    )
    runtime = runtime_of(request)
    signed = await record_consent(
        request,
        change,
        caller.source,
        caller.subject,
        "subject_token",
        (runtime.consent, runtime.trail, runtime.receipts),
        fixed_method="privacy_center",
    )
    return await _center_page(request, caller, session, "Your choices are saved.", signed)


@post("/privacy/requests", include_in_schema=False, status_code=200)
async def submit_from_page(
    request: Request[Any, Any, Any],
) -> Response[str]:
    posted = await _posted_form(request)
    if isinstance(posted, Response):
        return posted
    caller, session, form = posted
    kind = form.get("type")
    if kind not in KINDS:
        return _message("Nothing was requested", "Choose download or deletion.", 400, True)
    if kind == "erasure" and form.get("confirm") != "yes":
        return _message(
            "Nothing was deleted",
            "Tick the box to confirm that you want your data deleted.",
            400,
            True,
        )
    try:
        submitted = await runtime_of(request).privacy.submit(
            caller.source, kind, [caller.subject], "privacy_center", []
        )
    except PrivacyError as exc:
        return _message("Nothing was requested", str(exc), 400, True)
    notice = (
        "Your download is being prepared: it appears below when it is ready."
        if kind == "access"
        else "Your data is being deleted. The receipts appear below as each store confirms."
    )
    return await _center_page(request, caller, session, notice, submitted=submitted.request_id)


@get("/privacy/requests/{request_id:str}/export", include_in_schema=False)
async def download_export(
    request: Request[Any, Any, Any],
    request_id: FromPath[str],
) -> Response[Any]:
    found = await _caller(request)
    if isinstance(found, Response):
        return found
    caller, _ = found
    runtime = runtime_of(request)
    privacy = runtime.privacy
    stored = await privacy.store.get(request_id)
    if stored is None or (stored.source_id, stored.subject) != (
        caller.source.source_id,
        caller.subject,
    ):
        return _message("No such download", "This download is not yours.", 404, True)
    if stored.kind != "access" or stored.status != "completed":
        return _message("Not ready yet", "Your download is still being prepared.", 409, True)
    exported = await export_of(
        stored,
        "privacy_center",
        privacy,
        (runtime.consent, runtime.decision_log, runtime.profile_reader),
    )
    return Response(
        msgspec.json.encode(exported),
        media_type=MediaType.JSON,
        headers={
            **PAGE_HEADERS,
            "content-disposition": f'attachment; filename="my-data-{request_id}.json"',
        },
    )


PAGE_HANDLERS = [
    pages_stylesheet,
    privacy_center_script,
    my_requests_now,
    privacy_center,
    save_choices,
    submit_from_page,
    download_export,
]
