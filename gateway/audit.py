"""What the gateway writes to the audit log, with personal data encrypted per subject.

`AuditTrail` takes the two collaborators it needs, the log and the keyring: a subject's
pseudonym in an entry is encrypted under the subject's own key, so an erasure shreds it and
the log stays intact and verifiable.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from anonymization import Keyring, encrypt_value
from bus import Database
from consent import ConsentRecord
from gateway.receipts import receipt_signer_for
from gateway.settings import Settings
from gateway.sources import Source
from observability import AuditLog
from privacy import PrivacyRequest, StoreReceipt

# Filters whose values say nothing of a person; any other filter (userId, cursor, …) is
# logged by name only. Values are kept only when they are plain tokens.
_PLAIN_FILTERS = frozenset(
    {"source_id", "action", "reason", "kind", "from", "to", "limit", "after", "format", "status"}
)
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9._:+-]{1,64}")


class AuditTrail:
    """The gateway's audit entries: consent changes, tokens, privacy requests, staff reads."""

    __slots__ = ("_keyring", "log")

    def __init__(self, log: AuditLog, keyring: Keyring) -> None:
        self.log = log
        self._keyring = keyring

    async def _personal(self, source: Source, subject: str, field: str, value: Any) -> str:
        """`value` encrypted under the subject's key: an erasure shreds it."""
        key = (await self._keyring.subject_keys(source.source_id, [subject]))[subject]
        return encrypt_value(key, source.source_id, subject, field, value)

    async def _has_key(self, source: Source, subject: str) -> bool:
        # An erasure (or an auditor's search) must not create a data key it does not need.
        return await self._keyring.existing_subject_key(source.source_id, subject) is not None

    async def consent_changed(
        self, source: Source, subject: str, records: Sequence[ConsentRecord], actor: str
    ) -> Callable[[Connection], int]:
        """The entry of a consent change, as work to commit with the change's records."""
        choices = {record.purpose: record.granted for record in records}
        personal = {"subject": subject, "purposes": choices}
        return self.log.entry(
            "consent.changed",
            actor,
            {
                "source_id": source.source_id,
                "record_ids": [record.record_id for record in records],
                "policy_version": records[0].policy_version,
                "method": records[0].source,
                "personal": await self._personal(source, subject, "audit.consent", personal),
            },
        )

    async def token_minted(
        self, source: Source, subject: str, token_id: str, expires_at: str
    ) -> None:
        await self.log.append(
            "token.minted",
            f"server_key:{source.source_id}",
            {
                "source_id": source.source_id,
                "token_id": token_id,
                "expires_at": expires_at,
                "personal": await self._personal(source, subject, "audit.token", subject),
            },
        )

    async def token_revoked(self, source: Source, token_id: str) -> None:
        await self.log.append(
            "token.revoked",
            f"server_key:{source.source_id}",
            {"source_id": source.source_id, "token_id": token_id},
        )

    async def privacy_request_received(self, source: Source, request: PrivacyRequest) -> None:
        """The subject's pseudonyms are personal data: encrypted under its key (an erasure
        then shreds them, and the entry stays verifiable)."""
        subjects = request.subjects
        personal = (
            await self._personal(source, subjects[0], "audit.privacy_request", subjects)
            if request.kind != "erasure" or await self._has_key(source, subjects[0])
            else None
        )
        await self.log.append(
            "privacy_request.received",
            request.requested_by,
            {
                "source_id": source.source_id,
                "request_id": request.request_id,
                "kind": request.kind,
                "deadline": request.deadline.isoformat(),
                "personal": personal,
            },
        )

    async def privacy_request_step(self, request: PrivacyRequest, receipt: StoreReceipt) -> None:
        await self.log.append(
            "privacy_request.step",
            "gateway",
            {
                "source_id": request.source_id,
                "request_id": request.request_id,
                "store": receipt.store,
                "action": receipt.action,
                "count": receipt.count,
            },
        )

    async def privacy_request_completed(
        self, request: PrivacyRequest, signed: dict[str, Any] | None
    ) -> None:
        await self.log.append(
            "privacy_request.completed",
            "gateway",
            {
                "source_id": request.source_id,
                "request_id": request.request_id,
                "kind": request.kind,
                "receipt_signature": signed["signature"] if signed else None,
            },
        )

    async def suppression_lifted(self, source_id: str, subject: str, actor: str) -> None:
        """The subject's key was shredded by the erasure that suppressed it, so its pseudonym
        cannot be encrypted under it: the entry holds the pseudonym's SHA-256, which whoever
        holds the pseudonym (the admin who lifted it) can match, and no one can reverse (a
        pseudonym is an HMAC output: there is nothing to guess)."""
        digest = hashlib.sha256(subject.encode()).hexdigest()
        await self.log.append(
            "suppression.lifted", actor, {"source_id": source_id, "subject_sha256": digest}
        )

    async def query_made(
        self,
        role: str,
        endpoint: str,
        params: Mapping[str, str],
        about: Sequence[tuple[Source, str]] = (),
    ) -> None:
        """Auditors are audited too, by the shape of their query: the filters used and the
        plain values of non-personal filters. A raw userId (or any other text an auditor
        typed) is never written, since this log cannot be cleaned later; the subject asked
        `about` is written as its pseudonym in each source searched, encrypted under its key
        there (an erasure shreds it), where we hold data on it, and otherwise not at all."""
        names = sorted(params)
        values = {
            name: params[name]
            for name in names
            if name in _PLAIN_FILTERS and _PLAIN_VALUE.fullmatch(params[name])
        }
        details: dict[str, Any] = {"endpoint": endpoint, "filters": names, "values": values}
        if about:
            personal = [
                await self._personal(source, subject, "audit.query", subject)
                for source, subject in about
                if await self._has_key(source, subject)
            ]
            details["subject_known"] = bool(personal)
            if personal:
                details["personal"] = personal
        await self.log.append("audit.query", role, details)


def open_audit(database: Database, settings: Settings) -> AuditLog:
    """The audit log for CLI commands (signed with the receipt key, as the server does)."""
    signer = receipt_signer_for(settings)
    return AuditLog(database, signer.sign_bytes, signer.verify_bytes)
