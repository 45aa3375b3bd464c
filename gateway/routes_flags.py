"""Feature flags and remote config (DESIGN, "The personalization core"): admins define them,
auditors read them. Every change is versioned and written to the audit log; an invalid
definition is 400 `invalid_flag` naming the path at fault."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import delete, get, put
from litestar.params import FromPath, FromQuery, JSONBody

from gateway.callers import ADMIN, AUDITOR, Staff, access
from gateway.dependencies import AuditTrailDep, EvaluationEventsDep, FlagStoreDep
from gateway.errors import BadRequest, NotFound
from personalization import Flag, FlagError

_READERS = access(AUDITOR, ADMIN)
_MAX_PAGE = 500


class FlagPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Flag]
    next: str | None = None  # the `after` of the next page


@put(
    "/v1/flags/{key:str}",
    operation_id="put_flag",
    tags=["flags"],
    status_code=200,
    **access(ADMIN),
)
async def put_flag(
    key: FromPath[str],
    data: JSONBody[dict[str, Any]],
    caller: Staff,
    flags: FlagStoreDep,
    trail: AuditTrailDep,
    evaluation_events: EvaluationEventsDep,
) -> Flag:
    """Create or replace a flag (DESIGN's shape); its version goes up by one."""
    try:
        flag = await flags.put(key, data)
    except FlagError as exc:
        raise BadRequest(str(exc), code="invalid_flag") from None
    evaluation_events.everything_changed()
    await trail.log.append(
        "flag.saved",
        f"admin:{caller.role}",
        {"key": key, "version": flag.version, "definition": msgspec.to_builtins(flag.definition)},
    )
    return flag


@get(
    "/v1/flags/{key:str}",
    operation_id="get_flag",
    tags=["flags"],
    **_READERS,
    opt={"audit_endpoint": "flag"},
)
async def get_flag(key: FromPath[str], flags: FlagStoreDep) -> Flag:
    """The flag's definition and version."""
    flag = await flags.get(key)
    if flag is None:
        raise NotFound("no such flag", code="flag_not_found")
    return flag


@get(
    "/v1/flags",
    operation_id="list_flags",
    tags=["flags"],
    **_READERS,
    opt={"audit_endpoint": "flags"},
)
async def list_flags(
    flags: FlagStoreDep, limit: FromQuery[int] = 100, after: FromQuery[str] = ""
) -> FlagPage:
    """The flags by key, a page at a time."""
    if not 1 <= limit <= _MAX_PAGE:
        raise BadRequest(f"limit: 1 to {_MAX_PAGE}", code="invalid_query")
    items = await flags.listing(limit, after)
    return FlagPage(items=items, next=items[-1].key if len(items) == limit else None)


@delete(
    "/v1/flags/{key:str}",
    operation_id="delete_flag",
    tags=["flags"],
    status_code=204,
    **access(ADMIN),
)
async def delete_flag(
    key: FromPath[str],
    caller: Staff,
    flags: FlagStoreDep,
    trail: AuditTrailDep,
    evaluation_events: EvaluationEventsDep,
) -> None:
    """Remove a flag: evaluations answer FLAG_NOT_FOUND (the app's default) from then on."""
    if not await flags.delete(key):
        raise NotFound("no such flag", code="flag_not_found")
    evaluation_events.everything_changed()
    await trail.log.append("flag.deleted", f"admin:{caller.role}", {"key": key})


FLAG_HANDLERS = [put_flag, get_flag, list_flags, delete_flag]
