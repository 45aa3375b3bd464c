"""Keyed pseudonyms: HMAC-SHA256 under a per-source key over a normalized identifier.

Plain hashing is not pseudonymization (anyone can hash a guessed email); a keyed function
whose key is kept apart is. Pseudonyms are deterministic so the core can join a subject's
events. userId, anonymousId and alias's previousId share one domain ("subject"), since an
alias links them; group ids have their own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

IdentifierKind = Literal["subject", "group"]

PSEUDONYM_VERSION = "p1"
_DIGEST_BYTES = 16  # 128 bits: collision-free at any realistic subject count


def derive_source_key(master_key: bytes, source_id: str) -> bytes:
    """The source's pseudonymization key, derived from the master key (HKDF-SHA256)."""
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"consentgate/pseudonym/v1/" + source_id.encode(),
    ).derive(master_key)


def normalize_identifier(value: str) -> str:
    """Trim; lower-case email addresses, whose case carries no meaning."""
    text = value.strip()
    if "@" in text:
        text = text.lower()
    return text


class Pseudonymizer:
    """Pseudonyms for one source, `p1_<22 base64url chars>`."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __call__(self, kind: IdentifierKind, value: str) -> str:
        message = kind.encode() + b"\x00" + normalize_identifier(value).encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()[:_DIGEST_BYTES]
        return PSEUDONYM_VERSION + "_" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def __repr__(self) -> str:
        return "Pseudonymizer(<key hidden>)"
