"""Which subjects' flag evaluations may have changed, for OFREP's event streams: a flag edit
(everyone), a segment membership change, a consent change or an erasure (one subject).

A stream is an `asyncio.Event` per listener: a burst of changes wakes it once, and it tells
its client to refetch. Streams are signed tickets in the URL (EventSource cannot send an
Authorization header): `et_<payload>.<mac>`, the payload `{"src", "sub", "exp"}` (the subject's
pseudonym), HMAC-SHA256 under a key derived from the KEK, valid for an hour; a ticket lets its
holder hear "refetch" for one subject and nothing else.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable

import msgspec

from anonymization import KekSet

TICKET_PREFIX = "et_"
TICKET_SECONDS = 3600
MAX_STREAMS = 1000


class _Ticket(msgspec.Struct, frozen=True):
    src: str
    sub: str
    exp: int


class StreamTickets:
    def __init__(self, keks: KekSet) -> None:
        self._key = keks.derive("consentgate/evaluation-stream/v1")

    def __repr__(self) -> str:
        return "StreamTickets(<key>)"

    def mint(self, source_id: str, subject: str) -> str:
        claims = _Ticket(src=source_id, sub=subject, exp=int(time.time()) + TICKET_SECONDS)
        payload = base64.urlsafe_b64encode(msgspec.json.encode(claims)).rstrip(b"=").decode()
        return f"{TICKET_PREFIX}{payload}.{self._mac(payload)}"

    def verify(self, ticket: str) -> tuple[str, str] | None:
        """(source id, subject) of a valid, unexpired ticket; None otherwise."""
        if not ticket.startswith(TICKET_PREFIX) or len(ticket) > 1024:
            return None
        payload, _, mac = ticket.removeprefix(TICKET_PREFIX).partition(".")
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            padded = payload + "=" * (-len(payload) % 4)
            claims = msgspec.json.decode(base64.urlsafe_b64decode(padded), type=_Ticket)
        except (binascii.Error, ValueError, msgspec.DecodeError):
            return None
        if claims.exp < time.time():
            return None
        return claims.src, claims.sub

    def _mac(self, payload: str) -> str:
        digest = hmac.digest(self._key, payload.encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class EvaluationEvents:
    """Listeners by subject; `changed` and `everything_changed` wake them."""

    def __init__(self, max_streams: int = MAX_STREAMS) -> None:
        self._by_subject: dict[tuple[str, str], set[asyncio.Event]] = {}
        self._count = 0
        self._max = max_streams
        self.closed = False  # shutting down: streams end, new ones are refused

    def close(self) -> None:
        """End every stream (the server is stopping: open streams would hold it up)."""
        self.closed = True
        self.everything_changed()

    def listen(self, source_id: str, subject: str) -> asyncio.Event | None:
        """A new listener, or None when MAX_STREAMS are open."""
        if self._count >= self._max or self.closed:
            return None
        event = asyncio.Event()
        self._by_subject.setdefault((source_id, subject), set()).add(event)
        self._count += 1
        return event

    def forget(self, source_id: str, subject: str, event: asyncio.Event) -> None:
        listeners = self._by_subject.get((source_id, subject))
        if listeners is not None and event in listeners:
            listeners.discard(event)
            self._count -= 1
            if not listeners:
                del self._by_subject[(source_id, subject)]

    def changed(self, source_id: str, subjects: Iterable[str]) -> None:
        for subject in subjects:
            for event in self._by_subject.get((source_id, subject), ()):
                event.set()

    def everything_changed(self) -> None:
        for listeners in self._by_subject.values():
            for event in listeners:
                event.set()
