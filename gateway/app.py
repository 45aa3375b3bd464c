"""The composition root: `create_app(settings, keks)` builds the litestar app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from litestar import Litestar, MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from opentelemetry.sdk.trace import TracerProvider

from anonymization import KekSet
from bus import BusUnavailable, DatabaseUnavailable
from gateway.api_docs import render_plugins
from gateway.background import background_loops
from gateway.dependencies import DEPENDENCIES
from gateway.errors import GatewayError, TooManyRequests, Unavailable
from gateway.ofrep_direct import DirectEvaluation
from gateway.request_class import GatewayRequest
from gateway.request_layer import request_layer
from gateway.route_helpers import MAX_BODY
from gateway.routes_audit import AUDIT_HANDLERS
from gateway.routes_banner import BANNER_HANDLERS, BANNER_PATHS
from gateway.routes_consent import CONSENT_HANDLERS
from gateway.routes_console import CONSOLE_HANDLERS
from gateway.routes_flags import FLAG_HANDLERS
from gateway.routes_flows import FLOW_HANDLERS
from gateway.routes_health import HEALTH_HANDLERS
from gateway.routes_ingest import INGEST_HANDLERS, INGEST_ROUTES
from gateway.routes_ofrep import OFREP_HANDLERS, OfrepFailure, ofrep_failure_response
from gateway.routes_pages import PAGE_HANDLERS
from gateway.routes_privacy import PRIVACY_HANDLERS
from gateway.routes_read import READ_HANDLERS
from gateway.routes_segments import SEGMENT_HANDLERS
from gateway.routes_streams import STREAM_HANDLERS
from gateway.routes_tokens import TOKEN_HANDLERS
from gateway.runtime import open_runtime, tracer_provider_for
from gateway.settings import Settings
from observability import configure_logging, remember_raw_identifiers

log = structlog.get_logger("consentgate.http")

# The four credentials (README, HTTP API); routes name theirs (gateway.callers.access).
SECURITY_SCHEME_OBJECTS: dict[str, Any] = {
    "writeKey": SecurityScheme(
        type="http",
        scheme="basic",
        description="a source's write key as the Basic username, empty password "
        "(or `writeKey` in the body): ingestion only",
    ),
    "serverKey": SecurityScheme(
        type="http", scheme="bearer", description="a source's server key, `sk_…`"
    ),
    "subjectToken": SecurityScheme(
        type="http", scheme="bearer", description="a subject token, `st_…`: its subject only"
    ),
    "adminToken": SecurityScheme(
        type="http",
        scheme="bearer",
        description="an admin or auditor token, `at_…` (auditors read, and change nothing)",
    ),
}

_INGEST_PATHS = [path for paths in INGEST_ROUTES.values() for path in paths]
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    429: "too_many_requests",
}


def _error(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> Response[dict[str, str]]:
    return Response(
        {"error": code, "detail": detail},
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def _count(request: Request[Any, Any, Any], status: int, code: str) -> None:
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is not None:
        runtime.metrics.http_errors.add(1, {"status": str(status), "code": code})


def _gateway_error(request: Request[Any, Any, Any], exc: GatewayError) -> Response[dict[str, str]]:
    _count(request, exc.status_code, exc.code)
    headers = (
        {"Retry-After": str(exc.retry_after)}
        if isinstance(exc, TooManyRequests | Unavailable)
        else None
    )
    return _error(exc.status_code, exc.code, exc.detail, headers)


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, str]]:
    status = exc.status_code
    if isinstance(exc, ValidationException):
        in_body = any(
            isinstance(item, dict) and _where(item.get("source")) == "body"
            for item in exc.extra or []
        )
        code = "invalid_body" if in_body else "invalid_request"
        _count(request, 400, code)
        return _error(400, code, _validation_detail(exc))
    code = _HTTP_CODES.get(status, "http_error")
    _count(request, status, code)
    allow = (exc.headers or {}).get("allow")
    return _error(status, code, str(exc.detail), {"Allow": allow} if allow else None)


def _validation_detail(exc: ValidationException) -> str:
    """Which parameters were wrong and why; never their values nor the URL (litestar's own
    detail echoes the URL, and with it any user id in the path or the query)."""
    problems = [
        f"{_where(item.get('source'))} parameter {item.get('key')!r}: {item.get('message')}"
        for item in exc.extra or []
        if isinstance(item, dict) and item.get("key")
    ]
    return "; ".join(problems) or "the request's parameters are invalid"


def _where(source: object) -> str:
    """Where a bad parameter was: litestar names it by a ParamType (a str enum, which formats
    as "ParamType.QUERY"), or "body"."""
    value = getattr(source, "value", source)
    return value if isinstance(value, str) and value else "request"


def _database_unavailable(
    request: Request[Any, Any, Any], exc: DatabaseUnavailable
) -> Response[dict[str, str]]:
    """The database is down or restarting: nothing happened; retry (SDKs do, on a 503)."""
    log.warning("database_unavailable", error=type(exc.__cause__).__name__)
    return _gateway_error(
        request,
        Unavailable(
            "the database is unreachable; nothing changed, retry", code="database_unavailable"
        ),
    )


def _bus_unavailable(
    request: Request[Any, Any, Any], exc: BusUnavailable
) -> Response[dict[str, str]]:
    """A write that commits through the bus (a consent change with its audit entry and its
    announcement) could not commit: nothing of it happened; retry."""
    log.warning("bus_unavailable", error=type(exc).__name__)
    return _gateway_error(
        request,
        Unavailable(
            "the change could not be committed; nothing changed, retry", code="bus_unavailable"
        ),
    )


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, str]]:
    # Never echo the exception: its text may hold request data.
    log.error("unhandled_error", error=type(exc).__name__)
    _count(request, HTTP_500_INTERNAL_SERVER_ERROR, "internal_error")
    return _error(HTTP_500_INTERNAL_SERVER_ERROR, "internal_error", "the gateway failed; retry")


async def _remember_identifiers(request: Request[Any, Any, Any]) -> None:
    """Raw user ids in the path or the query, for the telemetry guards (bodies: by handlers)."""
    scope = request.scope
    in_path = scope["path_params"].get("user_id")
    if not scope["query_string"]:  # most requests: no query to parse
        if in_path is not None:
            remember_raw_identifiers((in_path,))
        return
    query = request.query_params
    remember_raw_identifiers((in_path, query.get("userId"), query.get("anonymousId")))


def app_from_environment() -> Litestar:
    """The app of one `serve --workers N` worker: settings from the environment and the config
    file it names, as the parent process resolved them."""
    from gateway.cli_common import keks_of
    from gateway.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings, keks_of(settings))


def create_app(
    settings: Settings, keks: KekSet, tracer_provider: TracerProvider | None = None
) -> Litestar:
    provider = tracer_provider or tracer_provider_for(settings)
    tracer = provider.get_tracer("consentgate")

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with (
            open_runtime(settings, keks, tracer_provider=provider) as runtime,
            background_loops(runtime),
        ):
            app.state.runtime = runtime
            yield

    direct = DirectEvaluation()
    app = Litestar(
        route_handlers=[
            *INGEST_HANDLERS,
            *CONSENT_HANDLERS,
            *AUDIT_HANDLERS,
            *PRIVACY_HANDLERS,
            *PAGE_HANDLERS,
            *CONSOLE_HANDLERS,
            *BANNER_HANDLERS,
            *READ_HANDLERS,
            *SEGMENT_HANDLERS,
            *FLAG_HANDLERS,
            *FLOW_HANDLERS,
            *OFREP_HANDLERS,
            *STREAM_HANDLERS,
            *TOKEN_HANDLERS,
            *HEALTH_HANDLERS,
        ],
        lifespan=[lifespan],
        dependencies=DEPENDENCIES,
        request_class=GatewayRequest,
        # JSON bodies of the consent, token and privacy APIs (ingestion reads its own stream,
        # with its own limits)
        request_max_body_size=MAX_BODY,
        before_request=_remember_identifiers,
        middleware=[
            lambda app: request_layer(
                app,
                tracer=tracer,
                cors_paths=[*_INGEST_PATHS, *BANNER_PATHS],
                untraced_paths=_INGEST_PATHS,  # ingestion traces its own pipeline
                direct=direct,
            )
        ],
        exception_handlers={
            GatewayError: _gateway_error,
            OfrepFailure: ofrep_failure_response,
            HTTPException: _http_error,
            DatabaseUnavailable: _database_unavailable,
            BusUnavailable: _bus_unavailable,
            Exception: _unexpected,
        },
        openapi_config=OpenAPIConfig(
            title="consentgate",
            version="0.1.0",
            description="Privacy-first consent and observability gateway.",
            path="/schema",
            render_plugins=render_plugins(),
            components=Components(security_schemes=SECURITY_SCHEME_OBJECTS),
        ),
        logging_config=None,
    )
    direct.bind(app)
    app.state.ofrep_direct = direct
    return app
