"""What the gateway writes to the audit log, with personal data encrypted per subject."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from anonymization import encrypt_value
from bus import Database
from consent import ConsentRecord
from gateway.receipts import ReceiptSigner
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.sources import Source
from observability import AuditLog


async def _personal(runtime: Runtime, source: Source, subject: str, field: str, value: Any) -> str:
    """`value` encrypted under the subject's key: an erasure shreds it, the log stays intact."""
    key = (await runtime.keyring.subject_keys(source.source_id, [subject]))[subject]
    return encrypt_value(key, source.source_id, subject, field, value)


async def consent_changed(
    runtime: Runtime, source: Source, subject: str, records: Sequence[ConsentRecord], actor: str
) -> None:
    choices = {record.purpose: record.granted for record in records}
    await runtime.audit.append(
        "consent.changed",
        actor,
        {
            "source_id": source.source_id,
            "record_ids": [record.record_id for record in records],
            "policy_version": records[0].policy_version,
            "method": records[0].source,
            "personal": await _personal(
                runtime, source, subject, "audit.consent", {"subject": subject, "purposes": choices}
            ),
        },
    )


async def token_minted(
    runtime: Runtime, source: Source, subject: str, token_id: str, expires_at: str
) -> None:
    await runtime.audit.append(
        "token.minted",
        f"server_key:{source.source_id}",
        {
            "source_id": source.source_id,
            "token_id": token_id,
            "expires_at": expires_at,
            "personal": await _personal(runtime, source, subject, "audit.token", subject),
        },
    )


async def query_made(runtime: Runtime, role: str, endpoint: str, params: dict[str, str]) -> None:
    """Auditors are audited too; a queried userId is never written in clear."""
    shown = {k: ("<pseudonymized>" if k == "userId" else v) for k, v in sorted(params.items())}
    await runtime.audit.append("audit.query", role, {"endpoint": endpoint, "params": shown})


def open_audit(database: Database, settings: Settings) -> AuditLog:
    """The audit log for CLI commands (signed with the receipt key, as the server does)."""
    from anonymization import load_or_create_key

    signer = ReceiptSigner(
        load_or_create_key(settings.receipt_key_file, "CONSENTGATE_RECEIPT_KEY_FILE")
    )
    return AuditLog(database, signer.sign_bytes, signer.verify_bytes)
