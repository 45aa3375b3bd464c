"""consentgate: a privacy-first consent gateway. Commands: serve, migrate, sources, tokens,
keys, audit, verify, requests, bench. Settings come from CONSENTGATE_* variables over a TOML
file (--config) over defaults; see the README's Configuration."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

from anonymization import KeyFileError
from gateway.admin import ROLES
from gateway.audit import open_audit
from gateway.cli_common import (
    as_json,
    audit_cli,
    existing_settings,
    keks_of,
    positive_int,
    print_listing,
    with_database,
)
from gateway.cli_serve import add_process_commands
from gateway.cli_sources import add_source_commands
from gateway.cli_verify import add_verify_commands
from gateway.runtime import VERSION
from gateway.settings import SettingsError, unknown_variables

EXIT_CONFIG_ERROR = 2
T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    for name in unknown_variables():
        print(f"consentgate: warning: {name} is not a setting; it is ignored", file=sys.stderr)
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except (SettingsError, KeyFileError, ValueError) as exc:
        print(f"consentgate: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default, where it has one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if default not in (None, False, argparse.SUPPRESS) and "default" not in text:
            text += f" (default: {default})"
        return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="consentgate", description=__doc__, formatter_class=_HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML settings file (default: $CONSENTGATE_CONFIG, else none); relative paths "
        "in it resolve against its folder",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    add_process_commands(commands)

    bench = commands.add_parser(
        "bench", help="measure the gateway against its floor and bare litestar (loopback)"
    )
    bench.add_argument("--seconds", type=float, default=10.0, help="per HTTP measurement")
    bench.add_argument("--e2e-rate", type=float, default=2000.0, help="events/s offered")
    bench.set_defaults(command=_bench)

    keys = commands.add_parser("keys", help="manage keys").add_subparsers(
        required=True, metavar="ACTION"
    )
    rotate = keys.add_parser(
        "rotate",
        help="rotate the KEK (re-wraps every key; refused while any consentgate process holds "
        "the keys), or start a pseudonym epoch",
    )
    rotate.add_argument(
        "--pseudonym-epoch",
        action="store_true",
        help="add a pseudonym key version to every source (or --source) instead",
    )
    rotate.add_argument(
        "--source", metavar="SOURCE_ID", help="with --pseudonym-epoch: only this source"
    )
    rotate.set_defaults(command=_keys_rotate)

    tokens = commands.add_parser("tokens", help="admin and auditor tokens").add_subparsers(
        required=True, metavar="ACTION"
    )
    token_create = tokens.add_parser("create", help="create a token; prints it once as JSON")
    token_create.add_argument(
        "--role", required=True, choices=ROLES, help="admin manages; auditor reads"
    )
    token_create.set_defaults(command=_tokens_create)
    token_list = tokens.add_parser(
        "list", help="every admin and auditor token (id, role, dates; never the token)"
    )
    token_list.set_defaults(command=_tokens_list)
    token_revoke = tokens.add_parser(
        "revoke", help="revoke a token by the id `tokens list` shows (again: no change)"
    )
    token_revoke.add_argument("token_id", metavar="TOKEN_ID", help="the id `tokens list` shows")
    token_revoke.set_defaults(command=_tokens_revoke)

    audit = commands.add_parser("audit", help="the audit log").add_subparsers(
        required=True, metavar="ACTION"
    )
    audit_verify = audit.add_parser(
        "verify",
        help="recompute the log; exit 0 when it verifies, 1 naming the first bad entry; "
        "`uncovered` counts the entries no signed checkpoint covers yet",
    )
    audit_verify.set_defaults(command=_audit_verify)

    requests = commands.add_parser("requests", help="privacy requests").add_subparsers(
        required=True, metavar="ACTION"
    )
    requests_list = requests.add_parser(
        "list", help="privacy requests as JSON lines, the nearest deadline first"
    )
    requests_list.add_argument(
        "--status", choices=("received", "in_progress", "completed"), help="only these"
    )
    requests_list.add_argument("--source-id", help="only this source's")
    requests_list.add_argument("--limit", type=positive_int, default=100, help="at most this many")
    requests_list.set_defaults(command=_requests_list)
    requests_show = requests.add_parser("show", help="one privacy request, with its receipts")
    requests_show.add_argument("request_id", help="the request's id (pr_…)")
    requests_show.set_defaults(command=_requests_show)

    add_source_commands(commands)
    add_verify_commands(commands)
    _format_every_help(parser)
    return parser


def _format_every_help(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                child.formatter_class = _HelpFormatter
                _format_every_help(child)


def _keys_rotate(args: argparse.Namespace) -> int:
    from gateway.key_lock import holding_keys
    from gateway.keys import rotate_kek, start_pseudonym_epoch

    if args.source and not args.pseudonym_epoch:
        raise ValueError(
            "--source works only with --pseudonym-epoch (the KEK is one for every source)"
        )
    settings = existing_settings(args)
    if args.pseudonym_epoch:

        async def start_epoch() -> dict[str, int]:
            async with holding_keys(settings.database_url):
                return await start_pseudonym_epoch(settings, keks_of(settings), args.source)

        versions = asyncio.run(start_epoch())
        audit_cli(settings, "keys.pseudonym_epoch", {"versions": versions})
        print(json.dumps({"pseudonym_epochs": versions}))
        return 0
    if os.environ.get("CONSENTGATE_KEK"):
        raise ValueError(
            "CONSENTGATE_KEK: a KEK given in the environment is rotated by whoever provides it; "
            "keys rotate rotates the key file"
        )

    async def rotate() -> dict[str, object]:
        async with holding_keys(settings.database_url, exclusive=True):
            return await rotate_kek(settings)

    rotated = asyncio.run(rotate())
    audit_cli(settings, "keys.kek_rotated", rotated)
    print(json.dumps(rotated))
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    import msgspec

    settings = existing_settings(args, migrate=False)
    result = with_database(settings, lambda database: open_audit(database, settings).verify())
    print(json.dumps(msgspec.to_builtins(result)))
    return 0 if result.ok else 1


def _requests_list(args: argparse.Namespace) -> int:
    from gateway.receipts import receipt_signer_for
    from privacy import RequestStore, request_view

    settings = existing_settings(args, migrate=False)
    signer = receipt_signer_for(settings)
    found = with_database(
        settings,
        lambda database: RequestStore(database).listing(
            source_id=args.source_id, status=args.status, limit=args.limit
        ),
    )
    audit_cli(settings, "audit.query", {"endpoint": "requests list", "params": {}})
    for request in found:
        print(as_json(request_view(request, signer.sign)))
    return 0


def _requests_show(args: argparse.Namespace) -> int:
    from gateway.receipts import receipt_signer_for
    from privacy import RequestStore, request_view

    settings = existing_settings(args, migrate=False)
    request = with_database(settings, lambda database: RequestStore(database).get(args.request_id))
    audit_cli(settings, "audit.query", {"endpoint": "requests show", "params": {}})
    if request is None:
        print(f"no privacy request {args.request_id!r}", file=sys.stderr)
        return 1
    print(as_json(request_view(request, receipt_signer_for(settings).sign)))
    return 0


def _tokens_create(args: argparse.Namespace) -> int:
    from gateway.admin import create_admin_token

    settings = existing_settings(args)
    token = with_database(settings, lambda database: create_admin_token(database, args.role))
    audit_cli(settings, "admin_token.created", {"role": args.role})
    print(json.dumps({"token": token, "role": args.role}))
    return 0


def _tokens_list(args: argparse.Namespace) -> int:
    from gateway.admin import list_admin_tokens

    return print_listing(args, list_admin_tokens)


def _tokens_revoke(args: argparse.Namespace) -> int:
    from gateway.admin import revoke_admin_token

    settings = existing_settings(args)
    revoked = with_database(settings, lambda database: revoke_admin_token(database, args.token_id))
    if revoked:
        audit_cli(settings, "admin_token.revoked", {"token_id": args.token_id})
    print(json.dumps({"token_id": args.token_id, "revoked": True, "already": not revoked}))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from benchmarks.__main__ import main as bench_main

    return bench_main([f"--seconds={args.seconds}", f"--e2e-rate={args.e2e_rate}"])


if __name__ == "__main__":
    raise SystemExit(main())
