"""Segments (DESIGN, "The personalization core"): admins define them, auditors read them.

`PUT /v1/segments/{key}` takes `{"name", "rule"}` and answers the segment with its version; an
invalid rule (an unknown op, a cycle, a reference to no segment) is 400 `invalid_rule` naming
the node. `GET` adds `members`, the subjects in it now.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import delete, get, put
from litestar.params import FromPath, JSONBody

from gateway.callers import ADMIN, AUDITOR, Staff, access
from gateway.dependencies import AuditTrailDep, SegmentStoreDep
from gateway.errors import BadRequest, NotFound
from profiles import RuleError, Segment


class SegmentBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    rule: dict[str, Any]


class SegmentPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Segment]


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
    segment = await segments.get(key)
    if segment is None:
        raise NotFound("no such segment", code="segment_not_found")
    return segment


@get(
    "/v1/segments",
    operation_id="list_segments",
    tags=["segments"],
    **_READERS,
    opt={"audit_endpoint": "segments"},
)
async def list_segments(segments: SegmentStoreDep) -> SegmentPage:
    """Every segment, by key."""
    return SegmentPage(items=await segments.listing())


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
    """Remove a segment and its memberships; refused while another segment refers to it."""
    try:
        removed = await segments.delete(key)
    except RuleError as exc:
        raise BadRequest(str(exc), code="invalid_rule") from None
    if not removed:
        raise NotFound("no such segment", code="segment_not_found")
    await trail.log.append("segment.deleted", f"admin:{caller.role}", {"key": key})


SEGMENT_HANDLERS = [put_segment, get_segment, list_segments, delete_segment]
