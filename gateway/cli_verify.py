"""`consentgate verify receipt|checkpoint`: check what the gateway signed, offline, against
its published keys, as a data subject or an auditor would, with no database and no server.

Formats (README, "Verifying receipts and checkpoints"):
- keys: the JSON of `GET /v1/receipts/keys`, `{"keys": [{"key_id", "alg": "Ed25519",
  "public_key": base64url}]}`;
- a receipt: `{"receipt": {...}, "signature": base64url, "key_id"}`; the signature covers the
  receipt's canonical JSON (keys sorted, no whitespace, UTF-8);
- a checkpoint: `{"tree_size", "root": hex, "signed_at", "key_id", "signature": base64url}`
  (or the whole `GET /v1/audit` answer holding it); the signature covers the canonical JSON
  of `{"tree_size", "root", "signed_at"}`. Entries with their inclusion proofs
  (`GET /v1/audit?format=jsonl`) are checked against its root.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.receipts import canonical_json
from observability import canonical, checkpoint_message, leaf_hash, verify_inclusion

_KEYS_HELP = "the JSON of GET /v1/receipts/keys, saved to a file"


def add_verify_commands(commands: Any) -> None:
    verify = commands.add_parser(
        "verify", help="check a signed receipt or audit checkpoint offline"
    ).add_subparsers(required=True, metavar="WHAT")
    receipt = verify.add_parser(
        "receipt", help="check a consent or privacy-request receipt's signature"
    )
    receipt.add_argument("file", metavar="FILE", help="the signed receipt, as the API gave it")
    receipt.add_argument("--keys", required=True, metavar="KEYS_FILE", help=_KEYS_HELP)
    receipt.set_defaults(command=_verify_receipt)
    checkpoint = verify.add_parser(
        "checkpoint",
        help="check an audit checkpoint's signature, and entries' inclusion proofs in it",
    )
    checkpoint.add_argument(
        "file", metavar="FILE", help="the checkpoint, or the GET /v1/audit answer holding it"
    )
    checkpoint.add_argument("--keys", required=True, metavar="KEYS_FILE", help=_KEYS_HELP)
    checkpoint.add_argument(
        "--entries",
        metavar="JSONL_FILE",
        help="entries with proofs (GET /v1/audit?format=jsonl) to check against its root",
    )
    checkpoint.set_defaults(command=_verify_checkpoint)


def verify_receipt(signed: Any, keys: dict[str, Ed25519PublicKey]) -> str | None:
    """None when the receipt's signature verifies under a published key, else why not."""
    if not isinstance(signed, dict) or not isinstance(signed.get("receipt"), dict):
        return 'not a signed receipt: expected {"receipt", "signature", "key_id"}'
    problem = _check_signature(
        keys, signed.get("key_id"), signed.get("signature"), canonical_json(signed["receipt"])
    )
    return problem


class CheckedEntries:
    """How many entries were proved in the checkpoint's tree, and how many came without a
    proof (written after it: nothing covers them yet)."""

    def __init__(self) -> None:
        self.proved = 0
        self.without_proof = 0


def verify_checkpoint(
    checkpoint: Any,
    keys: dict[str, Ed25519PublicKey],
    entries: list[Any],
    checked: CheckedEntries | None = None,
) -> str | None:
    """None when the checkpoint's signature verifies and every entry with a proof is in its
    tree (entries written after the checkpoint have none, and are counted in `checked`)."""
    checked = checked or CheckedEntries()
    if isinstance(checkpoint, dict) and "tree_size" not in checkpoint:
        checkpoint = checkpoint.get("checkpoint")
    if not isinstance(checkpoint, dict):
        return 'not a checkpoint: expected {"tree_size", "root", "signed_at", …}'
    try:
        size = int(checkpoint["tree_size"])
        root = bytes.fromhex(checkpoint["root"])
        signed_at = datetime.fromisoformat(checkpoint["signed_at"].replace("Z", "+00:00"))
    except (KeyError, TypeError, ValueError):
        return "the checkpoint's tree_size, root (hex) or signed_at (ISO 8601) is malformed"
    message = checkpoint_message(size, root, signed_at)
    problem = _check_signature(keys, checkpoint.get("key_id"), checkpoint.get("signature"), message)
    if problem:
        return problem
    for line, item in enumerate(entries, start=1):
        if isinstance(item, dict) and "checkpoint" in item:
            continue  # the export's first line names the checkpoint its proofs are in
        if isinstance(item, dict) and item.get("proof", ()) is None:
            checked.without_proof += 1
            continue
        try:
            seq = int(item["seq"])
            leaf = leaf_hash(canonical(item["entry"]))
            proof = [bytes.fromhex(step) for step in item["proof"] or []]
        except (KeyError, TypeError, ValueError):
            return f'entries line {line}: expected {{"seq", "entry", "proof"}}'
        if not verify_inclusion(seq - 1, size, leaf, proof, root):
            return f"entry {seq} is not in the checkpoint's tree (or was changed)"
        checked.proved += 1
    return None


def public_keys(published: Any) -> dict[str, Ed25519PublicKey]:
    keys = published.get("keys") if isinstance(published, dict) else None
    if not isinstance(keys, list):
        raise ValueError('--keys: expected the JSON of GET /v1/receipts/keys, {"keys": [...]}')
    found = {}
    for key in keys:
        try:
            raw = base64.urlsafe_b64decode(key["public_key"] + "=" * (-len(key["public_key"]) % 4))
            found[key["key_id"]] = Ed25519PublicKey.from_public_bytes(raw)
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise ValueError(f"--keys: a key is malformed: {key!r:.200}") from None
    return found


def _check_signature(
    keys: dict[str, Ed25519PublicKey], key_id: Any, signature: Any, message: bytes
) -> str | None:
    key = keys.get(key_id) if isinstance(key_id, str) else None
    if key is None:
        return f"signed by key {key_id!r}, which is not among the published keys"
    try:
        raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        key.verify(raw, message)
    except (TypeError, ValueError, binascii.Error):
        return "the signature is not base64url"
    except InvalidSignature:
        return "the signature does not verify: the document was changed or signed by another key"
    return None


def _read_json(path: str, option: str) -> Any:
    try:
        return json.loads(Path(path).read_bytes())
    except OSError as exc:
        raise ValueError(f"{option}: cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise ValueError(f"{option}: {path} is not JSON") from None


def _read_jsonl(path: str, option: str) -> list[Any]:
    try:
        lines = Path(path).read_bytes().splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    except OSError as exc:
        raise ValueError(f"{option}: cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise ValueError(f"{option}: {path} is not JSON lines") from None


def _report(problem: str | None, **facts: Any) -> int:
    print(json.dumps({"ok": problem is None, **facts, "problem": problem}))
    return 0 if problem is None else 1


def _verify_receipt(args: argparse.Namespace) -> int:
    keys = public_keys(_read_json(args.keys, "--keys"))
    signed = _read_json(args.file, "FILE")
    receipt = signed.get("receipt") if isinstance(signed, dict) else None
    receipt_id = receipt.get("receipt_id") if isinstance(receipt, dict) else None
    return _report(verify_receipt(signed, keys), receipt_id=receipt_id)


def _verify_checkpoint(args: argparse.Namespace) -> int:
    keys = public_keys(_read_json(args.keys, "--keys"))
    document = _read_json(args.file, "FILE")
    entries = _read_jsonl(args.entries, "--entries") if args.entries else []
    checked = CheckedEntries()
    problem = verify_checkpoint(document, keys, entries, checked)
    return _report(
        problem, entries_proved=checked.proved, entries_after_checkpoint=checked.without_proof
    )
