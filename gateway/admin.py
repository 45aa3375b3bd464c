"""Admin tokens (`at_…`) with a role: `admin` manages, `auditor` reads and changes nothing."""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime
from typing import Literal, cast

from sqlalchemy import Table, insert, select

from bus import Database
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


async def authenticate_admin(
    database: Database, authorization: str | None, allowed: tuple[Role, ...]
) -> Role:
    """The role of the bearer admin token; 401 without one, 403 when the role may not."""
    token = bearer_token(authorization)
    if token is None or not token.startswith(ADMIN_TOKEN_PREFIX):
        raise Unauthorized(
            "send an admin token as Authorization: Bearer at_…", code="missing_admin_token"
        )
    digest = hash_key(token)
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
