"""Onboarding flows and experiments (DESIGN, "The personalization core"):

PUT/GET/DELETE /v1/flows/{key}      admins define them (auditors read), versioned, audited
GET /v1/flows/{key}/results         per variant: exposures, conversions, rate, p-value
GET /v1/personalize?flow=…          what the subject's app shows: variant, steps, flags,
                                    progress, and why; the baseline when consent,
                                    suppression or the core says so; ETag/304
"""

from __future__ import annotations

from typing import Annotated, Any, cast

import msgspec
from litestar import Request, Response, delete, get, put
from litestar.params import FromPath, JSONBody, QueryParameter

from gateway.callers import (
    ADMIN,
    AUDITOR,
    SERVER_KEY,
    SUBJECT_TOKEN,
    AnyCaller,
    ServerKeyCaller,
    Staff,
    SubjectCaller,
    access,
)
from gateway.dependencies import (
    AuditTrailDep,
    ConsentStoreDep,
    DatabaseDep,
    FlowStoreDep,
    RecommendersDep,
    SettingsDep,
    ViewCacheDep,
)
from gateway.errors import BadRequest, NotFound
from gateway.evaluation import evaluation_subject
from gateway.route_helpers import etag_of, not_modified
from personalization import (
    FlagError,
    Flow,
    FlowResults,
    Recommendation,
    baseline_reason,
    flow_results,
    recommend,
)
from profiles import ProfileView, interaction_key

_READERS = access(AUDITOR, ADMIN)
_encoder = msgspec.json.Encoder()


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    done: list[str]  # the steps of the served flow the subject has done, in the flow's order
    next: str | None  # the first step not done yet (None: all done)


class Personalization(msgspec.Struct, frozen=True, kw_only=True):
    flow: str
    variant: str
    # targeted, split, no_match; or the baseline's reason: consent_missing, suppressed,
    # unknown_subject, core_unavailable
    reason: str
    steps: list[str]
    flags: dict[str, Any]
    recommendations: list[Recommendation] = []
    progress: Progress


@put(
    "/v1/flows/{key:str}", operation_id="put_flow", tags=["flows"], status_code=200, **access(ADMIN)
)
async def put_flow(
    key: FromPath[str],
    data: JSONBody[dict[str, Any]],
    caller: Staff,
    flows: FlowStoreDep,
    trail: AuditTrailDep,
    recommenders: RecommendersDep,
) -> Flow:
    """Create or replace a flow (DESIGN's shape); its version goes up by one."""
    try:
        flow = await flows.put(key, data)
    except FlagError as exc:
        raise BadRequest(str(exc), code="invalid_flow") from None
    recommenders.kinds = await flows.recommend_kinds()  # the core records them from now on
    await trail.log.append(
        "flow.saved",
        f"admin:{caller.role}",
        {"key": key, "version": flow.version, "definition": msgspec.to_builtins(flow.definition)},
    )
    return flow


@get(
    "/v1/flows/{key:str}",
    operation_id="get_flow",
    tags=["flows"],
    **_READERS,
    opt={"audit_endpoint": "flow"},
)
async def get_flow(key: FromPath[str], flows: FlowStoreDep) -> Flow:
    """The flow's definition and version."""
    flow = await flows.get(key)
    if flow is None:
        raise NotFound("no such flow", code="flow_not_found")
    return flow


@delete(
    "/v1/flows/{key:str}",
    operation_id="delete_flow",
    tags=["flows"],
    status_code=204,
    **access(ADMIN),
)
async def delete_flow(
    key: FromPath[str], caller: Staff, flows: FlowStoreDep, trail: AuditTrailDep
) -> None:
    """Remove a flow and its exposures."""
    if not await flows.delete(key):
        raise NotFound("no such flow", code="flow_not_found")
    await trail.log.append("flow.deleted", f"admin:{caller.role}", {"key": key})


@get(
    "/v1/flows/{key:str}/results",
    operation_id="get_flow_results",
    tags=["flows"],
    **_READERS,
    opt={"audit_endpoint": "flow.results"},
)
async def get_flow_results(
    key: FromPath[str], flows: FlowStoreDep, database: DatabaseDep
) -> FlowResults:
    """Per variant: exposures, conversions (the goal event after exposure), the rate, and the
    two-sided p-value of a two-proportion z-test against the baseline."""
    flow = await flows.get(key)
    if flow is None:
        raise NotFound("no such flow", code="flow_not_found")
    return await flow_results(flows, database, flow)


