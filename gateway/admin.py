"""Admin tokens (`at_…`) with a role: `admin` manages, `auditor` reads and changes nothing."""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime
from typing import Literal, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.engine import Connection

from bus import Database, as_utc
from gateway._tables import AdminTokenRow
from gateway.auth import bearer_token
from gateway.errors import Forbidden, Unauthorized
from gateway.sources import hash_key

Role = Literal["admin", "auditor"]
ROLES: tuple[Role, ...] = ("admin", "auditor")
ADMIN_TOKEN_PREFIX = "at_"  # noqa: S105 - a prefix, not a secret
_tokens = cast(Table, AdminTokenRow.__table__)


async def create_admin_token(database: Database, role: Role) -> str:
    """A new token with `role`; only its hash is stored, the token is shown once."""
    if role not in ROLES:
        raise ValueError(f"--role: expected one of {list(ROLES)}")
    token = ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(32)
    statement = insert(_tokens).values(
        token_hash=hash_key(token), role=role, created_at=datetime.now(UTC)
    )
    await database.transaction(lambda conn: conn.execute(statement))
    return token


def token_id_of(token_hash: str) -> str:
    """An admin token's public id: the start of its hash (the token itself is never kept)."""
    return token_hash[:16]


async def list_admin_tokens(database: Database) -> list[dict[str, str | None]]:
    """Every admin and auditor token by id, role and dates, oldest first; never the token."""
    query = select(_tokens).order_by(_tokens.c.created_at)
    rows = await database.read(lambda conn: conn.execute(query).all())
    return [
        {
            "token_id": token_id_of(row.token_hash),
            "role": row.role,
            "created_at": _iso(row.created_at),
            "revoked_at": _iso(row.revoked_at) if row.revoked_at else None,
        }
        for row in rows
    ]


async def revoke_admin_token(database: Database, token_id: str) -> bool:
    """Revoke the token with this id; True when this call revoked it, False when it already
    was revoked (nothing changes). A ValueError for an unknown id."""
    if len(token_id) != 16 or not all(c in "0123456789abcdef" for c in token_id):
        raise ValueError(
            f"TOKEN_ID: expected 16 hex digits as `tokens list` shows, got {token_id!r}"
        )
    matching = _tokens.c.token_hash.startswith(token_id)

    def revoke(conn: Connection) -> bool | None:
        found = conn.execute(select(_tokens.c.revoked_at).where(matching)).first()
        if found is None:
            return None
        if found.revoked_at is not None:
            return False
        now = datetime.now(UTC)
        conn.execute(update(_tokens).where(matching).values(revoked_at=now))
        return True

    revoked = await database.transaction(revoke)
    if revoked is None:
        raise ValueError(f"TOKEN_ID: no admin or auditor token {token_id!r}")
    return revoked


def _iso(moment: datetime) -> str:
    return as_utc(moment).isoformat().replace("+00:00", "Z")


async def authenticate_admin(
    database: Database, authorization: str | None, allowed: tuple[Role, ...]
) -> Role:
    """The role of the bearer admin token; 401 without one, 403 when the role may not."""
    token = bearer_token(authorization)
    if token is None or not token.startswith(ADMIN_TOKEN_PREFIX):
        raise Unauthorized(
            "send an admin token as Authorization: Bearer at_…", code="missing_admin_token"
        )
    return await role_of_digest(database, hash_key(token), allowed)


async def role_of_digest(database: Database, digest: str, allowed: tuple[Role, ...]) -> Role:
    """The role of the admin token whose hash is `digest` (what the console's session keeps,
    never the token); 401 when it is unknown or revoked, 403 when the role may not."""
    query = select(_tokens.c.token_hash, _tokens.c.role, _tokens.c.revoked_at).where(
        _tokens.c.token_hash == digest
    )
    row = await database.read(lambda conn: conn.execute(query).first())
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.token_hash, digest):
        raise Unauthorized("unknown or revoked admin token", code="invalid_admin_token")
    role = cast(Role, row.role)
    if role not in allowed:
        raise Forbidden(f"the {role} role may not do this", code="forbidden_role")
    return role
