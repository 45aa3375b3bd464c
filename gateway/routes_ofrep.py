"""OpenFeature Remote Evaluation Protocol (open-feature/protocol, `service/openapi.yaml`):

    POST /ofrep/v1/evaluate/flags/{key}   one flag
    POST /ofrep/v1/evaluate/flags         every flag, with ETag / If-None-Match / 304

`Bearer st_…` evaluates for the token's subject; `Bearer sk_…` for `context.targetingKey` (the
raw userId, pseudonymized at once and never kept). A write key evaluates nothing (401). The
bodies and error codes are the protocol's: `{"key", "errorCode", "errorDetails"}` with
`FLAG_NOT_FOUND` (404), `PARSE_ERROR` / `INVALID_CONTEXT` / `TARGETING_KEY_MISSING` (400).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from litestar import Request, Response
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    RequestBody,
    Schema,
)
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import FromPath

from gateway._body import DECODE_FAILURES, check_depth
from gateway.callers import (
    SERVER_KEY,
    SUBJECT_TOKEN,
    ServerKeyCaller,
    SubjectCaller,
    caller_of,
    post,
    require,
)
from gateway.dependencies import (
    ConsentStoreDep,
    DatabaseDep,
    SettingsDep,
    ViewCacheDep,
)
from gateway.edge import EdgeConfig, RateLimiter
from gateway.errors import ErrorBody
from gateway.evaluation import evaluation_subject, targeting_key
from gateway.route_helpers import etag_of, not_modified, runtime_of
from gateway.runtime import Runtime
from personalization import CompiledFlag, Resolution, Subject, evaluate_flag

MAX_BODY = 64 * 1024
_NO_EDGE = EdgeConfig()


class EvaluationFailure(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    errorCode: Literal["PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL"]
    errorDetails: str


class FlagNotFound(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    errorCode: Literal["FLAG_NOT_FOUND"] = "FLAG_NOT_FOUND"
    errorDetails: str = "no flag with this key"


class BulkFailure(msgspec.Struct, frozen=True, kw_only=True):
    errorCode: Literal["PARSE_ERROR", "INVALID_CONTEXT", "GENERAL"]
    errorDetails: str


class EventStream(msgspec.Struct, frozen=True, kw_only=True):
    type: Literal["sse"] = "sse"
    url: str
    inactivityDelaySec: int = 120


class BulkItem(msgspec.Struct, frozen=True, kw_only=True):
    """One flag of a bulk answer: an evaluation success, or its failure (OFREP's oneOf)."""

    key: str
    value: Any | msgspec.UnsetType = msgspec.UNSET
    variant: str | msgspec.UnsetType = msgspec.UNSET
    reason: str | msgspec.UnsetType = msgspec.UNSET
    metadata: dict[str, str | bool | int | float] | msgspec.UnsetType = msgspec.UNSET
    errorCode: str | msgspec.UnsetType = msgspec.UNSET
    errorDetails: str | msgspec.UnsetType = msgspec.UNSET

    @classmethod
    def of(cls, result: Resolution | EvaluationFailure) -> BulkItem:
        if isinstance(result, EvaluationFailure):
            return cls(key=result.key, errorCode=result.errorCode, errorDetails=result.errorDetails)
        return cls(
            key=result.key,
            value=result.value,
            variant=result.variant,
            reason=result.reason,
            metadata=result.metadata,
        )


class BulkEvaluation(msgspec.Struct, frozen=True, kw_only=True):
    flags: list[BulkItem]
    eventStreams: list[EventStream] = []


@dataclass
class OfrepFailure(Exception):
    """An OFREP error answer: its status and the protocol's body."""

    status: int
    body: EvaluationFailure | FlagNotFound | BulkFailure


def ofrep_failure_response(_: Request[Any, Any, Any], exc: OfrepFailure) -> Response[Any]:
    return Response(content=exc.body, status_code=exc.status)


_encoder = msgspec.json.Encoder()
_context_decoder = msgspec.json.Decoder()


def _context(body: bytes, key: str) -> dict[str, Any]:
    """The request's `context` (an object; absent: empty); PARSE_ERROR or INVALID_CONTEXT."""
    if not body.strip():
        return {}

    def failure(code: Any, detail: str) -> OfrepFailure:
        if key:
            return OfrepFailure(
                400, EvaluationFailure(key=key, errorCode=code, errorDetails=detail)
            )
        return OfrepFailure(400, BulkFailure(errorCode=code, errorDetails=detail))

    if len(body) > MAX_BODY:
        raise failure("PARSE_ERROR", f"the body is over {MAX_BODY} bytes")
    try:
        check_depth(body, "the body")
        request = _context_decoder.decode(body)
    except DECODE_FAILURES as error:
        raise failure("PARSE_ERROR", f"not JSON: {error}") from None
    except Exception as error:  # check_depth's refusal
        raise failure("PARSE_ERROR", str(error)) from None
    if not isinstance(request, dict):
        raise failure("PARSE_ERROR", 'the body is a JSON object: {"context": {…}}')
    context = request.get("context", {})
    if context is None:
        return {}
    if not isinstance(context, dict):
        raise failure("INVALID_CONTEXT", "context is an object")
    return context


def _operation_class(bulk: bool) -> type[Operation]:
    """The raw body is read (to answer OFREP's PARSE_ERROR), so the document says its shape."""

    @dataclass
    class OfrepOperation(Operation):
        def __post_init__(self) -> None:
            context = Schema(
                type=OpenAPIType.OBJECT,
                properties={"context": Schema(type=OpenAPIType.OBJECT)},
                description="Evaluation context; a server key names the subject in "
                "context.targetingKey",
            )
            self.request_body = RequestBody(
                content={"application/json": OpenAPIMediaType(schema=context)}, required=False
            )
            if bulk:
                responses = dict(self.responses or {})
                responses["304"] = OpenAPIResponse(description="the evaluations are unchanged")
                self.responses = responses

    return OfrepOperation


def _errors(failure: type[msgspec.Struct]) -> dict[int, ResponseSpec]:
    specs = {
        400: ResponseSpec(failure, description="a body or context OFREP refuses"),
        401: ResponseSpec(
            ErrorBody, description="no subject token or server key (a write key evaluates nothing)"
        ),
        429: ResponseSpec(
            ErrorBody, description="over the caller's rate: retry after Retry-After seconds"
        ),
    }
    if failure is EvaluationFailure:
        specs[404] = ResponseSpec(FlagNotFound, description="no flag with this key")
    return specs


def _services(
    runtime: Runtime,
) -> tuple[ConsentStoreDep, DatabaseDep, SettingsDep, ViewCacheDep]:
    return runtime.consent, runtime.database, runtime.settings, runtime.views


BodyReader = Callable[[], Awaitable[bytes]]


async def _begin(
    caller: Any, limiter: RateLimiter, read_body: BodyReader, key: str
) -> tuple[ServerKeyCaller | SubjectCaller, dict[str, Any]]:
    """The caller (within its rate) and the request's context."""
    if not isinstance(caller, ServerKeyCaller | SubjectCaller):  # the guard admits no other
        raise TypeError("OFREP takes a server key or a subject token")
    _admit(limiter, caller)
    return caller, _context(await read_body(), key)


def _admit(limiter: RateLimiter, caller: ServerKeyCaller | SubjectCaller) -> None:
    if isinstance(caller, SubjectCaller):
        key, who = f"st:{caller.source.source_id}:{caller.subject}", "a subject"
    else:
        key, who = f"sk:{caller.source.source_id}", "a server key"
    limiter.admit(key, _NO_EDGE, who)


def _needs_profile(flags: list[CompiledFlag]) -> bool:
    return any(
        compiled.flag.definition.enabled and compiled.flag.definition.requires_consent is not None
        for compiled in flags
    )


def _needs_subject(compiled: CompiledFlag) -> bool:
    definition = compiled.flag.definition
    return definition.enabled and (
        definition.requires_consent is not None
        or any(split is not None for _, _, split in compiled.rules)
    )


async def _subject(
    caller: ServerKeyCaller | SubjectCaller,
    context: dict[str, Any],
    key: str,
    flags: list[CompiledFlag],
    services: tuple[ConsentStoreDep, DatabaseDep, SettingsDep, ViewCacheDep],
) -> Subject | None:
    consent, database, settings, views = services
    try:
        raw = targeting_key(caller, context)
    except ValueError as error:
        detail = str(error)
        body: EvaluationFailure | BulkFailure = (
            EvaluationFailure(key=key, errorCode="INVALID_CONTEXT", errorDetails=detail)
            if key
            else BulkFailure(errorCode="INVALID_CONTEXT", errorDetails=detail)
        )
        raise OfrepFailure(400, body) from None
    return await evaluation_subject(
        caller,
        raw,
        consent=consent,
        database=database,
        budget_seconds=settings.core_time_budget_ms / 1000,
        needs_profile=_needs_profile(flags),
        views=views,
    )


def _missing_key(key: str) -> EvaluationFailure:
    return EvaluationFailure(
        key=key,
        errorCode="TARGETING_KEY_MISSING",
        errorDetails="this flag is evaluated per subject: a server key names it in "
        "context.targetingKey",
    )


_CREDENTIALS: list[dict[str, list[str]]] = [{"serverKey": []}, {"subjectToken": []}]


@post(
    "/ofrep/v1/evaluate/flags/{key:str}",
    operation_id="ofrep_evaluate_flag",
    summary="OFREP single flag evaluation",
    tags=["ofrep"],
    status_code=200,
    security=_CREDENTIALS,
    responses=_errors(EvaluationFailure),
    operation_class=_operation_class(bulk=False),
    guards=[require(SERVER_KEY, SUBJECT_TOKEN)],
)
async def evaluate_one(key: FromPath[str], request: Request[Any, Any, Any]) -> Resolution:
    """One flag for the caller's subject: its value, variant and reason; the baseline (reason
    DEFAULT, metadata.fallback) when consent, suppression or the core says so."""
    return await resolve_one(runtime_of(request), caller_of(request), key, request.body)


async def resolve_one(
    runtime: Runtime, guarded: Any, key: str, read_body: BodyReader
) -> Resolution:
    """`evaluate_one`'s answer once the route's guard named the caller (`guarded`): for the
    routed handler and for `gateway.ofrep_direct`, which serves the route past litestar's
    handler machinery."""
    caller, context = await _begin(guarded, runtime.ofrep_limiter, read_body, key or " ")
    compiled = (await runtime.flags.compiled()).get(key)
    if compiled is None:
        raise OfrepFailure(404, FlagNotFound(key=key))
    subject = await _subject(caller, context, key, [compiled], _services(runtime))
    if subject is None:
        if _needs_subject(compiled):
            raise OfrepFailure(400, _missing_key(key))
        subject = _anyone()
    return evaluate_flag(compiled, subject)


def _anyone() -> Subject:
    """A subject for flags that read nothing of one (not personalized, no split)."""
    return Subject(
        targeting_key="",
        allowed=frozenset(),
        suppressed=False,
        view=None,
        missing="unknown_subject",
        today=datetime.now(UTC).date(),
    )


@post(
    "/ofrep/v1/evaluate/flags",
    operation_id="ofrep_evaluate_flags",
    summary="OFREP bulk flag evaluation",
    tags=["ofrep"],
    status_code=200,
    security=_CREDENTIALS,
    responses=_errors(BulkFailure),
    operation_class=_operation_class(bulk=True),
    guards=[require(SERVER_KEY, SUBJECT_TOKEN)],
)
async def evaluate_all(
    request: Request[Any, Any, Any],
) -> Response[BulkEvaluation]:
    """Every flag for the caller's subject. The ETag hashes the evaluated values, so a consent,
    segment or flag change is never hidden behind a 304."""
    runtime = runtime_of(request)
    caller, context = await _begin(caller_of(request), runtime.ofrep_limiter, request.body, "")
    compiled = sorted((await runtime.flags.compiled()).values(), key=lambda c: c.flag.key)
    subject = await _subject(caller, context, "", compiled, _services(runtime))
    results: list[Resolution | EvaluationFailure] = []
    for flag in compiled:
        if subject is None and _needs_subject(flag):
            results.append(_missing_key(flag.flag.key))
        else:
            results.append(evaluate_flag(flag, subject or _anyone()))
    streams = []
    if subject is not None:
        ticket = runtime.stream_tickets.mint(caller.source.source_id, subject.targeting_key)
        url = str(request.base_url).rstrip("/") + f"/ofrep/v1/events?ticket={ticket}"
        streams.append(EventStream(url=url))
    body = BulkEvaluation(flags=[BulkItem.of(result) for result in results], eventStreams=streams)
    etag = etag_of(_encoder.encode(body.flags))  # not the tickets: they change every time
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if not_modified(request, etag):
        return Response(content=None, status_code=304, headers=headers)  # type: ignore[arg-type]
    return Response(content=body, headers=headers)


OFREP_HANDLERS = [evaluate_one, evaluate_all]
