"""Suppressed subjects: which are, and lifting one (an admin's act, audited).

An erasure suppresses its subject for good: no consent change lifts it. An admin can, after a
mistaken erasure, with a grant recorded for the suppression pseudo-purpose. What the erasure
destroyed stays destroyed: the shredded keys are gone, so nothing encrypted under them comes
back; the subject's next events simply flow again, under a new key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

import msgspec

from consent import SUPPRESSION, ConsentStore, new_records


class Suppression(msgspec.Struct, frozen=True, kw_only=True):
    source_id: str
    subject: str  # the pseudonym
    suppressed: bool  # False once lifted
    since: datetime
    by: str  # the privacy request (or the lift) that set it


class SuppressionAudit(Protocol):
    async def suppression_lifted(self, source_id: str, subject: str, actor: str) -> None: ...


class NotSuppressed(LookupError):
    """The subject is not suppressed (never was, or was lifted already)."""


class Suppressions:
    def __init__(self, consent: ConsentStore, audit: SuppressionAudit) -> None:
        self._consent = consent
        self._audit = audit

    async def listing(
        self, source_id: str | None = None, *, lifted: bool = False
    ) -> list[Suppression]:
        """Suppressed subjects (with `lifted`, also those lifted), oldest first."""
        found = [
            Suppression(
                source_id=record.source_id,
                subject=record.subject,
                suppressed=not record.granted,
                since=record.collected_at,
                by=record.policy_version,
            )
            for record in await self._consent.suppressions(source_id)
        ]
        return [s for s in found if s.suppressed or lifted]

    async def lift(self, source_id: str, subject: str, jurisdiction: str, actor: str) -> None:
        """Lift a standing suppression; `NotSuppressed` when there is none."""
        standing = {(s.source_id, s.subject) for s in await self.listing(source_id) if s.suppressed}
        if (source_id, subject) not in standing:
            raise NotSuppressed(subject)
        records = new_records(
            source_id=source_id,
            subject=subject,
            choices={SUPPRESSION: True},
            source="admin",
            policy_version="suppression_lifted",
            jurisdiction=jurisdiction,
            at=datetime.now(UTC),
        )
        await self._consent.append(records)
        await self._audit.suppression_lifted(source_id, subject, actor)
