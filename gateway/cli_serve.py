"""`consentgate serve|core|migrate`: the commands that run consentgate's processes (one
gateway, N gateway workers, core processes) and create or upgrade the database they share."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from gateway.audit import open_audit
from gateway.cli_common import data_locations, keks_of, positive_int, settings_for
from gateway.database import open_database
from gateway.migrate import upgrade_to_head
from gateway.settings import Settings, SettingsError
from gateway.sources import count_sources, create_source
from observability import configure_logging


def add_process_commands(commands: Any) -> None:
    serve = commands.add_parser("serve", help="migrate, then serve the gateway and the core")
    serve.add_argument("--host", help="listen address (default: $CONSENTGATE_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: $CONSENTGATE_PORT, 8000)")
    serve.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="gateway processes sharing the port (above 1 needs CONSENTGATE_BUS_URL=nats://…)",
    )
    serve.add_argument(
        "--no-core",
        action="store_true",
        help="accept events only; `consentgate core` processes apply them (nats:// bus)",
    )
    serve.set_defaults(command=_serve)

    core = commands.add_parser(
        "core",
        help="run a core process: it takes events off the NATS JetStream bus and applies them; "
        "run several for throughput",
    )
    core.set_defaults(command=_core)

    migrate = commands.add_parser(
        "migrate", help="create the database if needed and upgrade its schema to head"
    )
    migrate.set_defaults(command=_migrate)


def _migrate(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    upgrade_to_head(settings.database_url)
    print(json.dumps({"migrated": True, **data_locations(settings)}))
    return 0


def _serve(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {"host": args.host, "port": args.port}
    if args.no_core:
        overrides["core"] = False
    settings = settings_for(args, **overrides)
    if (args.workers > 1 or args.no_core) and not settings.shared_bus:
        raise SettingsError(
            "--workers above 1 and --no-core need CONSENTGATE_BUS_URL=nats://… (the processes "
            "share events and consent changes over NATS JetStream)"
        )
    configure_logging(settings.log_level, settings.log_format)
    keks_of(settings)  # a bad key file stops here, before anything starts
    if settings.flags_file:
        from personalization import read_flags_file

        read_flags_file(settings.flags_file)  # an invalid file stops here, naming the flag
    upgrade_to_head(settings.database_url)
    asyncio.run(_create_default_source(settings))

    import uvicorn

    from gateway.server import StoppingServer, uvicorn_config_options

    options = {
        "host": settings.host,
        "port": settings.port,
        "lifespan": "on",
        "log_config": None,
        "access_log": False,
        "server_header": False,
        **uvicorn_config_options(settings),
    }
    print(
        json.dumps(
            {
                "event": "serving",
                "url": f"http://{settings.host}:{settings.port}",
                "workers": args.workers,
                "core": settings.core,
                "core_process": (
                    settings.core and settings.core_process and not settings.shared_bus
                ),
                **data_locations(settings),
            }
        ),
        file=sys.stderr,
        flush=True,
    )
    if args.workers == 1:
        from gateway.app import create_app

        child = None
        if settings.core_process and settings.core and not settings.shared_bus:
            import msgspec

            from gateway.core_child import CoreChild

            read_end, write_end = os.pipe()  # the child tells the gateway what it changed
            settings = msgspec.structs.replace(settings, core=False, core_changes_fd=read_end)
            child = CoreChild(write_end, _as_environment(args, overrides))
            child.start()
        server = StoppingServer(uvicorn.Config(create_app(settings, keks_of(settings)), **options))
        try:
            server.run()
        finally:
            if child is not None:
                child.stop()
        return 0 if server.started else 1
    # Each worker builds its app from the environment (settings given on the command line
    # travel there), on one listening socket bound here.
    from uvicorn.supervisors import Multiprocess

    os.environ.update(_as_environment(args, overrides))
    config = uvicorn.Config(
        "gateway.app:app_from_environment", factory=True, workers=args.workers, **options
    )
    socket = config.bind_socket()
    Multiprocess(config, sockets=[socket]).run()
    return 0


def _as_environment(args: argparse.Namespace, overrides: dict[str, Any]) -> dict[str, str]:
    environment = {
        f"CONSENTGATE_{name.upper()}": str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in overrides.items()
        if value is not None
    }
    if args.config:
        environment["CONSENTGATE_CONFIG"] = str(Path(args.config).resolve())
    return environment


def _core(args: argparse.Namespace) -> int:
    """A core process: the runtime without HTTP, until SIGTERM or SIGINT."""
    settings = settings_for(args, core=True)
    if not settings.shared_bus and settings.core_changes_fd is None:  # (serve's core child)
        raise SettingsError(
            "consentgate core needs CONSENTGATE_BUS_URL=nats://… (with the embedded bus, "
            "`serve` runs the core)"
        )
    configure_logging(settings.log_level, settings.log_format)
    keks = keks_of(settings)
    upgrade_to_head(settings.database_url)
    from gateway.core_process import run_core

    print(
        json.dumps({"event": "core", "bus": settings.bus_url, **data_locations(settings)}),
        file=sys.stderr,
        flush=True,
    )
    asyncio.run(run_core(settings, keks))
    return 0


async def _create_default_source(settings: Settings) -> None:
    """On the first start with no source at all, create `default` and show its keys once."""
    database = open_database(settings.database_url)
    try:
        if await count_sources(database):
            return
        created = await create_source(database, "default", settings.default_jurisdiction)
        await open_audit(database, settings).append(
            "source.created", "cli", created.audit_details()
        )
    finally:
        await database.dispose()
    print(
        "consentgate: created source 'default'; its keys are shown this once:",
        file=sys.stderr,
    )
    print(json.dumps(created.as_json()), flush=True)