@get(
    "/v1/personalize",
    operation_id="personalize",
    tags=["flows"],
    **access(SERVER_KEY, SUBJECT_TOKEN),
)
async def personalize(
    request: Request[Any, Any, Any],
    caller: AnyCaller,
    flows: FlowStoreDep,
    consent: ConsentStoreDep,
    database: DatabaseDep,
    settings: SettingsDep,
    views: ViewCacheDep,
    recommenders: RecommendersDep,
    flow: Annotated[str, QueryParameter(min_length=1, max_length=100)],
    user_id: Annotated[
        str | None, QueryParameter(name="userId", min_length=1, max_length=1024)
    ] = None,
    anonymous_id: Annotated[
        str | None, QueryParameter(name="anonymousId", min_length=1, max_length=1024)
    ] = None,
) -> Response[Personalization]:
    """The flow variant the subject's app shows, its steps, flags and progress, and why."""
    if not isinstance(caller, ServerKeyCaller | SubjectCaller):  # the guard admits no other
        raise TypeError("personalize takes a server key or a subject token")
    if isinstance(caller, ServerKeyCaller) and (user_id is None) == (anonymous_id is None):
        raise BadRequest("give exactly one of userId and anonymousId", code="invalid_query")
    compiled = await flows.compiled(flow)
    if compiled is None:
        raise NotFound("no such flow", code="flow_not_found")
    definition = compiled.flow.definition
    subject = await evaluation_subject(
        caller,
        user_id or anonymous_id,
        consent=consent,
        database=database,
        budget_seconds=settings.core_time_budget_ms / 1000,
        needs_profile=definition.requires_consent is not None,
        views=views,
    )
    if subject is None:  # unreachable: a server key named one, a token is one
        raise BadRequest("no subject", code="invalid_query")
    purpose = definition.requires_consent
    fallback = baseline_reason(subject, purpose)
    # a flow that is not personalized reads nothing of the profile
    view = subject.view if purpose is not None and fallback is None else None
    source_id = caller.source.source_id
    if fallback is not None:
        assignment = compiled.baseline(fallback)
    else:
        earlier = await flows.exposure(source_id, subject.targeting_key, flow)
        sticky = compiled.variant(earlier[0], cast(Any, earlier[1])) if earlier else None
        if sticky is None:
            sticky = compiled.assign(
                view or ProfileView(today=subject.today), subject.targeting_key
            )
            await flows.expose(source_id, subject.targeting_key, flow, sticky)
        assignment = sticky
    recommendations = (
        _recommendations(recommenders, source_id, definition, subject) if fallback is None else []
    )
    body = Personalization(
        flow=flow,
        variant=assignment.variant,
        reason=assignment.reason,
        steps=assignment.steps,
        flags=assignment.flags,
        recommendations=recommendations,
        progress=_progress(view, flow, assignment.steps),
    )
    etag = etag_of(_encoder.encode(body))
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if not_modified(request, etag):
        return Response(content=None, status_code=304, headers=headers)  # type: ignore[arg-type]
    return Response(content=body, headers=headers)


def _recommendations(
    recommenders: RecommendersDep, source_id: str, definition: Any, subject: Any
) -> list[Recommendation]:
    """The flow's recommendations for the subject (a flow that is not personalized reads no
    history: the popular items)."""
    if definition.recommend is None:
        return []
    key = interaction_key(definition.recommend.event, definition.recommend.item_property)
    history: Any = ()
    if definition.requires_consent is not None and subject.view is not None:
        history = (subject.view.computed.get("items") or {}).get(key, {}).keys()
    return recommend(recommenders.model(source_id, key), history, definition.recommend.count)


def _progress(view: ProfileView | None, flow: str, steps: list[str]) -> Progress:
    done_steps: set[str] = set()
    if view is not None:
        flows = view.computed.get("flows") or {}
        done_steps = set((flows.get(flow) or {}).get("done", ()))
    done = [step for step in steps if step in done_steps]
    return Progress(done=done, next=next((step for step in steps if step not in done_steps), None))


FLOW_HANDLERS = [put_flow, get_flow, delete_flow, get_flow_results, personalize]
