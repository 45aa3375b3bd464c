"""Consent API: server-key and subject-token views of consent, subject tokens, receipt keys.

A subject token only ever reaches its own subject: the `/v1/me/…` routes take no user id, and
the server-key routes reach only the subjects of the key's own source. Who may call a route is
its guard (`require(…)`); what a handler uses is in its signature.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from anonymization import truncate_ip
from consent import (
    SUPPRESSION,
    ConsentRecord,
    ConsentStore,
    is_suppressed,
    merge_states,
    new_records,
)
from gateway.audit import AuditTrail
from gateway.callers import (
    ADMIN,
    AUDITOR,
    SERVER_KEY,
    SUBJECT_TOKEN,
    AnyCaller,
    ServerKeyCaller,
    StaffCaller,
    Subject,
    SubjectCaller,
    access,
    get,
    put,
    server_key_of,
)
from gateway.dependencies import (
    AuditTrailDep,
    ConsentStoreDep,
    ReceiptSignerDep,
    SourceRegistryDep,
)
from gateway.errors import BadRequest
from gateway.receipts import ReceiptSigner, build_receipt
from gateway.route_helpers import runtime_of
from gateway.sources import Source

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


class PurposeChoice(msgspec.Struct, frozen=True, kw_only=True):
    granted: bool
    source: str
    recorded_at: datetime
    record_id: str


class ConsentView(msgspec.Struct, frozen=True, kw_only=True):
    """The current consent: a purpose never decided is absent (the default applies)."""

    subject: str
    purposes: dict[str, PurposeChoice]
    suppressed: bool


class SignedReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """A consent receipt and its Ed25519 signature over the receipt's canonical JSON."""

    receipt: dict[str, Any]
    signature: str
    key_id: str


class ConsentHistory(msgspec.Struct, frozen=True, kw_only=True):
    subject: str
    records: list[ConsentRecord]


async def current_consent(
    consent: ConsentStoreDep, source: Source, pseudonyms: tuple[str, ...]
) -> ConsentView:
    """The state under the current pseudonym, merged with those of older key versions."""
    states = await consent.states(source.source_id, list(pseudonyms))
    state = merge_states(states.get(s, {}) for s in pseudonyms)
    return ConsentView(
        subject=pseudonyms[0],
        purposes={
            purpose: PurposeChoice(
                granted=item.granted,
                source=item.source,
                recorded_at=item.recorded_at,
                record_id=item.record_id,
            )
            for purpose, item in sorted(state.items())
            if purpose != SUPPRESSION
        },
        suppressed=is_suppressed(state),
    )


async def record_consent(
    request: Request[Any, Any, Any],
    change: ConsentChange,
    source: Source,
    subject: str,
    actor: str,
    services: tuple[ConsentStore, AuditTrail, ReceiptSigner],
    fixed_method: str | None = None,
) -> SignedReceipt:
    """Validate a change, append its records, and return the signed receipt.

    With `fixed_method` the collection method is not the caller's to state: a body that
    names one is refused."""
    consent, trail, receipts = services
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
        at=datetime.now(UTC),
        ip_truncated=truncate_ip(client) if client else None,
        user_agent_hash=hashlib.sha256(agent.encode()).hexdigest() if agent else None,
    )
    # the records, their audit entry and their consent_changed message: one commit
    await consent.append(records, await trail.consent_changed(source, subject, records, actor))
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
    return msgspec.convert(receipts.sign(receipt), SignedReceipt)


async def _record_for_user(
    request: Request[Any, Any, Any],
    change: ConsentChange,
    caller: ServerKeyCaller,
    user_id: str,
    services: tuple[ConsentStore, AuditTrail, ReceiptSigner],
) -> SignedReceipt:
    """A server key's change for one of its source's users."""
    source = caller.source
    subject = source.pseudonymize("subject", user_id)
    return await record_consent(
        request, change, source, subject, f"server_key:{source.source_id}", services
    )


_SERVER_KEY = access(SERVER_KEY)
_SUBJECT = access(SUBJECT_TOKEN)


def _writers(request: Request[Any, Any, Any]) -> tuple[ConsentStore, AuditTrail, ReceiptSigner]:
    runtime = runtime_of(request)
    return runtime.consent, runtime.trail, runtime.receipts


@get("/v1/consent/{user_id:str}", operation_id="get_consent", tags=["consent"], **_SERVER_KEY)
async def get_consent(request: Request[Any, Any, Any], user_id: FromPath[str]) -> ConsentView:
    """Current consent per purpose; a purpose never decided is absent (the default applies)."""
    source = server_key_of(request).source
    return await current_consent(runtime_of(request).consent, source, source.pseudonyms(user_id))


