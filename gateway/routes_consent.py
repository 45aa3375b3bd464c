"""Consent API: server-key and subject-token views of consent, subject tokens, receipt keys.

A subject token only ever reaches its own subject: the `/v1/me/…` routes take no user id, and
the server-key routes reach only the subjects of the key's own source.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, delete, get, post, put
from litestar.params import FromPath, QueryParameter

from anonymization import truncate_ip
from consent import SUPPRESSION, ConsentState, merge_states, new_records
from gateway import audit
from gateway.admin import authenticate_admin
from gateway.errors import BadRequest
from gateway.receipts import build_receipt
from gateway.route_helpers import (
    bearer_kind,
    bounded_query,
    read_body,
    runtime_of,
    server_source,
    token_subject,
)
from gateway.runtime import Runtime
from gateway.sources import Source
from observability import remember_raw_identifiers

PolicyVersion = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
# `?userId=`: reaches any user id, one holding "/" too (a path segment cannot)
UserIdQuery = Annotated[
    str,
    QueryParameter(name="userId", min_length=1, max_length=1024, description="the raw userId"),
]


class ConsentChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A PUT body. Ids and timestamps are the server's to set: sending them is an error."""

    purposes: dict[str, bool]
    policy_version: PolicyVersion
    source: Literal["api", "privacy_center", "banner", "import", "subject"] | None = None


class TokenRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    userId: UserId
    ttl_seconds: Annotated[int, msgspec.Meta(ge=60, le=86_400)] = 3600


async def _history_source(request: Request) -> tuple[Source, str | None]:  # type: ignore[type-arg]
    """The source, and the auditor's or admin's role when one asks (None: a server key)."""
    if bearer_kind(request) != "at_":
        return await server_source(request), None
    runtime = runtime_of(request)
    role = await authenticate_admin(
        runtime.database, request.headers.get("authorization"), ("auditor", "admin")
    )
    source_id = bounded_query(request).get("source_id")
    source = await runtime.sources.by_id(source_id) if source_id else None
    if source is None:
        raise BadRequest("source_id: the source whose user this is", code="invalid_query")
    return source, role


def _state_body(subject: str, state: ConsentState) -> dict[str, Any]:
    return {
        "subject": subject,
        "purposes": {
            purpose: {
                "granted": item.granted,
                "source": item.source,
                "recorded_at": item.recorded_at,
                "record_id": item.record_id,
            }
            for purpose, item in sorted(state.items())
            if purpose != SUPPRESSION
        },
        "suppressed": SUPPRESSION in state,
    }


