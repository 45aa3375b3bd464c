"""Consent records and the state derived from them (pure)."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Literal

import msgspec

# "subject": the subject itself, through its own subject token (never the caller's choice)
SignalSource = Literal[
    "api", "privacy_center", "banner", "gpc", "tcf", "import", "privacy_request", "subject", "admin"
]
SIGNAL_SOURCES: tuple[str, ...] = (
    "api",
    "privacy_center",
    "banner",
    "gpc",
    "tcf",
    "import",
    "privacy_request",
    "subject",
    "admin",
)
# A refusal recorded for this pseudo-purpose suppresses the subject: every event is refused.
# An erasure writes it; no consent change can lift it (it names no purpose a source knows).
# Only an admin can, with a grant for it (audited); the shredded keys stay shredded.
SUPPRESSION = "*"


def is_suppressed(state: Mapping[str, PurposeState]) -> bool:
    """Whether the subject's latest suppression record stands (an admin may have lifted it)."""
    item = state.get(SUPPRESSION)
    return item is not None and not item.granted


class ConsentRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded choice for one purpose, with its evidence (pseudonyms only)."""

    record_id: str
    source_id: str
    subject: str
    purpose: str
    granted: bool
    source: SignalSource
    policy_version: str
    jurisdiction: str
    collected_at: datetime
    recorded_at: datetime
    ip_truncated: str | None = None
    user_agent_hash: str | None = None

    def choice(self) -> PurposeState:
        """The record as its purpose's current choice."""
        return PurposeState(
            granted=self.granted,
            source=self.source,
            recorded_at=self.recorded_at,
            collected_at=self.collected_at,
            record_id=self.record_id,
        )


def new_records(
    *,
    source_id: str,
    subject: str,
    choices: Mapping[str, bool],
    source: SignalSource,
    policy_version: str,
    jurisdiction: str,
    at: datetime,
    ip_truncated: str | None = None,
    user_agent_hash: str | None = None,
) -> list[ConsentRecord]:
    """One new record per choice, in purpose order, collected and recorded `at`."""
    return [
        ConsentRecord(
            record_id="cr_" + secrets.token_hex(12),
            source_id=source_id,
            subject=subject,
            purpose=purpose,
            granted=granted,
            source=source,
            policy_version=policy_version,
            jurisdiction=jurisdiction,
            collected_at=at,
            recorded_at=at,
            ip_truncated=ip_truncated,
            user_agent_hash=user_agent_hash,
        )
        for purpose, granted in sorted(choices.items())
    ]


class PurposeState(msgspec.Struct, frozen=True, kw_only=True):
    """The current choice for one purpose, as `GET /v1/consent/{userId}` shows it."""

    granted: bool
    source: str
    recorded_at: datetime
    collected_at: datetime
    record_id: str


ConsentState = dict[str, PurposeState]


def current_state(records: Iterable[ConsentRecord]) -> ConsentState:
    """The latest choice per purpose: by collection time, then by recording time."""
    state: ConsentState = {}
    for record in records:
        known = state.get(record.purpose)
        if known is None or (record.collected_at, record.recorded_at) >= (
            known.collected_at,
            known.recorded_at,
        ):
            state[record.purpose] = record.choice()
    return state


def with_records(state: ConsentState, records: Iterable[ConsentRecord]) -> ConsentState:
    """`state` after `records` (one subject's): a record replaces its purpose's choice when it
    is later by collection time, then recording time, then id, the order the database's kept
    state follows (so a write need not read the state back)."""
    updated = dict(state)
    for record in records:
        known = updated.get(record.purpose)
        if known is None or (record.collected_at, record.recorded_at, record.record_id) > (
            known.collected_at,
            known.recorded_at,
            known.record_id,
        ):
            updated[record.purpose] = record.choice()
    return updated


def merge_states(states: Iterable[ConsentState]) -> ConsentState:
    """One state from several (a subject's pseudonyms across key versions): latest wins."""
    merged: ConsentState = {}
    for state in states:
        for purpose, item in state.items():
            known = merged.get(purpose)
            if known is None or (item.collected_at, item.recorded_at) > (
                known.collected_at,
                known.recorded_at,
            ):
                merged[purpose] = item
    return merged
