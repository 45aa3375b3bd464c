"""An access request's export: the subject's own data in every store, decrypted."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from consent import SUPPRESSION, ConsentRecord, ConsentStore, merge_states
from privacy._model import PrivacyRequest, PrivacyRequestView


class PrivacyExport(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    source_id: str
    generated_at: datetime
    subject: str
    consent: dict[str, Any]  # {"purposes": {purpose: state}, "history": [records]}
    profiles: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    privacy_requests: list[PrivacyRequestView]


async def build_export(
    request: PrivacyRequest,
    *,
    consent: ConsentStore,
    profile_of: Callable[[str, str], Awaitable[dict[str, Any] | None]],
    decisions_of: Callable[[str, Sequence[str]], Awaitable[list[dict[str, Any]]]],
    requests_of: Callable[[str, str], Awaitable[list[PrivacyRequestView]]],
) -> PrivacyExport:
    """Everything held on the request's subject (all its pseudonyms), as it is now.

    `profile_of(source_id, subject)` is the subject's profile with its traits decrypted (or
    None), `decisions_of` its decisions, `requests_of` its privacy requests."""
    source_id, subjects = request.source_id, request.subjects
    states = await consent.states(source_id, subjects)
    history: list[ConsentRecord] = [
        record for subject in subjects for record in await consent.history(source_id, subject)
    ]
    history.sort(key=lambda r: (r.recorded_at, r.record_id))
    profiles = [
        profile for subject in subjects if (profile := await profile_of(source_id, subject))
    ]
    merged = merge_states(states.get(subject, {}) for subject in subjects)
    return PrivacyExport(
        request_id=request.request_id,
        source_id=source_id,
        generated_at=datetime.now(UTC),
        subject=request.subject,
        consent={
            "purposes": {p: state for p, state in merged.items() if p != SUPPRESSION},
            "history": history,
        },
        profiles=profiles,
        decisions=await decisions_of(source_id, subjects),
        privacy_requests=await requests_of(source_id, request.subject),
    )
