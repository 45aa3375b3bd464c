"""What the CLI's commands share: settings with command-line overrides, a database opened for
one command, and audit entries for CLI actions."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import URL, make_url

from anonymization import KekSet
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


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def keks_of(settings: Settings) -> KekSet:
    """The KEK: `CONSENTGATE_KEK` (base64) when set, else the key file."""
    return KekSet.load(settings.key_file, os.environ.get("CONSENTGATE_KEK"))


def existing_settings(args: argparse.Namespace, *, migrate: bool = True) -> Settings:
    """The settings of a command that works on data `serve` created: a missing database is
    an error naming where it was looked for, never a new empty one. With `migrate`, an
    existing database is brought to the current schema (read-only commands pass False)."""
    settings = settings_for(args)
    require_database(settings.database_url)
    if migrate:
        from gateway.migrate import upgrade_to_head

        upgrade_to_head(settings.database_url)
    return settings


def require_database(database_url: str) -> None:
    """A SettingsError naming the database when it does not exist (or holds no schema)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            path = Path(url.database).resolve()
            if not path.is_file():
                raise SettingsError(
                    f"no database at {path}: run `consentgate serve` (or `migrate`) first, or "
                    "give the one to use with --config or CONSENTGATE_DATABASE_URL "
                    "(relative paths are relative to the config file, else to this folder)"
                )
        return
    asyncio.run(_require_schema(url))


async def _require_schema(url: URL) -> None:
    import asyncpg

    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        connection = await asyncpg.connect(plain)
    except (OSError, asyncpg.PostgresError) as exc:
        raise SettingsError(f"cannot reach the database {url.render_as_string()}: {exc}") from None
    try:
        migrated = await connection.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
    finally:
        await connection.close()
    if not migrated:
        raise SettingsError(
            f"the database {url.render_as_string()} holds no consentgate schema: run "
            "`consentgate serve` (or `migrate`) against it first"
        )


def print_listing(
    args: argparse.Namespace, read: Callable[[Database], Awaitable[list[Any]]]
) -> int:
    """A read-only listing command: what `read` finds, as JSON lines."""
    settings = existing_settings(args, migrate=False)
    for item in with_database(settings, read):
        print(json.dumps(item))
    return 0


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
    """An audit entry for a CLI action, covered at once by a signed checkpoint (no serving
    process may be running to sign one)."""
    from gateway.audit import open_audit

    async def append(database: Database) -> None:
        log = open_audit(database, settings)
        await log.append(kind, "cli", details)
        await log.checkpoint()

    with_database(settings, append)


def data_locations(settings: Settings) -> dict[str, str]:
    """Where this process's data lives, as absolute paths (a relative default is relative to
    the folder it started in: saying so saves a newcomer a second, empty database)."""
    url = make_url(settings.database_url)
    database = (
        str(Path(url.database).resolve())
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:"
        else url.render_as_string()
    )
    return {
        "database": database,
        "key_file": str(Path(settings.key_file).resolve()),
        "receipt_key_file": str(Path(settings.receipt_key_file).resolve()),
    }


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
