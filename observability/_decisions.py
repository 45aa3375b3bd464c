"""Decision records: what was decided for each event, and why.

The record holds pseudonyms only. The gateway counts records by action and reason here and
publishes them beside their events; `_decision_log` stores them (`GET /v1/decisions`).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Protocol

import msgspec


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
    """Counts decisions by (source, action) and by reason code."""

    def __init__(self) -> None:
        self.by_action: Counter[tuple[str, str]] = Counter()
        self.by_reason: Counter[str] = Counter()

    def add(self, record: DecisionRecord) -> None:
        self.by_action[(record.source_id, record.action)] += 1
        for reason in record.reasons:
            self.by_reason[reason.partition(":")[0]] += 1
