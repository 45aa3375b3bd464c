"""Settings: `CONSENTGATE_*` environment variables over an optional TOML file over defaults.

The defaults are the embedded shape: SQLite under ./var, the in-process bus, 127.0.0.1:8000.
With a TOML file, the relative paths it gives (and the defaults' `var/…` paths) are relative
to the file's folder, so a command finds the same data from any working folder; paths in
environment variables are relative to the working folder, as a shell user expects.
An invalid value stops start-up with a `SettingsError` that names the setting.
"""

from __future__ import annotations

import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

ENV_PREFIX = "CONSENTGATE_"
CONFIG_FILE_VARIABLE = "CONSENTGATE_CONFIG"

Jurisdiction = Literal["gdpr", "ccpa", "none"]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class SettingsError(ValueError):
    """A setting is missing, malformed or out of range; the message names it."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    database_url: str = "sqlite:///var/consentgate.db"
    bus_url: str = "memory://"
    host: str = "127.0.0.1"
    port: Port = 8000
    key_file: str = "var/keys/master.key"
    receipt_key_file: str = "var/keys/receipts.key"
    otlp_endpoint: str | None = None
    trace_sample_ratio: Annotated[float, msgspec.Meta(ge=0, le=1)] = 1.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    default_jurisdiction: Jurisdiction = "gdpr"
    max_event_bytes: PositiveInt = 32 * 1024
    max_request_bytes: PositiveInt = 500 * 1024
    max_batch_events: PositiveInt = 2500
    # Dedupe by messageId must outlive any client's retry window: at least 24 hours.
    dedupe_retention_hours: Annotated[int, msgspec.Meta(ge=24)] = 24
    decision_retention_days: PositiveInt = 90
    # how soon after an audit entry a signed checkpoint covers it (the unprotected tail)
    audit_checkpoint_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 1.0
    # how often the whole audit log is re-verified (the consentgate_audit_verified gauge)
    audit_verify_seconds: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    # how often open privacy requests are resumed and their deadline gauges refreshed
    privacy_advance_seconds: Annotated[float, msgspec.Meta(gt=0)] = 2.0
    # when set, GET /metrics needs `Authorization: Bearer <metrics_token>`
    metrics_token: str | None = None
    # FULL survives power loss; NORMAL (WAL) survives any process crash and is faster.
    sqlite_synchronous: Literal["full", "normal"] = "full"
    outbox_batch_size: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500
    # this process runs the core: it takes events off the bus and applies them (off for a
    # gateway that only accepts; `consentgate core` processes apply them)
    core: bool = True
    # embedded only: `serve` runs the core in a child process of its own, sharing the SQLite
    # database, so that applying events takes nothing from the gateway's process (its GIL).
    # Off by default: on 2 cores shared with the load it was not faster (docs/performance.md)
    core_process: bool = False
    # set by `serve` for its core child (not a setting to choose): the pipe through which the
    # child tells the gateway what each commit changed
    core_changes_fd: int | None = None
    # nats:// only: how long a unit relayed to JetStream stays in the outbox, relayed again if
    # NATS reconnects: NATS's sync_interval (2 min by default); 0 once every write is synced
    # (`sync_interval: always`) or the stream is replicated (R3)
    nats_sync_seconds: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 120.0
    # nats:// only: the JetStream stream (its subjects are its lower-cased name + ".>"); one per
    # deployment sharing a NATS server
    nats_stream: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,32}$")] = "CONSENTGATE"
    # What one client may cost (README, "Limits and abuse").
    max_header_bytes: Annotated[int, msgspec.Meta(ge=1024, le=1024 * 1024)] = 32 * 1024
    max_headers: Annotated[int, msgspec.Meta(ge=8, le=1000)] = 100
    header_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    body_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    keep_alive_seconds: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    max_connections: PositiveInt = 1000
    # Ingestion requests per second per write key (a token bucket per process); a source's
    # own `rate_limit` overrides them. 0 turns the limit off.
    rate_limit_per_second: Annotated[float, msgspec.Meta(ge=0)] = 500.0
    rate_limit_burst: PositiveInt = 1000
    # Distinct keys in one profile's per-subject maps (event counts, traits); past it, new
    # event names count under "(other)" and new traits are not kept.
    profile_max_keys: Annotated[int, msgspec.Meta(ge=10, le=100_000)] = 1000
    # inactivity that ends a session (the core's `sessions` computed trait)
    # flags and flows loaded (and kept in step) at start: TOML or JSON keyed by flag key
    flags_file: str | None = None
    # OFREP evaluations a second per caller (a subject, or a server key), and the burst above
    ofrep_rate_limit_per_second: Annotated[float, msgspec.Meta(ge=0)] = 100.0
    ofrep_rate_limit_burst: Annotated[int, msgspec.Meta(ge=1)] = 200
    # how long an evaluation waits for the profile before serving the baseline
    core_time_budget_ms: Annotated[float, msgspec.Meta(gt=0, le=10_000)] = 50.0
    # how often recommendation models are rebuilt from the profiles (and erased subjects leave)
    recommend_refresh_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 5.0
    # how often the core looks for segments to backfill and windows to slide
    segment_maintenance_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 1.0
    session_gap_minutes: Annotated[float, msgspec.Meta(gt=0, le=24 * 60)] = 30

    @property
    def shared_bus(self) -> bool:
        """Several processes share the bus (NATS JetStream): consent changes are read from the
        database per request, so one made through any process holds for the next event on
        every other."""
        return self.bus_url.startswith(("nats://", "tls://"))

    def __post_init__(self) -> None:
        if "://" not in self.database_url:
            raise SettingsError(
                f"{ENV_PREFIX}DATABASE_URL: expected a URL such as sqlite:///var/consentgate.db "
                "or postgresql://host/db"
            )
        if not self.bus_url.startswith(("memory://", "nats://", "tls://")):
            raise SettingsError(
                f"{ENV_PREFIX}BUS_URL: expected memory:// (the embedded outbox) or "
                f"nats://host:4222 (NATS JetStream), got {self.bus_url!r}"
            )


_FIELDS = Settings.__struct_fields__


def load_settings(
    environ: Mapping[str, str] | None = None, config_file: str | Path | None = None
) -> Settings:
    """Read settings from `environ` (default: the process environment) and a TOML file.

    The TOML file is `config_file`, else `$CONSENTGATE_CONFIG`, else none. Environment
    variables win over the file.
    """
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    path = config_file or env.get(CONFIG_FILE_VARIABLE)
    if path:
        raw.update(_read_toml(Path(path)))
        raw.update(_anchored_paths(raw, Path(path).resolve().parent))
    for name in _FIELDS:
        value = env.get(ENV_PREFIX + name.upper())
        if value is not None and value != "":
            raw[name] = value
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_name_the_setting(str(exc))) from None


_PATH_SETTINGS = ("key_file", "receipt_key_file", "flags_file")
_DEFAULTS = Settings()


def _anchored_paths(raw: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """The file's relative paths, and the defaults', made relative to the file's `folder`."""
    anchored: dict[str, Any] = {}
    for name in _PATH_SETTINGS:
        value = raw.get(name, getattr(_DEFAULTS, name))
        if isinstance(value, str) and value and not Path(value).is_absolute():
            anchored[name] = str(folder / value)
    url = raw.get("database_url", _DEFAULTS.database_url)
    prefix = "sqlite:///"
    if isinstance(url, str) and url.startswith(prefix):
        database = url[len(prefix) :]
        if database and database != ":memory:" and not database.startswith("/"):
            anchored["database_url"] = prefix + str(folder / database)
    return anchored


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """`CONSENTGATE_*` variables that name no setting (a typo is otherwise silently ignored)."""
    env = os.environ if environ is None else environ
    known = {ENV_PREFIX + name.upper() for name in _FIELDS} | _OTHER_VARIABLES
    return sorted(name for name in env if name.startswith(ENV_PREFIX) and name not in known)


