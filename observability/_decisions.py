"""Decision records: what was decided for each event, and why.

The record holds pseudonyms only. The gateway publishes them beside their events and counts
them (`Metrics.record_decisions`); `_decision_log` stores them (`GET /v1/decisions`).
"""

from __future__ import annotations

from datetime import datetime

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