async def _current(
    runtime: Runtime, source: Source, subject: str, aliases: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The state under `subject`, merged with its pseudonyms of older key versions."""
    states = await runtime.consent.states(source.source_id, [subject, *aliases])
    return _state_body(subject, merge_states(states.get(s, {}) for s in (subject, *aliases)))


def _pseudonyms(source: Source, user_id: str) -> tuple[str, tuple[str, ...]]:
    """The current pseudonym of `user_id` and those of older key versions."""
    current = source.pseudonymize("subject", user_id)
    return current, tuple(p("subject", user_id) for p in source.pseudonymizers[1:])


async def _record(
    request: Request,  # type: ignore[type-arg]
    source: Source,
    subject: str,
    actor: str,
    fixed_method: str | None = None,
) -> dict[str, Any]:
    """Validate a change, append its records, and return the signed receipt.

    With `fixed_method` the collection method is not the caller's to state: a body that
    names one is refused."""
    change: ConsentChange = await read_body(request, ConsentChange)
    if fixed_method is not None and change.source not in (None, fixed_method):
        raise BadRequest(
            f"source: a subject token records the subject's own choice ({fixed_method!r}); "
            "it cannot claim another collection method",
            code="invalid_body",
        )
    known = source.consent.known_purposes()
    if not change.purposes:
        raise BadRequest("purposes must name at least one purpose", code="invalid_body")
    unknown = sorted(set(change.purposes) - set(known))
    if unknown:
        raise BadRequest(
            f"unknown purpose {unknown[0]!r}; known: {sorted(known)}", code="unknown_purpose"
        )
    now = datetime.now(UTC)
    method = fixed_method or change.source or "api"
    client = request.client.host if request.client else None
    agent = request.headers.get("user-agent")
    records = new_records(
        source_id=source.source_id,
        subject=subject,
        choices=change.purposes,
        source=method,  # type: ignore[arg-type]
        policy_version=change.policy_version,
        jurisdiction=source.jurisdiction,
        at=now,
        ip_truncated=truncate_ip(client) if client else None,
        user_agent_hash=hashlib.sha256(agent.encode()).hexdigest() if agent else None,
    )
    runtime = runtime_of(request)
    await runtime.consent.append(records)
    await audit.consent_changed(runtime, source, subject, records, actor)
    receipt = build_receipt(
        source_id=source.source_id,
        source_name=source.name,
        subject=subject,
        jurisdiction=source.jurisdiction,
        policy_version=change.policy_version,
        collection_method=method,
        records=records,
        purposes=known,
    )
    return runtime.receipts.sign(receipt)


async def _get_consent(request: Request, user_id: str) -> dict[str, Any]:  # type: ignore[type-arg]
    source = await server_source(request)
    current, older = _pseudonyms(source, user_id)
    return await _current(runtime_of(request), source, current, older)


async def _put_consent(request: Request, user_id: str) -> dict[str, Any]:  # type: ignore[type-arg]
    source = await server_source(request)
    subject = source.pseudonymize("subject", user_id)
    return await _record(request, source, subject, f"server_key:{source.source_id}")


@get("/v1/consent/{user_id:str}", operation_id="get_consent", tags=["consent"])
async def get_consent(request: Request, user_id: FromPath[str]) -> dict[str, Any]:  # type: ignore[type-arg]
    """Current consent per purpose; a purpose never decided is absent (the default applies)."""
    return await _get_consent(request, user_id)


@get("/v1/consent", operation_id="get_consent_by_query", tags=["consent"])
async def get_consent_by_query(request: Request, user_id: UserIdQuery) -> dict[str, Any]:  # type: ignore[type-arg]
    """The same, for any userId (one holding "/" too): `?userId=`."""
    return await _get_consent(request, user_id)


@put("/v1/consent/{user_id:str}", operation_id="put_consent", tags=["consent"], status_code=200)
async def put_consent(request: Request, user_id: FromPath[str]) -> dict[str, Any]:  # type: ignore[type-arg]
    """Record a change (grant or withdrawal alike); answers the signed receipt."""
    return await _put_consent(request, user_id)


@put("/v1/consent", operation_id="put_consent_by_query", tags=["consent"], status_code=200)
async def put_consent_by_query(request: Request, user_id: UserIdQuery) -> dict[str, Any]:  # type: ignore[type-arg]
    """The same, for any userId (one holding "/" too): `?userId=`."""
    return await _put_consent(request, user_id)


@get("/v1/consent/{user_id:str}/history", operation_id="consent_history", tags=["consent"])
async def consent_history(request: Request, user_id: FromPath[str]) -> dict[str, Any]:  # type: ignore[type-arg]
    """The append-only history of the subject's consent records (server key, or an auditor
    or admin token with `?source_id=`)."""
    return await _consent_history(request, user_id)


@get("/v1/consent/history", operation_id="consent_history_by_query", tags=["consent"])
async def consent_history_by_query(request: Request, user_id: UserIdQuery) -> dict[str, Any]:  # type: ignore[type-arg]
    """The same, for any userId (one holding "/" too): `?userId=`. (For the current consent
    of a user whose id is literally "history", use `GET /v1/consent?userId=history`.)"""
    return await _consent_history(request, user_id)


async def _consent_history(request: Request, user_id: str) -> dict[str, Any]:  # type: ignore[type-arg]
    source, role = await _history_source(request)
    subject, older = _pseudonyms(source, user_id)
    if role is not None:
        params = bounded_query(request)
        about = [(source, subject)]
        await audit.query_made(runtime_of(request), role, "consent_history", params, about)
    consent = runtime_of(request).consent
    records = [r for s in (subject, *older) for r in await consent.history(source.source_id, s)]
    records.sort(key=lambda r: (r.recorded_at, r.record_id))
    return {"subject": subject, "records": [msgspec.to_builtins(r) for r in records]}


@get("/v1/me/consent", operation_id="get_my_consent", tags=["consent"])
async def get_my_consent(request: Request) -> dict[str, Any]:  # type: ignore[type-arg]
    """The token's own subject's consent."""
    source, subject = await token_subject(request)
    return await _current(runtime_of(request), source, subject)


@put("/v1/me/consent", operation_id="put_my_consent", tags=["consent"], status_code=200)
async def put_my_consent(request: Request) -> dict[str, Any]:  # type: ignore[type-arg]
    """Change the token's own subject's consent; answers the signed receipt."""
    source, subject = await token_subject(request)
    return await _record(request, source, subject, "subject_token", fixed_method="subject")


@post("/v1/tokens", operation_id="mint_token", tags=["tokens"], status_code=200)
async def mint_token(request: Request) -> dict[str, Any]:  # type: ignore[type-arg]
    """Mint a subject token for one userId of the server key's source."""
    source = await server_source(request)
    ask: TokenRequest = await read_body(request, TokenRequest)
    remember_raw_identifiers((ask.userId,))
    runtime = runtime_of(request)
    subject = source.pseudonymize("subject", ask.userId)
    minted = await runtime.tokens.mint(
        source.source_id, subject, timedelta(seconds=ask.ttl_seconds)
    )
    await audit.token_minted(
        runtime, source, subject, minted.token_id, minted.expires_at.isoformat()
    )
    return {"token": minted.token, "token_id": minted.token_id, "expires_at": minted.expires_at}


@delete("/v1/tokens/{token_id:str}", operation_id="revoke_token", tags=["tokens"], status_code=204)
async def revoke_token(request: Request, token_id: FromPath[str]) -> None:  # type: ignore[type-arg]
    """Revoke a subject token of the server key's source before it expires."""
    source = await server_source(request)
    runtime = runtime_of(request)
    await runtime.tokens.revoke(source.source_id, token_id)
    await runtime.audit.append(
        "token.revoked",
        f"server_key:{source.source_id}",
        {"source_id": source.source_id, "token_id": token_id},
    )


@get("/v1/receipts/keys", operation_id="receipt_keys", tags=["consent"])
async def receipt_keys(request: Request) -> Response[dict[str, Any]]:  # type: ignore[type-arg]
    """The Ed25519 public keys that sign consent receipts."""
    return Response({"keys": runtime_of(request).receipts.public_keys()})


CONSENT_HANDLERS = [
    get_consent,
    get_consent_by_query,
    put_consent,
    put_consent_by_query,
    consent_history,
    consent_history_by_query,
    get_my_consent,
    put_my_consent,
    mint_token,
    revoke_token,
    receipt_keys,
]
