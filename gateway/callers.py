"""Who is calling: the credential kinds a route takes, declared as a guard on the route.

`require(SERVER_KEY, SUBJECT_TOKEN, …)` authenticates whichever accepted credential the request
carries and leaves a typed `Caller` for the handler (the `caller` dependency). A route that
takes one kind answers a request without it as that kind's authenticator does (401
`missing_server_key`, `invalid_token`, …). An auditor's or admin's read is written to the
audit log here, once, by its shape (see `AuditTrail.query_made`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import SkipValidation

from gateway.admin import Role, authenticate_admin
from gateway.auth import authenticate_server_key, basic_username, bearer_token
from gateway.errors import ErrorBody, Unauthorized
from gateway.route_helpers import bounded_query
from gateway.runtime import Runtime
from gateway.sources import Source


class Credential(enum.Enum):
    SERVER_KEY = "server key (Bearer sk_…)"
    SUBJECT_TOKEN = "subject token (Bearer st_…)"  # noqa: S105 - a description
    AUDITOR = "auditor token (Bearer at_…)"
    ADMIN = "admin token (Bearer at_…)"


SERVER_KEY = Credential.SERVER_KEY
SUBJECT_TOKEN = Credential.SUBJECT_TOKEN
AUDITOR = Credential.AUDITOR
ADMIN = Credential.ADMIN


@dataclass(frozen=True, slots=True)
class ServerKeyCaller:
    """A source's backend, with its server key: the source's own subjects."""

    source: Source


@dataclass(frozen=True, slots=True)
class SubjectCaller:
    """An end user, with a subject token: its own subject only."""

    source: Source
    subject: str


@dataclass(frozen=True, slots=True)
class StaffCaller:
    """An operator with an admin token: `admin` manages, `auditor` reads."""

    role: Role


Caller = ServerKeyCaller | SubjectCaller | StaffCaller

# What a handler declares to receive the caller (`caller: ServerKey`). The guard made it, so
# litestar does not validate it again (it could not: it is a union of plain classes).
AnyCaller = NamedDependency[SkipValidation[Caller]]
ServerKey = NamedDependency[SkipValidation[ServerKeyCaller]]
Subject = NamedDependency[SkipValidation[SubjectCaller]]
Staff = NamedDependency[SkipValidation[StaffCaller]]


# Where the guard leaves the caller: a key of the ASGI scope (litestar's `connection.state`
# wraps the scope's state in a new object at every access: 2% of an OFREP evaluation).
_CALLER = "consentgate.caller"


def caller_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    """The caller the route's guard authenticated, taken without dependency injection (the
    hot routes: resolving even this one dependency cost 5% of an OFREP evaluation)."""
    caller: Caller = connection.scope[_CALLER]  # type: ignore[literal-required]
    return caller


def authorization_of(scope: Any) -> str | None:
    """The request's Authorization header (the first), read from the raw headers: litestar's
    `connection.headers` builds a mapping of them all (4% of an OFREP evaluation)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return str(value.decode("latin-1"))
    return None


def server_key_of(connection: ASGIConnection[Any, Any, Any, Any]) -> ServerKeyCaller:
    """`caller_of`, on a route whose guard admits server keys only."""
    caller = caller_of(connection)
    if not isinstance(caller, ServerKeyCaller):
        raise TypeError(f"the route's guard admits server keys only, not {caller!r}")
    return caller


_STAFF_ROLES: tuple[tuple[Role, Credential], ...] = (("auditor", AUDITOR), ("admin", ADMIN))
_PREFIXES = {"sk_": SERVER_KEY, "st_": SUBJECT_TOKEN, "at_": None}  # at_: either staff role
# the route option naming an auditor-readable endpoint in the audit log
AUDIT_ENDPOINT = "audit_endpoint"


# OpenAPI security schemes (see `app.py`), by credential
SECURITY_SCHEMES = {
    SERVER_KEY: "serverKey",
    SUBJECT_TOKEN: "subjectToken",
    AUDITOR: "adminToken",
    ADMIN: "adminToken",
}
ERROR_RESPONSES = {
    status: ResponseSpec(ErrorBody, description=text, generate_examples=False)
    for status, text in (
        (400, "bad input: the code and the detail say what; nothing changed"),
        (401, "no credential of a kind this route takes, or an unknown one"),
        (403, "the credential may not do this"),
        (404, "nothing the caller may see has this id"),
    )
}


class _GuardedWithoutCopy(HTTPRouteHandler):
    """The hot routes' handler: its guards get the handler itself.

    litestar hands each guard a copy of the handler (`copy(self)`, so that a guard cannot
    change it): 6% of a consent read's CPU. Our guards only read `handler.opt`.
    """

    async def authorize_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        for guard in self.resolve_guards():
            await guard(connection, self)  # type: ignore[misc]


def get(path: str, **options: Any) -> HTTPRouteHandler:
    """litestar's `@get`, for a route whose guards get the handler uncopied."""
    return _GuardedWithoutCopy(path, http_method=HttpMethod.GET, **options)


