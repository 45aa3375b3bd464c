"""Subject tokens (minted and revoked with a server key) and the receipt signing keys."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import msgspec
from litestar import delete, get, post
from litestar.params import FromPath, JSONBody

from gateway.callers import SERVER_KEY, ServerKey, access
from gateway.dependencies import AuditTrailDep, ReceiptSignerDep, SubjectTokensDep
from observability import remember_raw_identifiers

UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
_SERVER_KEY = access(SERVER_KEY)


class TokenRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    userId: UserId
    ttl_seconds: Annotated[int, msgspec.Meta(ge=60, le=86_400)] = 3600


class MintedToken(msgspec.Struct, frozen=True, kw_only=True):
    token: str
    token_id: str
    expires_at: datetime


class ReceiptKey(msgspec.Struct, frozen=True, kw_only=True):
    key_id: str
    alg: str
    public_key: str


class ReceiptKeys(msgspec.Struct, frozen=True, kw_only=True):
    keys: list[ReceiptKey]


@post("/v1/tokens", operation_id="mint_token", tags=["tokens"], status_code=200, **_SERVER_KEY)
async def mint_token(
    data: JSONBody[TokenRequest], caller: ServerKey, tokens: SubjectTokensDep, trail: AuditTrailDep
) -> MintedToken:
    """Mint a subject token for one userId of the server key's source."""
    remember_raw_identifiers((data.userId,))
    source = caller.source
    subject = source.pseudonymize("subject", data.userId)
    minted = await tokens.mint(source.source_id, subject, timedelta(seconds=data.ttl_seconds))
    await trail.token_minted(source, subject, minted.token_id, minted.expires_at.isoformat())
    return MintedToken(token=minted.token, token_id=minted.token_id, expires_at=minted.expires_at)


@delete(
    "/v1/tokens/{token_id:str}",
    operation_id="revoke_token",
    tags=["tokens"],
    status_code=204,
    **_SERVER_KEY,
)
async def revoke_token(
    token_id: FromPath[str], caller: ServerKey, tokens: SubjectTokensDep, trail: AuditTrailDep
) -> None:
    """Revoke a subject token of the server key's source before it expires. Revoking a
    revoked token again changes nothing (and writes no second audit entry)."""
    if await tokens.revoke(caller.source.source_id, token_id):
        await trail.token_revoked(caller.source, token_id)


@get("/v1/receipts/keys", operation_id="receipt_keys", tags=["consent"])
async def receipt_keys(receipts: ReceiptSignerDep) -> ReceiptKeys:
    """The Ed25519 public keys that sign consent receipts."""
    return msgspec.convert({"keys": receipts.public_keys()}, ReceiptKeys)


TOKEN_HANDLERS = [mint_token, revoke_token, receipt_keys]
