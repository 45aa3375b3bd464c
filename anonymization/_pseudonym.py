"""Keyed pseudonyms: HMAC-SHA256 under a per-source key over a normalized identifier.

Plain hashing is not pseudonymization (anyone can hash a guessed email); a keyed function
whose key is kept apart is. Pseudonyms are deterministic so the core can join a subject's
events. userId, anonymousId and alias's previousId share one domain ("subject"), since an
alias links them; group ids have their own.
"""

from __future__ import annotations

import binascii
import hashlib
import unicodedata
from typing import Literal

IdentifierKind = Literal["subject", "group"]

_DIGEST_BYTES = 16  # 128 bits: collision-free at any realistic subject count
_ENCODED_CHARS = 22  # 16 bytes in base64, without the "==" padding
_SHA256_BLOCK = 64
_URL_SAFE = bytes.maketrans(b"+/", b"-_")  # base64url, without base64's slower wrapper


def normalize_identifier(value: str) -> str:
    """The one form of an identifier that is keyed: trimmed; outside ASCII, without format
    characters (zero-width spaces and joiners, bidirectional marks) and in Unicode NFC, so
    that "ana\u200b" or a decomposed "é" is not a separate identity; e-mail addresses
    lower-cased, since their case carries no meaning."""
    text = value.strip()
    if not text.isascii():
        visible = "".join(char for char in text if unicodedata.category(char) != "Cf")
        text = unicodedata.normalize("NFC", visible).strip()
    if "@" in text:
        text = text.lower()
    return text


class Pseudonymizer:
    """Pseudonyms for one source and key version, `p<version>_<22 base64url chars>`.

    HMAC-SHA256 as RFC 2104 defines it, with the key's inner and outer pad states hashed once
    here: each pseudonym then costs two state copies instead of a full HMAC set-up, a third
    of the time of `hmac.digest` (the known-answer test compares it with the hmac module).
    """

    __slots__ = ("_inner", "_inner_by_kind", "_outer", "_prefix", "version")

    def __init__(self, key: bytes, version: int = 1) -> None:
        self.version = version
        self._prefix = f"p{version}_"
        if len(key) > _SHA256_BLOCK:
            key = hashlib.sha256(key).digest()
        block = key.ljust(_SHA256_BLOCK, b"\x00")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
        # the message starts with "<kind>\0": that prefix is hashed once per kind, here
        self._inner_by_kind = {}
        for kind in ("subject", "group", "message"):
            state = self._inner.copy()
            state.update(kind.encode() + b"\x00")
            self._inner_by_kind[kind] = state

    def __call__(self, kind: IdentifierKind, value: str) -> str:
        inner = self._inner_by_kind[kind].copy()
        inner.update(normalize_identifier(value).encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        digest = outer.digest()[:_DIGEST_BYTES]
        encoded = binascii.b2a_base64(digest, newline=False).translate(_URL_SAFE)
        return self._prefix + encoded[:_ENCODED_CHARS].decode()

    def message_id(self, value: str) -> str:
        """A client's messageId keyed for storage, `m<version>_…`: dedupe and decisions need
        it exact, but the client chose it, so it may hold anything (an e-mail address, say).
        Not normalized: two ids that differ in case are two messages."""
        inner = self._inner_by_kind["message"].copy()
        inner.update(value.encode("utf-8", "surrogatepass"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        digest = outer.digest()[:_DIGEST_BYTES]
        encoded = binascii.b2a_base64(digest, newline=False).translate(_URL_SAFE)
        return f"m{self.version}_" + encoded[:_ENCODED_CHARS].decode()

    def __repr__(self) -> str:
        return f"Pseudonymizer(version={self.version}, <key hidden>)"

    def blind_index_key(self) -> bytes:
        """A key for blind indexes, derived from this pseudonym key (HMAC of a fixed label)."""
        return self.digest(b"consentgate/blind-index")

    def digest(self, message: bytes) -> bytes:
        """HMAC-SHA256(key, message), full length."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()
