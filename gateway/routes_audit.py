"""Auditor reads: the decision log (and, with server keys or auditors, consent history)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get
from litestar.params import FromQuery

from gateway import audit
from gateway.admin import authenticate_admin
from gateway.errors import BadRequest, NotFound
from gateway.route_helpers import bounded_query, runtime_of
from gateway.runtime import Runtime
from gateway.sources import Source
from observability import DecisionQuery

Limit = Annotated[int, msgspec.Meta(ge=1, le=1000)]
# sequence numbers and tree sizes fit in a signed 64-bit column; larger asks are refused
_MAX_SEQ = 2**62
_ACTIONS = ("forward", "strip", "drop")


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name}: expected an ISO-8601 time", code="invalid_query") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@get("/v1/decisions", operation_id="list_decisions", tags=["audit"])
async def list_decisions(
    request: Request,  # type: ignore[type-arg]
    source_id: FromQuery[str | None] = None,
    action: FromQuery[str | None] = None,
    reason: FromQuery[str | None] = None,
    limit: FromQuery[int] = 100,
    cursor: FromQuery[str | None] = None,
) -> dict[str, Any]:
    """Per-event decisions, newest first:
    `?userId=&messageId=&source_id=&action=&reason=&from=&to=`.

    `userId` and `messageId` are keyed here, under every source's keys (or `source_id`'s
    alone), as the gateway stored them; `from`/`to` are ISO-8601 times.
    """
    runtime = runtime_of(request)
    role = await authenticate_admin(
        runtime.database, request.headers.get("authorization"), ("auditor", "admin")
    )
    params = bounded_query(request)
    # userId, from and to as DESIGN spells them (`from` is a Python keyword)
    user = params.get("userId")
    since = _time(params.get("from"), "from")
    until = _time(params.get("to"), "to")
    if action is not None and action not in _ACTIONS:
        raise BadRequest(f"action: expected one of {list(_ACTIONS)}", code="invalid_query")
    if not 1 <= limit <= 1000:
        raise BadRequest("limit: 1 to 1000", code="invalid_query")
    message_id = params.get("messageId")
    subjects: tuple[str, ...] = ()
    message_ids: tuple[str, ...] = ()
    about: list[tuple[Source, str]] = []
    if user is not None or message_id is not None:
        sources = await _sources_searched(runtime, source_id)
        if user is not None:
            subjects = tuple(dict.fromkeys(p for s in sources for p in s.pseudonyms(user)))
            about = [(s, s.pseudonymize("subject", user)) for s in sources]
        if message_id is not None:
            message_ids = tuple(dict.fromkeys(s.message_id(message_id) for s in sources))
    await audit.query_made(runtime, role, "decisions", params, about)
    try:
        items, following = await runtime.decision_log.query(
            DecisionQuery(
                source_id=source_id,
                subjects=subjects,
                message_ids=message_ids,
                action=action,
                reason=reason,
                since=since,
                until=until,
                limit=limit,
                cursor=cursor,
            )
        )
    except ValueError as exc:
        raise BadRequest(str(exc), code="invalid_query") from None
    return {"items": items, "next": following}


async def _sources_searched(runtime: Runtime, source_id: str | None) -> list[Source]:
    """`source_id`'s source, or every source: the gateway holds every source's keys, and an
    auditor need not know which source a user came through."""
    if source_id is None:
        return await runtime.sources.every()
    source = await runtime.sources.by_id(source_id)
    if source is None:
        raise NotFound("no such source", code="source_not_found")
    return [source]


@get("/v1/audit", operation_id="list_audit", tags=["audit"])
async def list_audit(
    request: Request,  # type: ignore[type-arg]
    kind: FromQuery[str | None] = None,
    after: FromQuery[int] = 0,
    limit: FromQuery[int] = 100,
    format: FromQuery[str] = "json",
) -> Response[Any]:
    """Audit entries after `after`, with the latest signed checkpoint. `format=jsonl` exports
    one entry a line, each with its inclusion proof in that checkpoint's tree."""
    runtime = runtime_of(request)
    role = await authenticate_admin(
        runtime.database, request.headers.get("authorization"), ("auditor", "admin")
    )
    await audit.query_made(runtime, role, "audit", bounded_query(request))
    if not 1 <= limit <= 10_000 or not 0 <= after <= _MAX_SEQ or format not in {"json", "jsonl"}:
        raise BadRequest("limit 1..10000, after >= 0, format json or jsonl", code="invalid_query")
    items = await runtime.audit.entries(kind=kind, after=after, limit=limit)
    checkpoint = await runtime.audit.latest_checkpoint()
    if format == "json":
        return Response({"items": items, "checkpoint": checkpoint})
    size = checkpoint["tree_size"] if checkpoint else 0
    proofs = await runtime.audit.proofs([i["seq"] for i in items], size)
    lines = [json.dumps({"checkpoint": checkpoint})] + [
        json.dumps({**item, "proof": proofs.get(item["seq"])}) for item in items
    ]
    return Response("\n".join(lines) + "\n", media_type="application/x-ndjson")


@get("/v1/audit/verify", operation_id="verify_audit", tags=["audit"])
async def verify_audit(request: Request) -> Response[dict[str, Any]]:  # type: ignore[type-arg]
    """Recompute every hash, the chain, each checkpoint's root and signature."""
    runtime = runtime_of(request)
    role = await authenticate_admin(
        runtime.database, request.headers.get("authorization"), ("auditor", "admin")
    )
    result = await runtime.audit.verify()
    await audit.query_made(runtime, role, "audit_verify", {})
    return Response(msgspec.to_builtins(result))


@get("/v1/audit/consistency", operation_id="audit_consistency", tags=["audit"])
async def audit_consistency(
    request: Request,  # type: ignore[type-arg]
    old_size: FromQuery[int],
    new_size: FromQuery[int],
) -> dict[str, Any]:
    """A consistency proof between two tree sizes (RFC 6962 PROOF(m, D[n]))."""
    runtime = runtime_of(request)
    await authenticate_admin(
        runtime.database, request.headers.get("authorization"), ("auditor", "admin")
    )
    if not 0 < old_size <= new_size <= _MAX_SEQ:
        raise BadRequest("0 < old_size <= new_size <= 2^62", code="invalid_query")
    try:
        proof = await runtime.audit.consistency(old_size, new_size)
    except ValueError as exc:
        raise BadRequest(str(exc), code="invalid_query") from None
    return {"old_size": old_size, "new_size": new_size, "proof": proof}


AUDIT_HANDLERS = [list_decisions, list_audit, verify_audit, audit_consistency]
