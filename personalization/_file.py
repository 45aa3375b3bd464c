"""Flags loaded at start from a file (`CONSENTGATE_FLAGS_FILE`): TOML or JSON, DESIGN's shapes
keyed by flag key. A flag whose definition changed gets a new version (origin "file"); an
unchanged one is left alone, so restarts do not bump versions."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from personalization._flags import FlagError, FlagStore, parse_definition


def read_flags_file(path: str) -> dict[str, dict[str, Any]]:
    """The file's flags, each validated (segment references are checked when loaded); a
    FlagError names the file, the flag and the path at fault."""
    file = Path(path)
    try:
        text = file.read_text()
        loaded = tomllib.loads(text) if file.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as error:
        raise FlagError(f"flags file {path}: {error}") from None
    flags = loaded.get("flags", loaded) if isinstance(loaded, dict) else None
    if not isinstance(flags, dict):
        raise FlagError(f"flags file {path}: an object of flags keyed by flag key")
    for key, raw in flags.items():
        try:
            parse_definition(raw)
        except FlagError as error:
            raise FlagError(f"flags file {path}: flag {key!r}: {error}") from None
    return flags


async def load_flags_file(store: FlagStore, path: str) -> int:
    """Bring the store in step with the file; returns how many flags changed."""
    changed = 0
    for key, raw in read_flags_file(path).items():
        current = await store.get(key)
        wanted = msgspec.to_builtins(parse_definition(raw))
        if current is not None and msgspec.to_builtins(current.definition) == wanted:
            continue
        try:
            await store.put(key, raw, origin="file")
        except FlagError as error:
            raise FlagError(f"flags file {path}: flag {key!r}: {error}") from None
        changed += 1
    return changed
