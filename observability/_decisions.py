"""Decision records: what was decided for each event, and why.

The record holds pseudonyms only. This first cut counts decisions by action and reason and
logs them at debug level; the durable decision log (`GET /v1/decisions`) is its own issue.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Protocol

import msgspec
import structlog

log = structlog.get_logger("consentgate.decisions")


class DecisionRecord(msgspec.Struct, frozen=True, kw_only=True):
    message_id: str
    source_id: str
    subject: str | None
    anonymous: str | None
    type: str
    event: str | None
    purposes_required: tuple[str, ...]
    purposes_allowed: tuple[str, ...]
    action: str
    reasons: tuple[str, ...]
    consent_ref: str | None
    trace_id: str | None
    decided_at: datetime


class DecisionSink(Protocol):
    def add(self, record: DecisionRecord) -> None: ...


class DecisionCounter:
    """Counts decisions by (source, action) and by reason; logs each at debug level."""

    def __init__(self) -> None:
        self.by_action: Counter[tuple[str, str]] = Counter()
        self.by_reason: Counter[str] = Counter()

    def add(self, record: DecisionRecord) -> None:
        self.by_action[(record.source_id, record.action)] += 1
        self.by_reason.update(reason.split(":", 1)[0] for reason in record.reasons)
        log.debug(
            "decision",
            message_id=record.message_id,
            subject=record.subject,
            action=record.action,
            reasons=record.reasons,
        )
