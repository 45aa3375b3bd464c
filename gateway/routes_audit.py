"""Auditor reads: the decision log (and, with server keys or auditors, consent history)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, get
from litestar.params import FromQuery

from gateway.admin import authenticate_admin
from gateway.errors import BadRequest, NotFound
from gateway.runtime import Runtime
from observability import DecisionQuery

Limit = Annotated[int, msgspec.Meta(ge=1, le=1000)]
_ACTIONS = ("forward", "strip", "drop")


def _runtime(request: Request) -> Runtime:  # type: ignore[type-arg]
    runtime: Runtime = request.app.state.runtime
    return runtime


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
    """Per-event decisions, newest first: `?userId=&source_id=&action=&reason=&from=&to=`.

    `userId` (with `source_id`) is pseudonymized here; `from`/`to` are ISO-8601 times.
    """
    runtime = _runtime(request)
    await authenticate_admin(
        runtime.database, request.headers.get("authorization"), ("auditor", "admin")
    )
    # userId, from and to as DESIGN spells them (`from` is a Python keyword)
    user = request.query_params.get("userId")
    since = _time(request.query_params.get("from"), "from")
    until = _time(request.query_params.get("to"), "to")
    if action is not None and action not in _ACTIONS:
        raise BadRequest(f"action: expected one of {list(_ACTIONS)}", code="invalid_query")
    if not 1 <= limit <= 1000:
        raise BadRequest("limit: 1 to 1000", code="invalid_query")
    subjects: tuple[str, ...] = ()
    if user is not None:
        if source_id is None:
            raise BadRequest(
                "userId needs source_id: pseudonyms are per source", code="invalid_query"
            )
        source = await runtime.sources.by_id(source_id)
        if source is None:
            raise NotFound(f"no source {source_id!r}", code="source_not_found")
        subjects = tuple(
            p("subject", user) for p in source.pseudonymizers or (source.pseudonymize,)
        )
    try:
        items, following = await runtime.decision_log.query(
            DecisionQuery(
                source_id=source_id,
                subjects=subjects,
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
