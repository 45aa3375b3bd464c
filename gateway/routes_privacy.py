"""Privacy requests over HTTP: submit (server key or subject token), read, list, export; and
the suppression list (auditors read it, admins lift a suppression).

Who may see what: a server key its own source's requests; a subject token its own subject's;
auditors and admins every request (never an access export: that is the subject's data). A
request another caller may not see is a 404, never a 403: ids do not leak.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from consent import ConsentStore
from gateway.callers import (
    ADMIN,
    AUDITOR,
    SERVER_KEY,
    SUBJECT_TOKEN,
    AnyCaller,
    ServerKeyCaller,
    Staff,
    StaffCaller,
    Subject,
    SubjectCaller,
    access,
)
from gateway.dependencies import (
    ConsentStoreDep,
    DecisionLogDep,
    PrivacyRequestsDep,
    ProfileReaderDep,
    SourceRegistryDep,
    SuppressionsDep,
)
from gateway.errors import BadRequest, Forbidden, NotFound
from gateway.runtime import ProfileReader
from gateway.sources import Source
from observability import DecisionLog, decode_cursor, encode_cursor, remember_raw_identifiers
from privacy import (
    STATUSES,
    NotSuppressed,
    PrivacyError,
    PrivacyExport,
    PrivacyRequest,
    PrivacyRequests,
    PrivacyRequestView,
    RequestKind,
    Suppression,
    build_export,
)

UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
Purpose = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class PrivacyRequestBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A server key names the user (`userId`, and its `anonymousIds`, whose events before
    sign-in are theirs too); a subject token names no one: the token's subject is the one."""

    type: RequestKind
    userId: UserId | None = None
    anonymousIds: Annotated[list[UserId], msgspec.Meta(max_length=100)] = []
    purposes: Annotated[list[Purpose], msgspec.Meta(max_length=32)] = []


class PrivacyRequestPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[PrivacyRequestView]
    next: str | None = None


class SuppressionPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Suppression]


def _all_pseudonyms(source: Source, user_id: str, anonymous_ids: list[str]) -> list[str]:
    """The user's pseudonyms under every key version, then its anonymous ids'."""
    return list(
        dict.fromkeys(p for value in (user_id, *anonymous_ids) for p in source.pseudonyms(value))
    )


@post(
    "/v1/privacy/requests",
    operation_id="submit_privacy_request",
    tags=["privacy"],
    status_code=202,
    **access(SERVER_KEY, SUBJECT_TOKEN),
)
async def submit_request(
    data: JSONBody[PrivacyRequestBody], caller: AnyCaller, privacy: PrivacyRequestsDep
) -> PrivacyRequestView:
    """An erasure, access or opt-out request; 202 with its status, deadline and receipts."""
    match caller:
        case SubjectCaller(source=source, subject=subject):
            if data.userId is not None or data.anonymousIds:
                raise BadRequest(
                    "a subject token asks for its own subject: send no userId or anonymousIds",
                    code="invalid_body",
                )
            subjects = [subject]
            requested_by = "subject_token"
        case ServerKeyCaller(source=source):
            if data.userId is None:
                raise BadRequest("userId: the user the request is for", code="invalid_body")
            remember_raw_identifiers((data.userId, *data.anonymousIds))
            subjects = _all_pseudonyms(source, data.userId, data.anonymousIds)
            requested_by = f"server_key:{source.source_id}"
        case _:
            raise Forbidden("staff tokens do not submit privacy requests", code="forbidden_role")
    try:
        request = await privacy.submit(source, data.type, subjects, requested_by, data.purposes)
    except PrivacyError as exc:
        raise BadRequest(str(exc), code=exc.code) from None
    return privacy.view(request)


async def _readable(privacy: PrivacyRequests, caller: AnyCaller, request_id: str) -> PrivacyRequest:
    """The request, if the caller may read it; otherwise 404."""
    request = await privacy.store.get(request_id)
    match caller:
        case SubjectCaller(source=source, subject=subject):
            if request is not None and (request.source_id, request.subject) != (
                source.source_id,
                subject,
            ):
                request = None
        case ServerKeyCaller(source=source):
            if request is not None and request.source_id != source.source_id:
                request = None
    if request is None:
        raise NotFound("no such privacy request", code="request_not_found")
    return request


_READERS = access(SERVER_KEY, SUBJECT_TOKEN, AUDITOR, ADMIN)


@get(
    "/v1/privacy/requests/{request_id:str}",
    operation_id="get_privacy_request",
    tags=["privacy"],
    **_READERS,
    opt={"audit_endpoint": "privacy_request"},
)
async def get_request(
    request_id: FromPath[str], caller: AnyCaller, privacy: PrivacyRequestsDep
) -> PrivacyRequestView:
    """Status, deadline, per-store receipts and, once complete, the signed receipt."""
    return privacy.view(await _readable(privacy, caller, request_id))


