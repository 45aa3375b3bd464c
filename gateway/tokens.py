"""Subject tokens: short-lived, signed, scoped to one subject of one source, revocable.

`st_<payload>.<mac>`: the payload is base64url JSON `{"tid", "src", "sub", "exp"}` (`sub` is
the subject's pseudonym, never the raw userId), the MAC is HMAC-SHA256 under a key derived
from the KEK (so rotating the KEK also ends every live token). Every use checks the MAC, the
expiry and the revocation table.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

import msgspec
from sqlalchemy import Table, insert, select, update
from sqlalchemy.engine import Connection

from anonymization import KekSet
from bus import Database
from gateway._tables import SubjectTokenRow
from gateway.errors import NotFound, Unauthorized

TOKEN_PREFIX = "st_"  # noqa: S105 - a prefix, not a secret
_tokens = cast(Table, SubjectTokenRow.__table__)


class _Claims(msgspec.Struct, frozen=True):
    tid: str
    src: str
    sub: str
    exp: int


@dataclass(frozen=True, slots=True)
class SubjectClaims:
    token_id: str
    source_id: str
    subject: str


@dataclass(frozen=True, slots=True)
class MintedToken:
    token: str
    token_id: str
    expires_at: datetime


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SubjectTokens:
    def __init__(self, database: Database, keks: KekSet) -> None:
        self._db = database
        self._key = keks.derive("consentgate/subject-token/v1")

    def __repr__(self) -> str:
        return "SubjectTokens(<key hidden>)"

    async def mint(self, source_id: str, subject: str, ttl: timedelta) -> MintedToken:
        token_id = "tok_" + secrets.token_hex(12)
        expires_at = (datetime.now(UTC) + ttl).replace(microsecond=0)
        claims = _Claims(tid=token_id, src=source_id, sub=subject, exp=int(expires_at.timestamp()))
        payload = _b64url(msgspec.json.encode(claims))
        token = f"{TOKEN_PREFIX}{payload}.{_b64url(self._mac(payload))}"
        row = {
            "token_id": token_id,
            "source_id": source_id,
            "subject": subject,
            "expires_at": expires_at,
        }
        await self._db.transaction(lambda conn: conn.execute(insert(_tokens).values(**row)))
        return MintedToken(token=token, token_id=token_id, expires_at=expires_at)

    async def verify(self, token: str) -> SubjectClaims:
        claims = self._check_signature(token)
        if claims.exp <= datetime.now(UTC).timestamp():
            raise Unauthorized("the subject token has expired", code="token_expired")
        query = select(_tokens.c.revoked_at).where(_tokens.c.token_id == claims.tid)
        found = await self._db.read(lambda conn: conn.execute(query).first())
        if found is None or found.revoked_at is not None:
            raise Unauthorized("the subject token is revoked", code="token_revoked")
        return SubjectClaims(token_id=claims.tid, source_id=claims.src, subject=claims.sub)

    async def revoke(self, source_id: str, token_id: str) -> bool:
        """Revoke a token; True when this call revoked it, False when it already was (a
        repeated revocation changes nothing). 404 for a token the source never minted."""
        mine = (_tokens.c.token_id == token_id, _tokens.c.source_id == source_id)
        statement = update(_tokens).where(*mine, _tokens.c.revoked_at.is_(None))
        statement = statement.values(revoked_at=datetime.now(UTC))
        exists = select(_tokens.c.token_id).where(*mine)

        def revoke(conn: Connection) -> bool | None:
            if conn.execute(statement).rowcount:
                return True
            return None if conn.execute(exists).first() is None else False

        revoked = await self._db.transaction(revoke)
        if revoked is None:
            raise NotFound("no such token for this source", code="token_not_found")
        return revoked

    def _mac(self, payload: str) -> bytes:
        return hmac.digest(self._key, payload.encode(), hashlib.sha256)

    def _check_signature(self, token: str) -> _Claims:
        invalid = Unauthorized("the subject token is invalid", code="invalid_token")
        if not token.startswith(TOKEN_PREFIX) or token.count(".") != 1:
            raise invalid
        payload, _, mac = token[len(TOKEN_PREFIX) :].partition(".")
        try:
            given = _unb64url(mac)
            if not hmac.compare_digest(given, self._mac(payload)):
                raise invalid
            return msgspec.json.decode(_unb64url(payload), type=_Claims)
        except (binascii.Error, ValueError, msgspec.MsgspecError):
            raise invalid from None
