"""The compliance console (`/console`): what auditors and admins check, as pages.

Sign in with an auditor or admin token: the session cookie (HttpOnly, SameSite=Strict, 30
minutes, path /console) keeps the token's hash, never the token, and every request checks that
the token still stands. Every form, the sign-in's included, carries a CSRF token. The pages
read through the same stores as the API, and each read is written to the audit log by its
shape, as the API's are. Auditors change nothing; an admin can lift a suppression (audited).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import FormMultiDict
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from gateway.admin import Role, role_of_digest
from gateway.console_views import WINDOWS, decisions_by_action, minute, queue_row
from gateway.errors import GatewayError
from gateway.route_helpers import runtime_of, set_session_cookie
from gateway.runtime import Runtime
from gateway.sources import Source, hash_key
from observability import DecisionQuery, verify_inclusion
from privacy import NotSuppressed
from web import PAGE_HEADERS, SESSION_SECONDS, Session, SessionError, render

COOKIE = "cg_console"
_ROLES: tuple[Role, ...] = ("auditor", "admin")
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_ENTRIES_PER_PAGE = 50
_QUEUE_SHOWN = 50


@dataclass(frozen=True, slots=True)
class _Staff:
    role: Role
    session: Session
    csrf: str


def _page(html: str, status: int = 200) -> Response[str]:
    return Response(html, status_code=status, media_type=MediaType.HTML, headers=PAGE_HEADERS)


def _with_cookie(
    request: Request[Any, Any, Any], response: Response[Any], value: str
) -> Response[Any]:
    return set_session_cookie(request, response, COOKIE, value, "/console", SESSION_SECONDS)


def _signin_page(request: Request[Any, Any, Any], problem: str | None = None) -> Response[str]:
    """The sign-in form, under a fresh pre-session whose CSRF token the form carries."""
    codec = runtime_of(request).console
    before = codec.new("")
    html = render("console_signin.html", csrf=codec.csrf_token(before), problem=problem)
    response = _page(html, 401 if problem else 200)
    return _with_cookie(request, response, codec.encode(before))


async def _staff(request: Request[Any, Any, Any]) -> _Staff | None:
    """The signed-in auditor or admin; None without a standing session."""
    runtime = runtime_of(request)
    try:
        session = runtime.console.decode(request.cookies.get(COOKIE))
        if not session.token:
            return None
        role = await role_of_digest(runtime.database, session.token, _ROLES)
    except (SessionError, GatewayError):
        return None
    return _Staff(role=role, session=session, csrf=runtime.console.csrf_token(session))


async def _posted(request: Request[Any, Any, Any]) -> tuple[_Staff, FormMultiDict] | None:
    staff = await _staff(request)
    if staff is None:
        return None
    form = await request.form()
    if not runtime_of(request).console.check_csrf(staff.session, form.get("csrf")):
        return None
    return staff, form


def _signed_out() -> Response[Any]:
    return Redirect("/console", status_code=303, headers=PAGE_HEADERS)


def _console(template: str, staff: _Staff, status: int = 200, **context: Any) -> Response[str]:
    return _page(render(template, role=staff.role, csrf=staff.csrf, **context), status)


@get("/console", include_in_schema=False)
async def console_home(
    request: Request[Any, Any, Any], window: FromQuery[str] = "24h"
) -> Response[Any]:
    staff = await _staff(request)
    if staff is None:
        return _signin_page(request)
    if window not in WINDOWS:
        window = "24h"
    runtime = runtime_of(request)
    await runtime.trail.query_made(staff.role, "console", {"window": window})
    now = datetime.now(UTC)
    queue = await runtime.privacy.store.listing(open_only=True, limit=_QUEUE_SHOWN)
    done = await runtime.privacy.store.listing(status="completed", latest_first=True, limit=20)
    names = {s.source_id: s.name for s in await runtime.sources.every()}
    chart, reasons = await decisions_by_action(runtime.decision_log, now, window)
    return _console(
        "console.html",
        staff,
        queue=[queue_row(runtime.privacy.view(r), names, now) for r in queue],
        queue_more=len(queue) == _QUEUE_SHOWN,
        completed=[queue_row(runtime.privacy.view(r), names, now) for r in done],
        verification=await runtime.audit.verify(),
        checkpoint=await runtime.audit.latest_checkpoint(),
        chart=chart,
        reasons=reasons,
        window=window,
        windows=list(WINDOWS),
        keys=runtime.receipts.public_keys(),
    )


@get("/console/audit", include_in_schema=False)
async def console_audit(
    request: Request[Any, Any, Any], before: FromQuery[int | None] = None
) -> Response[Any]:
    """The audit log, newest first, a page at a time, with its verification."""
    staff = await _staff(request)
    if staff is None:
        return _signed_out()
    runtime = runtime_of(request)
    await runtime.trail.query_made(staff.role, "console.audit", {})
    verification = await runtime.audit.verify()
    last = verification.size if before is None else max(0, min(before, verification.size + 1) - 1)
    first = max(0, last - _ENTRIES_PER_PAGE)
    entries = await runtime.audit.entries(after=first, limit=last - first) if last else []
    return _console(
        "console_audit.html",
        staff,
        verification=verification,
        checkpoint=await runtime.audit.latest_checkpoint(),
        entries=[
            {
                "seq": e["seq"],
                "kind": e["entry"].get("kind", ""),
                "at": e["entry"].get("at", ""),
                "actor": e["entry"].get("actor", ""),
            }
            for e in reversed(entries)
        ],
        older=first if first > 0 else None,
    )


@get("/console/audit/{seq:int}", include_in_schema=False)
async def console_audit_entry(request: Request[Any, Any, Any], seq: FromPath[int]) -> Response[Any]:
    """One entry, its inclusion proof in the latest checkpoint, and that proof checked."""
    staff = await _staff(request)
    if staff is None:
        return _signed_out()
    runtime = runtime_of(request)
    await runtime.trail.query_made(staff.role, "console.audit_entry", {})
    found = await runtime.audit.entries(after=seq - 1, limit=1) if seq > 0 else []
    if not found or found[0]["seq"] != seq:
        return _console(
            "console_message.html",
            staff,
            404,
            title="No such entry",
            detail=f"The audit log has no entry {seq}.",
        )
    entry = found[0]
    checkpoint = await runtime.audit.latest_checkpoint()
    proof: list[str] | None = None
    proven = False
    if checkpoint is not None and seq <= checkpoint["tree_size"]:
        proof = (await runtime.audit.proofs([seq], checkpoint["tree_size"])).get(seq)
        proven = proof is not None and verify_inclusion(
            seq - 1,
            checkpoint["tree_size"],
            bytes.fromhex(entry["leaf_hash"]),
            [bytes.fromhex(h) for h in proof],
            bytes.fromhex(checkpoint["root"]),
        )
    return _console(
        "console_entry.html",
        staff,
        seq=seq,
        entry=json.dumps(entry["entry"], indent=2, sort_keys=True),
        leaf_hash=entry["leaf_hash"],
        checkpoint=checkpoint,
        proof=proof,
        proven=proven,
    )


@get("/console/lookup", include_in_schema=False)
async def console_lookup(request: Request[Any, Any, Any], q: FromQuery[str] = "") -> Response[Any]:
    """A subject's decisions and consent history, by userId or by a trace id."""
    staff = await _staff(request)
    if staff is None:
        return _signed_out()
    runtime = runtime_of(request)
    q = q.strip()[:256]
    sources = await runtime.sources.every()
    by_trace = bool(_TRACE_ID.fullmatch(q))
    about: list[tuple[Source, str]] = []
    if q and not by_trace:
        about = [(s, s.pseudonymize("subject", q)) for s in sources]
    await runtime.trail.query_made(
        staff.role, "console.lookup", {"by": "trace" if by_trace else "user"} if q else {}, about
    )
    if not q:
        return _console(
            "console_lookup.html", staff, q="", by_trace=False, decisions=[], history=[]
        )
    if by_trace:
        decisions, _ = await runtime.decision_log.query(DecisionQuery(trace_id=q, limit=100))
        subjects = {(d["source_id"], d["subject"] or d["anonymous"]) for d in decisions}
    else:
        subjects = {(s.source_id, p) for s in sources for p in s.pseudonyms(q)}
        decisions, _ = await runtime.decision_log.query(
            DecisionQuery(subjects=tuple(p for _, p in subjects), limit=100)
        )
    names = {s.source_id: s.name for s in sources}
    history = [
        {
            "at": minute(r.recorded_at),
            "source": names.get(source_id, source_id),
            "subject": subject,
            "purpose": r.purpose,
            "choice": "granted" if r.granted else "refused",
            "through": r.source,
            "policy": r.policy_version,
        }
        for source_id, subject in sorted(s for s in subjects if s[1])
        for r in await runtime.consent.history(source_id, subject)
    ]
    history.sort(key=lambda row: row["at"], reverse=True)
    return _console(
        "console_lookup.html",
        staff,
        q=q,
        by_trace=by_trace,
        decisions=[
            {
                **d,
                "source": names.get(d["source_id"], d["source_id"]),
                "at": minute(d["decided_at"]),
                "reasons": ", ".join(d["reasons"]),
            }
            for d in decisions
        ],
        history=history,
    )