# variables read outside Settings: the config file, a KEK given inline, the test switches
_OTHER_VARIABLES = frozenset(
    {
        CONFIG_FILE_VARIABLE,
        "CONSENTGATE_KEK",
        "CONSENTGATE_REQUIRE_SERVICES",
        "CONSENTGATE_TEST_POSTGRES_URL",
        "CONSENTGATE_TEST_NATS_URL",
    }
)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"{CONFIG_FILE_VARIABLE}: no such file {str(path)!r}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{CONFIG_FILE_VARIABLE}: {path} is not valid TOML: {exc}") from None
    section = data.get("consentgate", data)
    if not isinstance(section, dict):
        raise SettingsError(f"{CONFIG_FILE_VARIABLE}: [consentgate] must be a table")
    return section


def _allowed_values(field: str) -> tuple[str, ...]:
    """The values a Literal setting takes (for an error that lists them)."""
    hints = typing.get_type_hints(Settings)
    hint = hints.get(field)
    return (
        tuple(str(v) for v in typing.get_args(hint)) if typing.get_origin(hint) is Literal else ()
    )


def _name_the_setting(message: str) -> str:
    """Turn msgspec's `... - at `$.port`` into `CONSENTGATE_PORT: ...`."""
    if " - at `$." in message:
        text, _, where = message.rpartition(" - at `$.")
        field = where.rstrip("`").split(".")[0].split("[")[0]
        allowed = _allowed_values(field)
        if allowed and text.startswith("Invalid enum value"):
            text += f"; expected one of {', '.join(allowed)}"
        return f"{ENV_PREFIX}{field.upper()}: {text}"
    if message.startswith("Object contains unknown field"):
        field = message.split("`")[1]
        return f"{ENV_PREFIX}{field.upper()}: unknown setting"
    return message
