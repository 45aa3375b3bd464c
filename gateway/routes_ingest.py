"""Segment's HTTP Tracking API: /v1/track … /v1/batch and analytics.js's short paths."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request, post
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
)
from litestar.response.base import ASGIResponse
from litestar.types import Method

from gateway._body import read_limited
from gateway._wire import CALL_TYPES
from gateway.errors import ErrorBody
from gateway.pipeline import IngestRequest
from gateway.route_helpers import body_chunks, runtime_of

SUCCESS = b'{"success":true}'


def _call_schema(call_type: str | None) -> Schema:
    """A Segment call's body as the OpenAPI document states it (the wire types in
    `gateway._wire` are the authority: unknown fields are allowed, as Segment does)."""
    text, free = Schema(type=OpenAPIType.STRING), Schema(type=OpenAPIType.OBJECT)
    identifier = Schema(
        one_of=[Schema(type=OpenAPIType.STRING, max_length=1024), Schema(type=OpenAPIType.INTEGER)]
    )
    when = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME)
    properties: dict[str, Schema | Reference] = {
        "userId": identifier,
        "anonymousId": identifier,
        "messageId": Schema(type=OpenAPIType.STRING, max_length=99),
        "timestamp": when,
        "originalTimestamp": when,
        "sentAt": when,
        "context": free,
        "integrations": free,
        "writeKey": text,
        "event": Schema(type=OpenAPIType.STRING, min_length=1, max_length=512),
        "name": text,
        "category": text,
        "properties": free,
        "traits": free,
        "groupId": identifier,
        "previousId": identifier,
    }
    if call_type is not None:
        return Schema(type=OpenAPIType.OBJECT, properties=properties)
    one = Schema(
        type=OpenAPIType.OBJECT,
        properties={"type": Schema(type=OpenAPIType.STRING, enum=list(CALL_TYPES)), **properties},
        required=["type"],
    )
    return Schema(
        type=OpenAPIType.OBJECT,
        properties={
            "batch": Schema(type=OpenAPIType.ARRAY, items=one),
            "sentAt": when,
            "context": free,
            "writeKey": text,
        },
        required=["batch"],
    )


def _operation_class(call_type: str | None) -> type[Operation]:
    """The operation as OpenAPI shows it: the handler reads the raw body itself (to bound it
    and to gunzip it), so litestar cannot infer the request body or the 200 answer."""

    @dataclass
    class IngestOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                content={"application/json": OpenAPIMediaType(schema=_call_schema(call_type))},
                required=True,
            )
            accepted = Schema(
                type=OpenAPIType.OBJECT,
                properties={"success": Schema(type=OpenAPIType.BOOLEAN)},
                required=["success"],
            )
            responses = dict(self.responses or {})
            responses["200"] = OpenAPIResponse(
                description="every event of the request is durable on the bus",
                content={"application/json": OpenAPIMediaType(schema=accepted)},
            )
            self.responses = responses

    return IngestOperation


INGEST_ERRORS = {
    status: ResponseSpec(ErrorBody, description=text, generate_examples=False)
    for status, text in (
        (400, "a bad event (the detail names it): nothing of the request was accepted"),
        (401, "no write key, or an unknown one"),
        (403, "an origin the source does not allow"),
        (413, "a request or an event over its limit"),
        (429, "over the write key's rate: retry after Retry-After seconds"),
        (503, "the bus could not commit: nothing was accepted, retry"),
    )
}

# call type (None: a batch) -> its long and short path
INGEST_ROUTES: dict[str | None, tuple[str, str]] = {
    "track": ("/v1/track", "/v1/t"),
    "identify": ("/v1/identify", "/v1/i"),
    "page": ("/v1/page", "/v1/p"),
    "screen": ("/v1/screen", "/v1/s"),
    "group": ("/v1/group", "/v1/g"),
    "alias": ("/v1/alias", "/v1/a"),
    None: ("/v1/batch", "/v1/b"),
}


def _operation_id(_: HTTPRouteHandler, __: Method, path: list[Any]) -> str:
    return "ingest_" + "_".join(str(part) for part in path if part != "v1")


def _ingest_handler(call_type: str | None, paths: tuple[str, str]) -> HTTPRouteHandler:
    name = call_type or "batch"

    @post(
        list(paths),
        operation_id=_operation_id,
        summary=f"Segment {name} call",
        description='Answers 200 {"success": true} once every event is durably on the bus.',
        tags=["ingestion"],
        status_code=200,
        security=[{"writeKey": []}],
        responses=INGEST_ERRORS,
        operation_class=_operation_class(call_type),
    )
    async def ingest(request: Request[Any, Any, Any]) -> ASGIResponse:
        runtime = runtime_of(request)  # no dependency injection on the hottest route
        pipeline, settings = runtime.pipeline, runtime.settings
        headers = request.headers
        await pipeline.run(
            IngestRequest(
                call_type=call_type,
                path=request.scope["path"],  # a fixed path: ingestion routes take no parameter
                body=await read_limited(body_chunks(request), settings.max_request_bytes),
                content_encoding=headers.get("content-encoding"),
                authorization=headers.get("authorization"),
                sec_gpc=headers.get("sec-gpc"),
                traceparent=headers.get("traceparent"),
                origin=headers.get("origin"),
            )
        )
        # A ready ASGI response: nothing to serialize on the hot path.
        return ASGIResponse(body=SUCCESS, media_type="application/json")

    return ingest


INGEST_HANDLERS = [_ingest_handler(call_type, paths) for call_type, paths in INGEST_ROUTES.items()]
