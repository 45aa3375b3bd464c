"""Auditor reads: the decision log and the audit log (its entries, proofs and verification).

Every route here takes an auditor or admin token (its guard), and every read is written to the
audit log by its shape, once, by that guard.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Response, get
from litestar.params import FromQuery, QueryParameter

from gateway.callers import ADMIN, AUDITOR, access
from gateway.dependencies import AuditLogDep, DecisionLogDep, SourceRegistryDep
from gateway.errors import BadRequest, NotFound
from gateway.sources import Source
from observability import DecisionQuery, DecisionRecord, Verification

# sequence numbers and tree sizes fit in a signed 64-bit column; larger asks are refused
_MAX_SEQ = 2**62
_ACTIONS = ("forward", "strip", "drop")
_STAFF = access(AUDITOR, ADMIN)


class DecisionPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[DecisionRecord]  # pseudonyms and keyed ids only
    next: str | None


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    entry: dict[str, Any]
    leaf_hash: str
    proof: list[str] | None = None  # in the jsonl export: the inclusion proof


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    """A signed tree head: Ed25519 over {tree_size, root, signed_at} as canonical JSON."""

    tree_size: int
    root: str
    signed_at: str
    key_id: str
    signature: str


class AuditPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[AuditEntry]
    checkpoint: Checkpoint | None


class ConsistencyProof(msgspec.Struct, frozen=True, kw_only=True):
    old_size: int
    new_size: int
    proof: list[str]


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name}: expected an ISO-8601 time", code="invalid_query") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _query(name: str, description: str) -> Any:
    return QueryParameter(name=name, max_length=1024, description=description)


@get(
    "/v1/decisions",
    operation_id="list_decisions",
    tags=["audit"],
    **_STAFF,
    opt={"audit_endpoint": "decisions"},
)
async def list_decisions(
    sources: SourceRegistryDep,
    decision_log: DecisionLogDep,
    user_id: Annotated[str | None, _query("userId", "a raw userId, keyed here")] = None,
    message_id: Annotated[str | None, _query("messageId", "a raw messageId, keyed here")] = None,
    since: Annotated[str | None, _query("from", "ISO-8601 time, inclusive")] = None,
    until: Annotated[str | None, _query("to", "ISO-8601 time, exclusive")] = None,
    source_id: FromQuery[str | None] = None,
    action: FromQuery[str | None] = None,
    reason: FromQuery[str | None] = None,
    limit: FromQuery[int] = 100,
    cursor: FromQuery[str | None] = None,
) -> DecisionPage:
    """Per-event decisions, newest first.

    `userId` and `messageId` are keyed here under every source's keys (the gateway holds them
    all, and an auditor need not know which source a user came through); `source_id` narrows
    the search.
    """
    if action is not None and action not in _ACTIONS:
        raise BadRequest(f"action: expected one of {list(_ACTIONS)}", code="invalid_query")
    if not 1 <= limit <= 1000:
        raise BadRequest("limit: 1 to 1000", code="invalid_query")
    subjects: tuple[str, ...] = ()
    message_ids: tuple[str, ...] = ()
    if user_id is not None or message_id is not None:
        searched = await _sources_searched(sources, source_id)
        if user_id is not None:
            subjects = tuple(dict.fromkeys(p for s in searched for p in s.pseudonyms(user_id)))
        if message_id is not None:
            message_ids = tuple(dict.fromkeys(s.message_id(message_id) for s in searched))
    ask = DecisionQuery(
        source_id=source_id,
        subjects=subjects,
        message_ids=message_ids,
        action=action,
        reason=reason,
        since=_time(since, "from"),
        until=_time(until, "to"),
        limit=limit,
        cursor=cursor,
    )
    try:
        items, following = await decision_log.query(ask)
    except ValueError as exc:
        raise BadRequest(str(exc), code="invalid_query") from None
    return DecisionPage(items=msgspec.convert(items, list[DecisionRecord]), next=following)


async def _sources_searched(sources: SourceRegistryDep, source_id: str | None) -> list[Source]:
    """`source_id`'s source, or every source."""
    if source_id is None:
        return await sources.every()
    source = await sources.by_id(source_id)
    if source is None:
        raise NotFound("no such source", code="source_not_found")
    return [source]


@get(
    "/v1/audit",
    operation_id="list_audit",
    tags=["audit"],
    **_STAFF,
    opt={"audit_endpoint": "audit"},
)
async def list_audit(
    audit_log: AuditLogDep,
    kind: FromQuery[str | None] = None,
    after: FromQuery[int] = 0,
    limit: FromQuery[int] = 100,
    format: FromQuery[str] = "json",
) -> Response[AuditPage | str]:
    """Audit entries after `after`, with the latest signed checkpoint. `format=jsonl` exports
    one entry a line (after a first line holding the checkpoint), each with its inclusion
    proof in that checkpoint's tree."""
    if not 1 <= limit <= 10_000 or not 0 <= after <= _MAX_SEQ or format not in {"json", "jsonl"}:
        raise BadRequest("limit 1..10000, after >= 0, format json or jsonl", code="invalid_query")
    items = await audit_log.entries(kind=kind, after=after, limit=limit)
    checkpoint = await audit_log.latest_checkpoint()
    if format == "json":
        page = msgspec.convert({"items": items, "checkpoint": checkpoint}, AuditPage)
        return Response(page)
    size = checkpoint["tree_size"] if checkpoint else 0
    proofs = await audit_log.proofs([i["seq"] for i in items], size)
    lines = [json.dumps({"checkpoint": checkpoint})] + [
        json.dumps({**item, "proof": proofs.get(item["seq"])}) for item in items
    ]
    return Response("\n".join(lines) + "\n", media_type="application/x-ndjson")


@get(
    "/v1/audit/verify",
    operation_id="verify_audit",
    tags=["audit"],
    **_STAFF,
    opt={"audit_endpoint": "audit_verify"},
)
async def verify_audit(audit_log: AuditLogDep) -> Verification:
    """Recompute every hash, the chain, each checkpoint's root and signature."""
    return await audit_log.verify()


@get(
    "/v1/audit/consistency",
    operation_id="audit_consistency",
    tags=["audit"],
    **_STAFF,
    opt={"audit_endpoint": "audit_consistency"},
)
async def audit_consistency(
    audit_log: AuditLogDep, old_size: FromQuery[int], new_size: FromQuery[int]
) -> ConsistencyProof:
    """A consistency proof between two tree sizes (RFC 6962 PROOF(m, D[n]))."""
    if not 0 < old_size <= new_size <= _MAX_SEQ:
        raise BadRequest("0 < old_size <= new_size <= 2^62", code="invalid_query")
    try:
        proof = await audit_log.consistency(old_size, new_size)
    except ValueError as exc:
        raise BadRequest(str(exc), code="invalid_query") from None
    return ConsistencyProof(old_size=old_size, new_size=new_size, proof=proof)


AUDIT_HANDLERS = [list_decisions, list_audit, verify_audit, audit_consistency]
