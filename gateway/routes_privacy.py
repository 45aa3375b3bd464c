"""Privacy requests over HTTP: submit (server key or subject token), read, list, export.

Who may see what: a server key its own source's requests; a subject token its own subject's;
auditors and admins every request (never an access export: that is the subject's data). A
request another caller may not see is a 404, never a 403: ids do not leak.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import get, post
from litestar.params import FromPath, FromQuery, JSONBody

from gateway import privacy, privacy_store
from gateway.callers import (
    ADMIN,
    AUDITOR,
    SERVER_KEY,
    SUBJECT_TOKEN,
    AnyCaller,
    ServerKeyCaller,
    StaffCaller,
    Subject,
    SubjectCaller,
    access,
)
from gateway.dependencies import RuntimeDep
from gateway.errors import BadRequest, Forbidden, NotFound
from gateway.sources import Source
from observability import decode_cursor, encode_cursor, remember_raw_identifiers

UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
Purpose = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class PrivacyRequestBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A server key names the user (`userId`, and its `anonymousIds`, whose events before
    sign-in are theirs too); a subject token names no one: the token's subject is the one."""

    type: privacy.RequestKind
    userId: UserId | None = None
    anonymousIds: Annotated[list[UserId], msgspec.Meta(max_length=100)] = []
    purposes: Annotated[list[Purpose], msgspec.Meta(max_length=32)] = []


class StoreReceipt(msgspec.Struct, frozen=True, kw_only=True):
    store: str
    action: str
    count: int
    at: str


class PrivacyRequestView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: str
    status: str
    source_id: str
    subject: str
    purposes: list[str]
    received_at: datetime
    deadline: datetime
    completed_at: datetime | None
    receipts: list[StoreReceipt]
    receipt: dict[str, Any] | None  # signed: {"receipt", "signature", "key_id"}


class PrivacyRequestPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[PrivacyRequestView]
    next: str | None = None


class PrivacyExport(msgspec.Struct, frozen=True, kw_only=True):
    """An access request's export: the subject's own data in every store."""

    request_id: str
    source_id: str
    generated_at: datetime
    subject: str
    consent: dict[str, Any]
    profiles: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    privacy_requests: list[dict[str, Any]]


def _view(runtime: RuntimeDep, row: dict[str, Any]) -> PrivacyRequestView:
    return msgspec.convert(privacy.public_view(runtime.receipts, row), PrivacyRequestView)


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
    data: JSONBody[PrivacyRequestBody], caller: AnyCaller, runtime: RuntimeDep
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
    if data.purposes and data.type != "opt_out":
        raise BadRequest("purposes: only an opt_out request names purposes", code="invalid_body")
    row = await privacy.submit(runtime, source, data.type, subjects, requested_by, data.purposes)
    return _view(runtime, row)


async def _readable(runtime: RuntimeDep, caller: AnyCaller, request_id: str) -> dict[str, Any]:
    """The request, if the caller may read it; otherwise 404."""
    row = await privacy_store.get(runtime.database, request_id)
    match caller:
        case SubjectCaller(source=source, subject=subject):
            if row is not None and (row["source_id"], row["subject"]) != (
                source.source_id,
                subject,
            ):
                row = None
        case ServerKeyCaller(source=source):
            if row is not None and row["source_id"] != source.source_id:
                row = None
    if row is None:
        raise NotFound("no such privacy request", code="request_not_found")
    return row


_READERS = access(SERVER_KEY, SUBJECT_TOKEN, AUDITOR, ADMIN)


@get(
    "/v1/privacy/requests/{request_id:str}",
    operation_id="get_privacy_request",
    tags=["privacy"],
    **_READERS,
    opt={"audit_endpoint": "privacy_request"},
)
async def get_request(
    request_id: FromPath[str], caller: AnyCaller, runtime: RuntimeDep
) -> PrivacyRequestView:
    """Status, deadline, per-store receipts and, once complete, the signed receipt."""
    return _view(runtime, await _readable(runtime, caller, request_id))


@get(
    "/v1/privacy/requests/{request_id:str}/export",
    operation_id="get_privacy_export",
    tags=["privacy"],
    **_READERS,
)
async def get_export(
    request_id: FromPath[str], caller: AnyCaller, runtime: RuntimeDep
) -> PrivacyExport:
    """A completed access request's export (server key or the subject's token only)."""
    if isinstance(caller, StaffCaller):
        raise Forbidden(
            "an export is the subject's data: a server key or subject token fetches it",
            code="export_not_for_auditors",
        )
    row = await _readable(runtime, caller, request_id)
    if row["kind"] != "access":
        raise BadRequest("only an access request has an export", code="not_an_access_request")
    source = await runtime.sources.by_id(row["source_id"])
    if source is None:
        raise NotFound("no such privacy request", code="request_not_found")
    exported = await privacy.export(runtime, source, row)
    fetched_by = (
        "subject_token" if isinstance(caller, SubjectCaller) else f"server_key:{source.source_id}"
    )
    await runtime.trail.privacy_request_step(
        row, {"store": "export", "action": f"fetched_by:{fetched_by}", "count": 1}
    )
    return msgspec.convert(exported, PrivacyExport, from_attributes=True)


@get(
    "/v1/privacy/requests",
    operation_id="list_privacy_requests",
    tags=["privacy"],
    **access(SERVER_KEY, AUDITOR, ADMIN),
    opt={"audit_endpoint": "privacy_requests"},
)
async def list_requests(
    caller: AnyCaller,
    runtime: RuntimeDep,
    status: FromQuery[str | None] = None,
    source_id: FromQuery[str | None] = None,
    limit: FromQuery[int] = 100,
    cursor: FromQuery[str | None] = None,
) -> PrivacyRequestPage:
    """The queue, nearest deadline first: auditors and admins see every source's (filter
    with `source_id`), a server key its own source's. Filter by `status`; pages of `limit`
    (1 to 1000), the next one at `cursor`."""
    if status is not None and status not in ("received", "in_progress", "completed"):
        raise BadRequest("status: received, in_progress or completed", code="invalid_query")
    if not 1 <= limit <= 1000:
        raise BadRequest("limit: 1 to 1000", code="invalid_query")
    try:
        after = decode_cursor(cursor) if cursor else None
    except ValueError as exc:
        raise BadRequest(str(exc), code="invalid_query") from None
    if isinstance(caller, ServerKeyCaller):
        source_id = caller.source.source_id
    rows = await privacy_store.listing(
        runtime.database, source_id=source_id, status=status, limit=limit + 1, after=after
    )
    following = (
        encode_cursor(rows[limit - 1]["deadline"], rows[limit - 1]["request_id"])
        if len(rows) > limit
        else None
    )
    return PrivacyRequestPage(items=[_view(runtime, row) for row in rows[:limit]], next=following)


@get(
    "/v1/me/requests",
    operation_id="list_my_requests",
    tags=["privacy"],
    **access(SUBJECT_TOKEN),
)
async def list_my_requests(caller: Subject, runtime: RuntimeDep) -> PrivacyRequestPage:
    """The token's own subject's privacy requests."""
    rows = await privacy_store.listing(
        runtime.database, source_id=caller.source.source_id, subject=caller.subject
    )
    return PrivacyRequestPage(items=[_view(runtime, row) for row in rows])


PRIVACY_HANDLERS = [submit_request, get_request, get_export, list_requests, list_my_requests]
