"""What keeps the pages safe: their response headers, the session cookie and CSRF tokens.

The session cookie holds the subject token the page was opened with, an expiry and a random
nonce, MAC'd (HMAC-SHA256) under a key the edge derives from the KEK. The token is checked
again on every request (revoked or expired, the session ends); the session itself ends
`SESSION_SECONDS` after it began. A form's CSRF token is the MAC of the session's nonce: a
page of another site can neither read it nor forge it, and it dies with the session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from dataclasses import dataclass

import msgspec

SESSION_SECONDS = 30 * 60

PAGE_HEADERS: dict[str, str] = {
    # nothing inline, nothing from elsewhere; forms post only here; no framing
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",  # a URL holding a token never leaks through Referer
    "cache-control": "no-store",
}

# the privacy center's enhancement: its one script, from here, and the reads it makes here
SCRIPTED_PAGE_HEADERS: dict[str, str] = {
    **PAGE_HEADERS,
    "content-security-policy": PAGE_HEADERS["content-security-policy"]
    + "; script-src 'self'; connect-src 'self'",
}


class SessionError(Exception):
    """The cookie is missing, forged or expired."""


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    expires_at: float
    nonce: str


class _Payload(msgspec.Struct, frozen=True):
    tok: str
    exp: float
    nonce: str


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Payload)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "SessionCodec(<key hidden>)"

    def new(self, token: str) -> Session:
        """A session for `token` (which is checked again on every request: its own expiry
        and revocation end the session sooner)."""
        expires = time.time() + SESSION_SECONDS
        return Session(token=token, expires_at=expires, nonce=_b64(os.urandom(16)))

    def encode(self, session: Session) -> str:
        payload = _b64(_encoder.encode(_Payload(session.token, session.expires_at, session.nonce)))
        return f"{payload}.{self._mac(payload)}"

    def decode(self, cookie: str | None) -> Session:
        if not cookie or "." not in cookie:
            raise SessionError("no session")
        payload, mac = cookie.rsplit(".", 1)
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise SessionError("the session cookie is not ours")
        try:
            fields = _decoder.decode(_unb64(payload))
        except (ValueError, msgspec.DecodeError) as exc:
            raise SessionError("the session cookie is malformed") from exc
        if fields.exp <= time.time():
            raise SessionError("the session has expired")
        return Session(token=fields.tok, expires_at=fields.exp, nonce=fields.nonce)

    def csrf_token(self, session: Session) -> str:
        return self._mac("csrf:" + session.nonce)

    def check_csrf(self, session: Session, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(str(sent), self.csrf_token(session))

    def _mac(self, text: str) -> str:
        return _b64(hmac.new(self._key, text.encode(), hashlib.sha256).digest())
