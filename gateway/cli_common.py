"""What the CLI's commands share: settings with command-line overrides, a database opened for
one command, and audit entries for CLI actions."""

from __future__ import annotations

import argparse
import asyncio
import json
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from bus import Database
from gateway.database import open_database
from gateway.settings import Settings, SettingsError, load_settings

T = TypeVar("T")


def settings_for(args: argparse.Namespace, **overrides: Any) -> Settings:
    settings = load_settings(config_file=args.config)
    changes = {key: value for key, value in overrides.items() if value is not None}
    if not changes:
        return settings
    import msgspec

    try:
        return msgspec.convert({**msgspec.to_builtins(settings), **changes}, Settings)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"--{next(iter(changes))}: {exc}") from None


def with_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run `work` on a database opened for this command, and close it."""

    async def run() -> T:
        database = open_database(settings.database_url)
        try:
            return await work(database)
        finally:
            await database.dispose()

    return asyncio.run(run())


def audit_cli(settings: Settings, kind: str, details: dict[str, Any]) -> None:
    """An audit entry for a CLI action."""
    from gateway.audit import open_audit

    with_database(
        settings, lambda database: open_audit(database, settings).append(kind, "cli", details)
    )


def read_config_file(path: str | None, option: str) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{option}: cannot read {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text.decode()) if path.endswith(".toml") else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{option}: {path} is not valid: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{option}: {path} must hold an object")
    return data


def as_json(value: Any) -> str:
    """`value` as one line of JSON (msgspec: datetimes and structs included)."""
    import msgspec

    return msgspec.json.encode(value).decode()