@get("/v1/consent", operation_id="get_consent_by_query", tags=["consent"], **_SERVER_KEY)
async def get_consent_by_query(
    request: Request[Any, Any, Any], user_id: UserIdQuery
) -> ConsentView:
    """The same, for any userId (one holding "/" too): `?userId=`."""
    source = server_key_of(request).source
    return await current_consent(runtime_of(request).consent, source, source.pseudonyms(user_id))


@put(
    "/v1/consent/{user_id:str}",
    operation_id="put_consent",
    tags=["consent"],
    status_code=200,
    **_SERVER_KEY,
)
async def put_consent(
    request: Request[Any, Any, Any],
    user_id: FromPath[str],
    data: JSONBody[ConsentChange],
) -> SignedReceipt:
    """Record a change (grant or withdrawal alike); answers the signed receipt."""
    return await _record_for_user(request, data, server_key_of(request), user_id, _writers(request))


@put(
    "/v1/consent",
    operation_id="put_consent_by_query",
    tags=["consent"],
    status_code=200,
    **_SERVER_KEY,
)
async def put_consent_by_query(
    request: Request[Any, Any, Any],
    user_id: UserIdQuery,
    data: JSONBody[ConsentChange],
) -> SignedReceipt:
    """The same, for any userId (one holding "/" too): `?userId=`."""
    return await _record_for_user(request, data, server_key_of(request), user_id, _writers(request))


_HISTORY_READERS = access(SERVER_KEY, AUDITOR, ADMIN)
_HISTORY_OPT = {"audit_endpoint": "consent_history"}


@get(
    "/v1/consent/{user_id:str}/history",
    operation_id="consent_history",
    tags=["consent"],
    **_HISTORY_READERS,
    opt=_HISTORY_OPT,
)
async def consent_history(
    user_id: FromPath[str],
    caller: AnyCaller,
    consent: ConsentStoreDep,
    sources: SourceRegistryDep,
    source_id: FromQuery[str | None] = None,
) -> ConsentHistory:
    """The append-only history of the subject's consent records (server key, or an auditor
    or admin token with `?source_id=`)."""
    return await _history(user_id, caller, consent, sources, source_id)


@get(
    "/v1/consent/history",
    operation_id="consent_history_by_query",
    tags=["consent"],
    **_HISTORY_READERS,
    opt=_HISTORY_OPT,
)
async def consent_history_by_query(
    user_id: UserIdQuery,
    caller: AnyCaller,
    consent: ConsentStoreDep,
    sources: SourceRegistryDep,
    source_id: FromQuery[str | None] = None,
) -> ConsentHistory:
    """The same, for any userId (one holding "/" too): `?userId=`. (For the current consent
    of a user whose id is literally "history", use `GET /v1/consent?userId=history`.)"""
    return await _history(user_id, caller, consent, sources, source_id)


async def _history(
    user_id: str,
    caller: ServerKeyCaller | SubjectCaller | StaffCaller,
    consent: ConsentStoreDep,
    sources: SourceRegistryDep,
    source_id: str | None,
) -> ConsentHistory:
    match caller:
        case ServerKeyCaller(source=source):
            pass
        case _:  # staff: the source named by source_id
            found = await sources.by_id(source_id) if source_id else None
            if found is None:
                raise BadRequest("source_id: the source whose user this is", code="invalid_query")
            source = found
    pseudonyms = source.pseudonyms(user_id)
    records = [r for s in pseudonyms for r in await consent.history(source.source_id, s)]
    records.sort(key=lambda r: (r.recorded_at, r.record_id))
    return ConsentHistory(subject=pseudonyms[0], records=records)


@get("/v1/me/consent", operation_id="get_my_consent", tags=["consent"], **_SUBJECT)
async def get_my_consent(caller: Subject, consent: ConsentStoreDep) -> ConsentView:
    """The token's own subject's consent."""
    return await current_consent(consent, caller.source, (caller.subject,))


@put(
    "/v1/me/consent",
    operation_id="put_my_consent",
    tags=["consent"],
    status_code=200,
    **_SUBJECT,
)
async def put_my_consent(
    request: Request[Any, Any, Any],
    data: JSONBody[ConsentChange],
    caller: Subject,
    consent: ConsentStoreDep,
    trail: AuditTrailDep,
    receipts: ReceiptSignerDep,
) -> SignedReceipt:
    """Change the token's own subject's consent, recorded with the method `subject`."""
    return await record_consent(
        request,
        data,
        caller.source,
        caller.subject,
        "subject_token",
        (consent, trail, receipts),
        fixed_method="subject",
    )


CONSENT_HANDLERS = [
    get_consent,
    get_consent_by_query,
    put_consent,
    put_consent_by_query,
    consent_history,
    consent_history_by_query,
    get_my_consent,
    put_my_consent,
]
