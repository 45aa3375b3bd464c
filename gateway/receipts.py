"""Consent receipts: JSON in the spirit of ISO/IEC TS 27560, signed with Ed25519.

The signature covers the receipt's canonical JSON: keys sorted, no whitespace, UTF-8
(`json.dumps(receipt, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`), which
any verifier can rebuild. Public keys are served at `GET /v1/receipts/keys`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from anonymization import load_or_create_key
from bus import as_utc
from consent import ConsentRecord, PurposeDefinition
from gateway.settings import Settings

RECEIPT_SCHEMA = "consentgate.receipt/1"


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class ReceiptSigner:
    """Signs receipts with one Ed25519 key (its seed is the receipt key file)."""

    def __init__(self, seed: bytes) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key = public
        self.key_id = "ed25519-" + hashlib.sha256(public).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"ReceiptSigner(key_id={self.key_id!r})"

    def public_keys(self) -> list[dict[str, str]]:
        return [{"key_id": self.key_id, "alg": "Ed25519", "public_key": _b64url(self.public_key)}]

    def sign_bytes(self, message: bytes) -> tuple[str, bytes]:
        """(key id, Ed25519 signature) of `message`: audit checkpoints use the same key."""
        return self.key_id, self._key.sign(message)

    def verify_bytes(self, key_id: str, message: bytes, signature: bytes) -> bool:
        if key_id != self.key_id:
            return False
        try:
            self._key.public_key().verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def sign(self, receipt: dict[str, Any]) -> dict[str, Any]:
        signature = self._key.sign(canonical_json(receipt))
        return {"receipt": receipt, "signature": _b64url(signature), "key_id": self.key_id}


def build_receipt(
    *,
    source_id: str,
    source_name: str,
    subject: str,
    jurisdiction: str,
    policy_version: str,
    collection_method: str,
    records: Sequence[ConsentRecord],
    purposes: dict[str, PurposeDefinition],
) -> dict[str, Any]:
    return {
        "schema": RECEIPT_SCHEMA,
        "receipt_id": "rcp_" + secrets.token_hex(12),
        "issued_at": iso_utc(datetime.now(UTC)),
        "controller": {"source_id": source_id, "name": source_name},
        "subject": subject,
        "jurisdiction": jurisdiction,
        "policy_version": policy_version,
        "collection_method": collection_method,
        "records": [
            {
                "record_id": record.record_id,
                "purpose": record.purpose,
                "description": purposes[record.purpose].description,
                "legal_basis": purposes[record.purpose].legal_basis,
                "granted": record.granted,
                "collected_at": iso_utc(record.collected_at),
                "recorded_at": iso_utc(record.recorded_at),
            }
            for record in records
        ],
    }


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, as receipts write times."""
    return as_utc(moment).isoformat().replace("+00:00", "Z")


def receipt_signer_for(settings: Settings) -> ReceiptSigner:
    """The signer of receipts and audit checkpoints, from the settings' key file."""
    return ReceiptSigner(
        load_or_create_key(settings.receipt_key_file, "CONSENTGATE_RECEIPT_KEY_FILE")
    )
