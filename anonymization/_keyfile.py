"""Key files: 32 random bytes, created once with mode 0600, never logged."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

KEY_BYTES = 32


class KeyFileError(Exception):
    """The key file is unreadable, malformed or readable by others."""


def load_or_create_key(path: str | Path, setting: str = "CONSENTGATE_KEY_FILE") -> bytes:
    """Read the 32-byte key at `path`, creating it (mode 0600, atomically) when absent."""
    key_path = Path(path)
    if not key_path.exists():
        _create(key_path)
    mode = key_path.stat().st_mode & 0o777
    if mode & 0o077:
        raise KeyFileError(
            f"{setting}: {key_path} is accessible by group or others "
            f"(mode {mode:o}); run chmod 600 on it"
        )
    try:
        key = base64.b64decode(key_path.read_bytes().strip(), validate=True)
    except ValueError:
        raise KeyFileError(f"{setting}: {key_path} is not base64") from None
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"{setting}: {key_path} must hold {KEY_BYTES} bytes")
    return key


def _create(key_path: Path) -> None:
    # every folder created on the way is private (mkdir's mode covers only the last one)
    for folder in reversed((key_path.parent, *key_path.parent.parents)):
        if not folder.exists():
            folder.mkdir(mode=0o700, exist_ok=True)
    encoded = base64.b64encode(secrets.token_bytes(KEY_BYTES)) + b"\n"
    try:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process created it first; read theirs
    with os.fdopen(fd, "wb") as handle:
        handle.write(encoded)
        handle.flush()
        os.fsync(handle.fileno())


def load_or_create_master_key(path: str | Path) -> bytes:
    """The master key (`CONSENTGATE_KEY_FILE`): pseudonym keys and token keys derive from it."""
    return load_or_create_key(path, "CONSENTGATE_KEY_FILE")
