"""The key-encryption key (KEK): it wraps every other key; no data is encrypted under it.

Wrapping is AES-256-GCM with a random 96-bit nonce; the associated data names what the key is
for (source, version or subject), so a wrapped key moved to another row fails to unwrap. Each
wrapped key records the id of the KEK that wrapped it, so that a rotation interrupted half way
leaves every key readable: this process loads the current KEK file and, when present, the one
a rotation was writing (`<file>.new`).
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from anonymization._keyfile import KEY_BYTES, KeyFileError, load_or_create_key

NONCE_BYTES = 12
NEW_SUFFIX = ".new"


def pending_kek_path(path: str | Path) -> Path:
    """Where a KEK rotation writes the new KEK before it replaces the key file."""
    return Path(str(path) + NEW_SUFFIX)


class UnwrapError(Exception):
    """A wrapped key could not be unwrapped: unknown KEK, or tampered bytes."""


def kek_id(kek: bytes) -> str:
    """A public, stable name for a KEK (never the key itself)."""
    return hashlib.sha256(b"consentgate/kek-id\x00" + kek).hexdigest()[:16]


class KekSet:
    """The KEKs this process can unwrap with; it wraps with `current`."""

    __slots__ = ("_keys", "_raw", "current_id")

    def __init__(self, current: bytes, others: tuple[bytes, ...] = ()) -> None:
        self.current_id = kek_id(current)
        self._raw = {kek_id(key): key for key in (*others, current)}
        self._keys = {key_id: AESGCM(key) for key_id, key in self._raw.items()}

    def __repr__(self) -> str:
        return f"KekSet(current={self.current_id!r}, known={sorted(self._keys)!r})"

    @classmethod
    def load(cls, path: str | Path, environ_value: str | None = None) -> KekSet:
        """From `CONSENTGATE_KEK` (base64) when set, else the file (created on first run)."""
        if environ_value:
            try:
                key = base64.b64decode(environ_value, validate=True)
            except ValueError:
                raise KeyFileError("CONSENTGATE_KEK: not base64") from None
            if len(key) != KEY_BYTES:
                raise KeyFileError(f"CONSENTGATE_KEK: must hold {KEY_BYTES} bytes")
            return cls(key)
        current = load_or_create_key(path, "CONSENTGATE_KEY_FILE")
        pending = pending_kek_path(path)
        others = (load_or_create_key(pending, "CONSENTGATE_KEY_FILE"),) if pending.exists() else ()
        return cls(current, others)

    def derive(self, purpose: str) -> bytes:
        """A key for `purpose` derived from the current KEK (rotating the KEK changes it)."""
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
            self._raw[self.current_id]
        )

    def knows(self, key_id: str) -> bool:
        return key_id in self._keys

    def wrap(self, plaintext: bytes, label: str) -> tuple[str, bytes]:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.current_id].encrypt(nonce, plaintext, label.encode())
        return self.current_id, nonce + sealed

    def unwrap(self, key_id: str, blob: bytes, label: str) -> bytes:
        cipher = self._keys.get(key_id)
        if cipher is None:
            raise UnwrapError(f"no KEK {key_id} is loaded (was the key file replaced?)")
        try:
            return cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], label.encode())
        except InvalidTag:
            raise UnwrapError(f"a key wrapped by KEK {key_id} failed to unwrap") from None