@get("/console/suppressions", include_in_schema=False)
async def console_suppressions(request: Request[Any, Any, Any]) -> Response[Any]:
    staff = await _staff(request)
    if staff is None:
        return _signed_out()
    runtime = runtime_of(request)
    await runtime.trail.query_made(staff.role, "console.suppressions", {})
    return await _suppressions_page(runtime, staff)


async def _suppressions_page(
    runtime: Runtime, staff: _Staff, notice: str | None = None, status: int = 200
) -> Response[str]:
    names = {s.source_id: s.name for s in await runtime.sources.every()}
    found = await runtime.suppressions.listing()
    return _console(
        "console_suppressions.html",
        staff,
        status,
        notice=notice,
        suppressions=[
            {
                "source_id": s.source_id,
                "source": names.get(s.source_id, s.source_id),
                "subject": s.subject,
                "since": minute(s.since),
                "by": s.by,
            }
            for s in found
            if s.suppressed
        ],
    )


@post("/console/suppressions/lift", include_in_schema=False, status_code=200)
async def console_lift(request: Request[Any, Any, Any]) -> Response[Any]:
    """An admin lifts a suppression (audited); an auditor is refused and nothing changes."""
    posted = await _posted(request)
    if posted is None:
        return _signed_out()
    staff, form = posted
    runtime = runtime_of(request)
    if staff.role != "admin":
        return await _suppressions_page(
            runtime, staff, "Only an admin can lift a suppression: nothing changed.", 403
        )
    source = await runtime.sources.by_id(str(form.get("source_id", "")))
    subject = str(form.get("subject", ""))
    if source is None:
        return await _suppressions_page(runtime, staff, "No such source: nothing changed.", 404)
    try:
        await runtime.suppressions.lift(
            source.source_id, subject, source.jurisdiction, "admin:console"
        )
    except NotSuppressed:
        return await _suppressions_page(runtime, staff, "That subject is not suppressed.", 404)
    return await _suppressions_page(runtime, staff, f"The suppression of {subject} is lifted.")


