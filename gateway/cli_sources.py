"""`consentgate sources …`: create, list, update, rotate-keys. Every change is audited."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from typing import Any

from gateway.cli_common import (
    audit_cli,
    existing_settings,
    print_listing,
    read_config_file,
    with_database,
)

JURISDICTIONS = ("gdpr", "ccpa", "none")


def add_source_commands(commands: Any) -> None:
    sources = commands.add_parser("sources", help="manage sources").add_subparsers(
        required=True, metavar="ACTION"
    )
    create = sources.add_parser("create", help="create a source; prints its keys as JSON")
    create.add_argument("name", help="a name for people (1 to 200 characters)")
    create.add_argument(
        "--jurisdiction",
        choices=JURISDICTIONS,
        help="its default consent rule (else $CONSENTGATE_DEFAULT_JURISDICTION, gdpr)",
    )
    create.add_argument(
        "--share-keys-with",
        metavar="SOURCE_ID",
        help="use that source's pseudonym keys (a workspace: the same user, the same pseudonym)",
    )
    _configuration_options(create)
    create.set_defaults(command=_create)

    listing = sources.add_parser("list", help="every source (without keys) as JSON lines")
    listing.set_defaults(command=_list)

    change = sources.add_parser(
        "update", help="change a source's jurisdiction, configurations or limits"
    )
    change.add_argument("source", metavar="NAME_OR_ID", help="the source's name or id")
    change.add_argument(
        "--jurisdiction", choices=JURISDICTIONS, help="its default consent rule (else unchanged)"
    )
    _configuration_options(change)
    change.set_defaults(command=_update)

    rotate = sources.add_parser(
        "rotate-keys",
        help="new write and server keys (printed as JSON); the old ones keep working for "
        "--overlap-hours",
    )
    rotate.add_argument("source", metavar="NAME_OR_ID", help="the source's name or id")
    rotate.add_argument(
        "--overlap-hours",
        type=float,
        required=True,
        help="how long the old keys keep working (0: they stop at once)",
    )
    rotate.set_defaults(command=_rotate)


def _configuration_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--consent-config",
        metavar="FILE",
        help="the source's consent configuration, JSON or TOML (see README, Consent)",
    )
    parser.add_argument(
        "--field-policy",
        metavar="FILE",
        help="the source's field policy, JSON or TOML (see README, Anonymization)",
    )
    parser.add_argument(
        "--computed-traits",
        metavar="FILE",
        help="the computed traits the core keeps for its profiles, JSON or TOML "
        "(see README, Computed traits)",
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        metavar="PER_SECOND",
        help="ingestion requests a second for its write key (0: none; "
        "default $CONSENTGATE_RATE_LIMIT_PER_SECOND, 500)",
    )
    parser.add_argument(
        "--burst",
        type=int,
        help="requests its write key may send at once above the rate "
        "(default $CONSENTGATE_RATE_LIMIT_BURST, 1000)",
    )
    parser.add_argument(
        "--allowed-origin",
        action="append",
        metavar="ORIGIN",
        help="a browser origin (https://app.example) allowed to send events; repeat for more "
        "(default: any origin)",
    )


def _edge(args: argparse.Namespace) -> dict[str, Any]:
    edge: dict[str, Any] = {}
    if args.allowed_origin is not None:
        edge["allowed_origins"] = args.allowed_origin
    if args.rate_limit is not None:
        edge["rate_limit_per_second"] = args.rate_limit
    if args.burst is not None:
        edge["rate_limit_burst"] = args.burst
    return edge


def _create(args: argparse.Namespace) -> int:
    from gateway.sources import create_source

    settings = existing_settings(args)
    jurisdiction = args.jurisdiction or settings.default_jurisdiction
    config = read_config_file(args.consent_config, "--consent-config")
    policy = read_config_file(args.field_policy, "--field-policy")
    traits = read_config_file(args.computed_traits, "--computed-traits")
    edge = _edge(args)
    created = with_database(
        settings,
        lambda database: create_source(
            database,
            args.name,
            jurisdiction,
            config,
            policy,
            args.share_keys_with,
            edge,
            computed_traits=traits,
        ),
    )
    audit_cli(settings, "source.created", created.audit_details())
    print(json.dumps(created.as_json()))
    return 0


def _list(args: argparse.Namespace) -> int:
    from gateway.source_admin import list_sources

    return print_listing(args, list_sources)


def _update(args: argparse.Namespace) -> int:
    from gateway.source_admin import update_source

    settings = existing_settings(args)
    config = read_config_file(args.consent_config, "--consent-config")
    policy = read_config_file(args.field_policy, "--field-policy")
    traits = read_config_file(args.computed_traits, "--computed-traits")
    updated = with_database(
        settings,
        lambda database: update_source(
            database,
            args.source,
            jurisdiction=args.jurisdiction,
            consent_config=config,
            field_policy=policy,
            computed_traits=traits,
            edge_changes=_edge(args),
        ),
    )
    audit_cli(settings, "source.updated", updated)
    print(json.dumps(updated))
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from gateway.source_admin import rotate_keys

    settings = existing_settings(args)
    overlap = timedelta(hours=args.overlap_hours)
    rotated = with_database(settings, lambda database: rotate_keys(database, args.source, overlap))
    audit_cli(
        settings,
        "source.keys_rotated",
        {"source_id": rotated.source_id, "overlap_hours": args.overlap_hours},
    )
    print(json.dumps(rotated.as_json()))
    return 0