@get(
    "/v1/privacy/requests/{request_id:str}/export",
    operation_id="get_privacy_export",
    tags=["privacy"],
    **_READERS,
)
async def get_export(
    request_id: FromPath[str],
    caller: AnyCaller,
    privacy: PrivacyRequestsDep,
    consent: ConsentStoreDep,
    decision_log: DecisionLogDep,
    profile_reader: ProfileReaderDep,
) -> PrivacyExport:
    """A completed access request's export (server key or the subject's token only)."""
    if isinstance(caller, StaffCaller):
        raise Forbidden(
            "an export is the subject's data: a server key or subject token fetches it",
            code="export_not_for_auditors",
        )
    request = await _readable(privacy, caller, request_id)
    fetched_by = (
        "subject_token" if isinstance(caller, SubjectCaller) else f"server_key:{request.source_id}"
    )
    return await export_of(request, fetched_by, privacy, (consent, decision_log, profile_reader))


async def export_of(
    request: PrivacyRequest,
    fetched_by: str,
    privacy: PrivacyRequests,
    stores: tuple[ConsentStore, DecisionLog, ProfileReader],
) -> PrivacyExport:
    """An access request's export, its fetch recorded (the API's and the privacy center's)."""
    if request.kind != "access":
        raise BadRequest("only an access request has an export", code="not_an_access_request")
    consent, decision_log, profile_reader = stores

    async def requests_of(source_id: str, subject: str) -> list[PrivacyRequestView]:
        found = await privacy.store.listing(source_id=source_id, subject=subject)
        return [privacy.view(r) for r in found]

    exported = await build_export(
        request,
        consent=consent,
        profile_of=profile_reader,
        decisions_of=decision_log.for_subjects,
        requests_of=requests_of,
    )
    await privacy.record_step(request, "export", f"fetched_by:{fetched_by}", 1)
    return exported


@get(
    "/v1/privacy/requests",
    operation_id="list_privacy_requests",
    tags=["privacy"],
    **access(SERVER_KEY, AUDITOR, ADMIN),
    opt={"audit_endpoint": "privacy_requests"},
)
async def list_requests(
    caller: AnyCaller,
    privacy: PrivacyRequestsDep,
    status: FromQuery[str | None] = None,
    source_id: FromQuery[str | None] = None,
    limit: FromQuery[int] = 100,
    cursor: FromQuery[str | None] = None,
) -> PrivacyRequestPage:
    """The queue, nearest deadline first: auditors and admins see every source's (filter
    with `source_id`), a server key its own source's. Filter by `status`; pages of `limit`
    (1 to 1000), the next one at `cursor`."""
    if status is not None and status not in STATUSES:
        raise BadRequest("status: received, in_progress or completed", code="invalid_query")
    if not 1 <= limit <= 1000:
        raise BadRequest("limit: 1 to 1000", code="invalid_query")
    try:
        after = decode_cursor(cursor) if cursor else None
    except ValueError as exc:
        raise BadRequest(str(exc), code="invalid_query") from None
    if isinstance(caller, ServerKeyCaller):
        source_id = caller.source.source_id
    found = await privacy.store.listing(
        source_id=source_id, status=status, limit=limit + 1, after=after
    )
    following = (
        encode_cursor(found[limit - 1].deadline, found[limit - 1].request_id)
        if len(found) > limit
        else None
    )
    return PrivacyRequestPage(items=[privacy.view(r) for r in found[:limit]], next=following)


@get(
    "/v1/me/requests",
    operation_id="list_my_requests",
    tags=["privacy"],
    **access(SUBJECT_TOKEN),
)
async def list_my_requests(caller: Subject, privacy: PrivacyRequestsDep) -> PrivacyRequestPage:
    """The token's own subject's privacy requests."""
    found = await privacy.store.listing(source_id=caller.source.source_id, subject=caller.subject)
    return PrivacyRequestPage(items=[privacy.view(r) for r in found])


@get(
    "/v1/suppressions",
    operation_id="list_suppressions",
    tags=["privacy"],
    **access(AUDITOR, ADMIN),
    opt={"audit_endpoint": "suppressions"},
)
async def list_suppressions(
    suppressions: SuppressionsDep,
    source_id: FromQuery[str | None] = None,
    lifted: FromQuery[bool] = False,
) -> SuppressionPage:
    """Suppressed subjects (pseudonyms), oldest first; `lifted=true` adds lifted ones."""
    return SuppressionPage(items=await suppressions.listing(source_id, lifted=lifted))


@delete(
    "/v1/suppressions/{source_id:str}/{subject:str}",
    operation_id="lift_suppression",
    tags=["privacy"],
    status_code=204,
    **access(ADMIN),
)
async def lift_suppression(
    source_id: FromPath[str],
    subject: FromPath[str],
    caller: Staff,
    suppressions: SuppressionsDep,
    sources: SourceRegistryDep,
) -> None:
    """Lift a suppression (admin only, audited): the subject's events flow again, under new
    keys; what the erasure shredded stays shredded."""
    source = await sources.by_id(source_id)
    if source is None:
        raise NotFound("no such source", code="source_not_found")
    try:
        await suppressions.lift(source_id, subject, source.jurisdiction, f"admin:{caller.role}")
    except NotSuppressed:
        raise NotFound("this subject is not suppressed", code="not_suppressed") from None


PRIVACY_HANDLERS: list[Any] = [
    submit_request,
    get_request,
    get_export,
    list_requests,
    list_my_requests,
    list_suppressions,
    lift_suppression,
]