@post("/console/signin", include_in_schema=False, status_code=200)
async def console_signin(request: Request[Any, Any, Any]) -> Response[Any]:
    runtime = runtime_of(request)
    form = await request.form()
    try:
        before = runtime.console.decode(request.cookies.get(COOKIE))
    except SessionError:
        return _signin_page(request, "The sign-in form expired: try again.")
    if not runtime.console.check_csrf(before, form.get("csrf")):
        return _signin_page(request, "The sign-in form expired: try again.")
    token = str(form.get("token", "")).strip()
    try:
        await role_of_digest(runtime.database, hash_key(token), _ROLES)
    except GatewayError:
        return _signin_page(request, "That token is not an auditor or admin token that stands.")
    session = runtime.console.new(hash_key(token))
    return _with_cookie(request, _signed_out(), runtime.console.encode(session))


@post("/console/signout", include_in_schema=False, status_code=200)
async def console_signout(request: Request[Any, Any, Any]) -> Response[Any]:
    response = _signed_out()
    if await _posted(request) is None:  # no session, or a forged form: nothing to end
        return response
    response.delete_cookie(COOKIE, path="/console")
    return response


CONSOLE_HANDLERS = [
    console_home,
    console_audit,
    console_audit_entry,
    console_lookup,
    console_suppressions,
    console_lift,
    console_signin,
    console_signout,
]
