"""Segments (DESIGN, "The personalization core"): admins define them, auditors read them.

`PUT /v1/segments/{key}` takes `{"name", "rule"}` and answers the segment with its version; an
invalid rule (an unknown op, a cycle, a reference to no segment) is 400 `invalid_rule` naming
the node. `GET` adds `members`, the subjects in it now.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import delete, get, put
from litestar.params import FromPath, FromQuery, JSONBody

from gateway.callers import ADMIN, AUDITOR, Staff, access
from gateway.dependencies import AuditTrailDep, SegmentStoreDep
from gateway.errors import BadRequest, NotFound
from personalization import segment_readers
from profiles import Change, Member, RuleError, Segment


class SegmentBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    rule: dict[str, Any]


class SegmentPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Segment]
    next: str | None = None  # the `after` of the next page


class MemberPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Member]
    next: str | None = None


class ChangePage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Change]
    next: int | None = None  # the `before` of the next page


def _limit(limit: int) -> int:
    if not 1 <= limit <= _MAX_PAGE:
        raise BadRequest(f"limit: 1 to {_MAX_PAGE}", code="invalid_query")
    return limit


_MAX_PAGE = 500


_READERS = access(AUDITOR, ADMIN)


@put(
    "/v1/segments/{key:str}",
    operation_id="put_segment",
    tags=["segments"],
    status_code=200,
    **access(ADMIN),
)
async def put_segment(
    key: FromPath[str],
    data: JSONBody[SegmentBody],
    caller: Staff,
    segments: SegmentStoreDep,
    trail: AuditTrailDep,
) -> Segment:
    """Create or replace a segment; its version goes up by one."""
    try:
        segment = await segments.put(key, data.name, data.rule)
    except RuleError as exc:
        raise BadRequest(str(exc), code="invalid_rule") from None
    await trail.log.append(
        "segment.saved", f"admin:{caller.role}", {"key": key, "version": segment.version}
    )
    return segment


@get(
    "/v1/segments/{key:str}",
    operation_id="get_segment",
    tags=["segments"],
    **_READERS,
    opt={"audit_endpoint": "segment"},
)
async def get_segment(key: FromPath[str], segments: SegmentStoreDep) -> Segment:
    """The segment and how many subjects are in it now."""
    return await _existing(segments, key)


@get(
    "/v1/segments",
    operation_id="list_segments",
    tags=["segments"],
    **_READERS,
    opt={"audit_endpoint": "segments"},
)
async def list_segments(
    segments: SegmentStoreDep, limit: FromQuery[int] = 100, after: FromQuery[str] = ""
) -> SegmentPage:
    """The segments by key, a page at a time (`next` is the `after` of the next page)."""
    items = await segments.listing(_limit(limit), after)
    return SegmentPage(items=items, next=items[-1].key if len(items) == limit else None)


@get(
    "/v1/segments/{key:str}/members",
    operation_id="list_segment_members",
    tags=["segments"],
    **_READERS,
    opt={"audit_endpoint": "segment.members"},
)
async def list_segment_members(
    key: FromPath[str],
    segments: SegmentStoreDep,
    limit: FromQuery[int] = 100,
    after: FromQuery[str] = "",
) -> MemberPage:
    """The segment's members (pseudonyms) by source and pseudonym, a page at a time."""
    await _existing(segments, key)
    source_id, _, subject = after.partition(":")
    items = await segments.members(key, _limit(limit), (source_id, subject))
    last = items[-1] if len(items) == limit else None
    return MemberPage(items=items, next=f"{last.source_id}:{last.subject}" if last else None)


@get(
    "/v1/segments/{key:str}/changes",
    operation_id="list_segment_changes",
    tags=["segments"],
    **_READERS,
    opt={"audit_endpoint": "segment.changes"},
)
async def list_segment_changes(
    key: FromPath[str],
    segments: SegmentStoreDep,
    limit: FromQuery[int] = 100,
    before: FromQuery[int | None] = None,
) -> ChangePage:
    """Who joined and left the segment, when and why, newest first, a page at a time."""
    await _existing(segments, key)
    items = await segments.changes(key, _limit(limit), before)
    return ChangePage(items=items, next=items[-1].id if len(items) == limit else None)


async def _existing(segments: SegmentStoreDep, key: str) -> Segment:
    segment = await segments.get(key)
    if segment is None:
        raise NotFound("no such segment", code="segment_not_found")
    return segment


@delete(
    "/v1/segments/{key:str}",
    operation_id="delete_segment",
    tags=["segments"],
    status_code=204,
    **access(ADMIN),
)
async def delete_segment(
    key: FromPath[str], caller: Staff, segments: SegmentStoreDep, trail: AuditTrailDep
) -> None:
    """Remove a segment and its memberships; refused while another segment, a flag or a flow
    refers to it."""
    try:
        removed = await segments.delete(key, segment_readers)
    except RuleError as exc:
        raise BadRequest(str(exc), code="invalid_rule") from None
    if not removed:
        raise NotFound("no such segment", code="segment_not_found")
    await trail.log.append("segment.deleted", f"admin:{caller.role}", {"key": key})


SEGMENT_HANDLERS = [
    put_segment,
    get_segment,
    list_segments,
    list_segment_members,
    list_segment_changes,
    delete_segment,
]
