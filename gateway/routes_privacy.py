"""Privacy requests over HTTP: submit (server key or subject token), read, list, export.

Who may see what: a server key its own source's requests; a subject token its own subject's;
auditors and admins every request (never an access export: that is the subject's data).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.params import FromPath, FromQuery

from gateway import audit, privacy, privacy_store
from gateway.admin import authenticate_admin
from gateway.errors import BadRequest, Forbidden, NotFound
from gateway.route_helpers import (
    bearer_kind,
    bounded_query,
    read_body,
    runtime_of,
    server_source,
    token_subject,
)
from gateway.runtime import Runtime
from gateway.sources import Source
from observability import decode_cursor, encode_cursor, remember_raw_identifiers

UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
Purpose = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class ServerKeyRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    type: privacy.RequestKind
    userId: UserId
    # the user's anonymous ids, whose events (before sign-in) belong to them too
    anonymousIds: Annotated[list[UserId], msgspec.Meta(max_length=100)] = []
    purposes: Annotated[list[Purpose], msgspec.Meta(max_length=32)] = []


class SubjectRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    type: privacy.RequestKind
    purposes: Annotated[list[Purpose], msgspec.Meta(max_length=32)] = []


def _all_pseudonyms(source: Source, user_id: str, anonymous_ids: list[str]) -> list[str]:
    """The user's pseudonyms under every key version, then its anonymous ids'."""
    pseudonymizers = source.pseudonymizers or (source.pseudonymize,)
    return list(
        dict.fromkeys(
            p("subject", value) for value in (user_id, *anonymous_ids) for p in pseudonymizers
        )
    )


@post(
    "/v1/privacy/requests",
    operation_id="submit_privacy_request",
    tags=["privacy"],
    status_code=202,
)
async def submit_request(request: Request) -> dict[str, Any]:  # type: ignore[type-arg]
    """An erasure, access or opt-out request; 202 with its status, deadline and receipts."""
    runtime = runtime_of(request)
    if bearer_kind(request) == "st_":
        source, subject = await token_subject(request)
        ask: Any = await read_body(request, SubjectRequest)
        subjects = [subject]
        requested_by = "subject_token"
    else:
        source = await server_source(request)
        ask = await read_body(request, ServerKeyRequest)
        remember_raw_identifiers((ask.userId, *ask.anonymousIds))
        subjects = _all_pseudonyms(source, ask.userId, ask.anonymousIds)
        requested_by = f"server_key:{source.source_id}"
    if ask.purposes and ask.type != "opt_out":
        raise BadRequest("purposes: only an opt_out request names purposes", code="invalid_body")
    row = await privacy.submit(runtime, source, ask.type, subjects, requested_by, ask.purposes)
    return privacy.public_view(runtime.receipts, row)


async def _readable(request: Request, request_id: str) -> tuple[Runtime, dict[str, Any]]:  # type: ignore[type-arg]
    """The request, if the caller may read it; otherwise 404 (never 403: ids do not leak)."""
    runtime = runtime_of(request)
    row = await privacy_store.get(runtime.database, request_id)
    if bearer_kind(request) == "at_":
        role = await authenticate_admin(
            runtime.database, request.headers.get("authorization"), ("auditor", "admin")
        )
        await audit.query_made(runtime, role, "privacy_request", {"id": request_id[:64]})
    elif bearer_kind(request) == "st_":
        source, subject = await token_subject(request)
        if row is not None and (row["source_id"], row["subject"]) != (source.source_id, subject):
            row = None
    else:
        source = await server_source(request)
        if row is not None and row["source_id"] != source.source_id:
            row = None
    if row is None:
        raise NotFound("no such privacy request", code="request_not_found")
    return runtime, row


@get("/v1/privacy/requests/{request_id:str}", operation_id="get_privacy_request", tags=["privacy"])
async def get_request(request: Request, request_id: FromPath[str]) -> dict[str, Any]:  # type: ignore[type-arg]
    """Status, deadline, per-store receipts and, once complete, the signed receipt."""
    runtime, row = await _readable(request, request_id)
    return privacy.public_view(runtime.receipts, row)


@get(
    "/v1/privacy/requests/{request_id:str}/export",
    operation_id="get_privacy_export",
    tags=["privacy"],
)
async def get_export(request: Request, request_id: FromPath[str]) -> dict[str, Any]:  # type: ignore[type-arg]
    """A completed access request's export (server key or the subject's token only)."""
    if bearer_kind(request) == "at_":
        raise Forbidden(
            "an export is the subject's data: a server key or subject token fetches it",
            code="export_not_for_auditors",
        )
    runtime, row = await _readable(request, request_id)
    if row["kind"] != "access":
        raise BadRequest("only an access request has an export", code="not_an_access_request")
    source = await runtime.sources.by_id(row["source_id"])
    if source is None:
        raise NotFound("no such privacy request", code="request_not_found")
    exported = await privacy.export(runtime, source, row)
    fetched_by = (
        "subject_token" if bearer_kind(request) == "st_" else f"server_key:{source.source_id}"
    )
    await audit.privacy_request_step(
        runtime, row, {"store": "export", "action": f"fetched_by:{fetched_by}", "count": 1}
    )
    return exported


@get("/v1/privacy/requests", operation_id="list_privacy_requests", tags=["privacy"])
async def list_requests(
    request: Request,  # type: ignore[type-arg]
    limit: FromQuery[int] = 100,
    cursor: FromQuery[str | None] = None,
) -> dict[str, Any]:
    """The queue, nearest deadline first: auditors and admins see every source's (filter
    with `source_id`), a server key its own source's. Filter by `status`; pages of `limit`
    (1 to 1000), the next one at `cursor`."""
    runtime = runtime_of(request)
    status = request.query_params.get("status")
    if status is not None and status not in ("received", "in_progress", "completed"):
        raise BadRequest("status: received, in_progress or completed", code="invalid_query")
    if not 1 <= limit <= 1000:
        raise BadRequest("limit: 1 to 1000", code="invalid_query")
    try:
        after = decode_cursor(cursor) if cursor else None
    except ValueError as exc:
        raise BadRequest(str(exc), code="invalid_query") from None
    if bearer_kind(request) == "at_":
        role = await authenticate_admin(
            runtime.database, request.headers.get("authorization"), ("auditor", "admin")
        )
        params = bounded_query(request)
        await audit.query_made(runtime, role, "privacy_requests", params)
        source_id = params.get("source_id")
    else:
        source_id = (await server_source(request)).source_id
    rows = await privacy_store.listing(
        runtime.database, source_id=source_id, status=status, limit=limit + 1, after=after
    )
    following = (
        encode_cursor(rows[limit - 1]["deadline"], rows[limit - 1]["request_id"])
        if len(rows) > limit
        else None
    )
    return {
        "items": [privacy.public_view(runtime.receipts, row) for row in rows[:limit]],
        "next": following,
    }


@get("/v1/me/requests", operation_id="list_my_requests", tags=["privacy"])
async def list_my_requests(request: Request) -> dict[str, Any]:  # type: ignore[type-arg]
    """The token's own subject's privacy requests."""
    source, subject = await token_subject(request)
    runtime = runtime_of(request)
    rows = await privacy_store.listing(
        runtime.database, source_id=source.source_id, subject=subject
    )
    return {"items": [privacy.public_view(runtime.receipts, row) for row in rows]}


PRIVACY_HANDLERS = [submit_request, get_request, get_export, list_requests, list_my_requests]