def put(path: str, **options: Any) -> HTTPRouteHandler:
    return _GuardedWithoutCopy(path, http_method=HttpMethod.PUT, **options)


def post(path: str, **options: Any) -> HTTPRouteHandler:
    return _GuardedWithoutCopy(path, http_method=HttpMethod.POST, **options)


def access(*accepted: Credential) -> dict[str, Any]:
    """A route's access in one place, for its decorator (`@get(…, **access(SERVER_KEY))`): the
    guard, the OpenAPI security requirements and the error answers."""
    schemes = dict.fromkeys(SECURITY_SCHEMES[credential] for credential in accepted)
    return {
        "guards": [require(*accepted)],
        "security": [{name: []} for name in schemes],
        "responses": ERROR_RESPONSES,
    }


def require(*accepted: Credential) -> Any:
    """A guard admitting the `accepted` credential kinds."""
    roles = tuple(role for role, credential in _STAFF_ROLES if credential in accepted)

    async def guard(
        connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        runtime: Runtime = connection.app.state.runtime
        authorization = authorization_of(connection.scope)
        token = bearer_token(authorization) or ""
        kind = _PREFIXES.get(token[:3], "unknown")
        caller: Caller
        if kind is None and roles:
            role = await authenticate_admin(runtime.database, authorization, roles)
            caller = StaffCaller(role)
            endpoint = handler.opt.get(AUDIT_ENDPOINT)
            if endpoint is not None:
                await _audit_read(connection, runtime, role, endpoint)
        elif kind == SUBJECT_TOKEN and SUBJECT_TOKEN in accepted:
            caller = await _subject(runtime, token)
        elif kind == SERVER_KEY and SERVER_KEY in accepted:
            caller = ServerKeyCaller(await authenticate_server_key(runtime.sources, authorization))
        else:
            caller = await _refuse(runtime, authorization, accepted, roles)
        connection.scope[_CALLER] = caller  # type: ignore[literal-required]

    return guard


async def _subject(runtime: Runtime, token: str) -> SubjectCaller:
    claims = await runtime.tokens.verify(token)
    source = await runtime.sources.by_id(claims.source_id)
    if source is None:
        raise Unauthorized("the subject token is invalid", code="invalid_token")
    return SubjectCaller(source=source, subject=claims.subject)


async def _refuse(
    runtime: Runtime,
    authorization: str | None,
    accepted: tuple[Credential, ...],
    roles: tuple[Role, ...],
) -> Caller:
    """No accepted credential. A credential of another kind is named, with the one the route
    takes (a write key sent to a server-key route is the commonest mistake); otherwise a
    route of one kind answers as that kind's authenticator does, and one of several names
    them all."""
    sent = _sent_kind(authorization)
    if sent is not None:
        takes = " or ".join(dict.fromkeys(_HOW_TO_SEND[credential] for credential in accepted))
        raise Unauthorized(
            f"this route takes {takes}; the request sent {sent}", code="wrong_credential"
        )
    if accepted == (SERVER_KEY,):
        return ServerKeyCaller(await authenticate_server_key(runtime.sources, authorization))
    if accepted == (SUBJECT_TOKEN,):
        if bearer_token(authorization) is None:
            raise Unauthorized(
                "send a subject token as Authorization: Bearer st_…", code="missing_token"
            )
        return await _subject(runtime, bearer_token(authorization) or "")
    if set(accepted) <= {AUDITOR, ADMIN}:
        return StaffCaller(await authenticate_admin(runtime.database, authorization, roles))
    kinds = " or ".join(credential.value for credential in accepted)
    raise Unauthorized(f"this route takes a {kinds}", code="missing_credentials")


_HOW_TO_SEND = {
    SERVER_KEY: "a server key (Authorization: Bearer sk_…)",
    SUBJECT_TOKEN: "a subject token (Authorization: Bearer st_…)",
    AUDITOR: "an auditor or admin token (Authorization: Bearer at_…)",
    ADMIN: "an admin token (Authorization: Bearer at_…)",
}
_SENT = {
    "wk_": "a write key (write keys send events, and nothing else)",
    "sk_": "a server key",
    "st_": "a subject token",
    "at_": "an admin or auditor token",
}


def _sent_kind(authorization: str | None) -> str | None:
    """What kind of credential a request sent, by its prefix; None when none is recognized."""
    token = bearer_token(authorization) or basic_username(authorization) or ""
    return _SENT.get(token[:3])


async def _audit_read(
    connection: ASGIConnection[Any, Any, Any, Any], runtime: Runtime, role: str, endpoint: str
) -> None:
    """The read's shape, and the subject it is about (a userId in the query or the path),
    as its pseudonym in each source searched."""
    params = bounded_query(connection)
    user = params.get("userId") or connection.path_params.get("user_id")
    about: list[tuple[Source, str]] = []
    if user:
        source_id = params.get("source_id")
        found = await runtime.sources.by_id(source_id) if source_id else None
        sources = [found] if found is not None else await runtime.sources.every()
        about = [(s, s.pseudonymize("subject", user)) for s in sources]
    await runtime.trail.query_made(role, endpoint, params, about)
