"""Segment's HTTP Tracking API: /v1/track … /v1/batch and analytics.js's short paths."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.handlers import HTTPRouteHandler
from litestar.response.base import ASGIResponse
from litestar.types import Method

from gateway._body import read_limited
from gateway.pipeline import IngestRequest
from gateway.route_helpers import body_chunks, runtime_of

SUCCESS = b'{"success":true}'

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
    )
    async def ingest(request: Request) -> ASGIResponse:  # type: ignore[type-arg]
        runtime = runtime_of(request)
        headers = request.headers
        await runtime.pipeline.run(
            IngestRequest(
                call_type=call_type,
                body=await read_limited(body_chunks(request), runtime.settings.max_request_bytes),
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
