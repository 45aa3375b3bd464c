"""Per-subject field encryption (AES-256-GCM) and keyed blind indexes.

A value is encrypted under its subject's own data key, with associated data naming the
source, the subject and the field: a ciphertext copied to another subject or field fails to
decrypt. Beside it, a blind index (HMAC under the source's blind-index key) lets a value be
looked up without decrypting anything. Destroying the data key (crypto-shredding) turns every
copy of every ciphertext, wherever it went, into noise.
"""

from __future__ import annotations

import base64
import hmac
import os
from hashlib import sha256
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from anonymization._pseudonym import normalize_identifier

CIPHERTEXT_VERSION = "e1"
BLIND_INDEX_VERSION = "b1"
_NONCE = 12


class DecryptError(Exception):
    """The ciphertext does not open: wrong subject or field, tampered, or its key is shredded."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def associated_data(source_id: str, subject: str, field: str) -> bytes:
    return f"{source_id}\x00{subject}\x00{field}".encode()


def encrypt_value(data_key: bytes, source_id: str, subject: str, field: str, value: Any) -> str:
    """`e1.<base64url(nonce | ciphertext | tag)>` of the JSON-encoded value."""
    nonce = os.urandom(_NONCE)
    sealed = AESGCM(data_key).encrypt(
        nonce, msgspec.json.encode(value), associated_data(source_id, subject, field)
    )
    return f"{CIPHERTEXT_VERSION}.{_b64(nonce + sealed)}"


def decrypt_value(data_key: bytes, source_id: str, subject: str, field: str, token: str) -> Any:
    version, _, body = token.partition(".")
    if version != CIPHERTEXT_VERSION:
        raise DecryptError(f"unknown ciphertext version {version!r}")
    try:
        raw = _unb64(body)
        plain = AESGCM(data_key).decrypt(
            raw[:_NONCE], raw[_NONCE:], associated_data(source_id, subject, field)
        )
    except (InvalidTag, ValueError):
        raise DecryptError("the value does not decrypt for this subject and field") from None
    return msgspec.json.decode(plain)


def blind_index(index_key: bytes, field: str, value: Any) -> str:
    """A keyed, deterministic index of a value (strings normalized like identifiers)."""
    text = (
        normalize_identifier(value)
        if isinstance(value, str)
        else msgspec.json.encode(value).decode()
    )
    digest = hmac.digest(index_key, f"{field}\x00{text}".encode(), sha256)[:16]
    return f"{BLIND_INDEX_VERSION}_{_b64(digest)}"


def decrypt_fields(
    values: dict[str, Any], data_key: bytes | None, source_id: str, subject: str, section: str
) -> dict[str, Any]:
    """`values` with each `{"enc": …}` field decrypted; None where it no longer opens."""
    opened: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, dict) and isinstance(value.get("enc"), str):
            try:
                if data_key is None:
                    raise DecryptError("the subject's key is gone")
                opened[name] = decrypt_value(
                    data_key, source_id, subject, f"{section}.{name}", value["enc"]
                )
            except DecryptError:
                opened[name] = None
        else:
            opened[name] = value
    return opened
