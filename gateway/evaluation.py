"""Who a flag evaluation is for, and what may be known of them: the subject (a subject token's,
or a server key's `targetingKey`, pseudonymized at once), the purposes it allows now (the
consent store, not the core's copy: a withdrawal holds for the very next evaluation), whether
it is suppressed, and its profile, read within the core's time budget."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import structlog

from bus import Database
from consent import ConsentStore, is_suppressed
from gateway.callers import ServerKeyCaller, SubjectCaller
from gateway.sources import Source
from observability import remember_raw_identifiers
from personalization import NOT_CACHED, Subject, ViewCache
from profiles import ProfileView, subject_view

log = structlog.get_logger("consentgate.personalization")
MAX_TARGETING_KEY = 1024


class MissingTargetingKey(ValueError):
    """A server key evaluated a flag that needs a subject without `context.targetingKey`."""


def targeting_key(caller: ServerKeyCaller | SubjectCaller, context: dict[str, Any]) -> str | None:
    """The raw targeting key a server key names (None when absent); a subject token's own."""
    if isinstance(caller, SubjectCaller):
        return None
    key = context.get("targetingKey")
    if key is None or key == "":
        return None
    if not isinstance(key, str) or len(key) > MAX_TARGETING_KEY:
        raise ValueError(f"targetingKey: a string of at most {MAX_TARGETING_KEY} characters")
    remember_raw_identifiers((key,))  # a raw userId: the telemetry guards scrub it
    return key


async def evaluation_subject(
    caller: ServerKeyCaller | SubjectCaller,
    raw_key: str | None,
    *,
    consent: ConsentStore,
    database: Database,
    budget_seconds: float,
    needs_profile: bool,
    views: ViewCache | None = None,
) -> Subject | None:
    """The subject of an evaluation; None when a server key named none (only flags that read
    nothing of a subject can then be evaluated)."""
    source: Source = caller.source
    if isinstance(caller, SubjectCaller):
        pseudonyms: tuple[str, ...] = (caller.subject,)
    elif raw_key is None:
        return None
    else:
        pseudonyms = source.pseudonyms(raw_key)
    stored = (await consent.states(source.source_id, pseudonyms[:1]))[pseudonyms[0]]
    allowed = consent.allowed(
        source.source_id, pseudonyms[0], stored, source.jurisdiction, source.consent
    )
    today = datetime.now(UTC).date()
    subject = Subject(
        targeting_key=pseudonyms[0],
        allowed=allowed,
        suppressed=is_suppressed(stored),
        view=None,
        missing="unknown_subject",
        today=today,
    )
    if not needs_profile or subject.suppressed:
        return subject
    cached = views.get(source.source_id, pseudonyms[0], today) if views else NOT_CACHED
    if cached is None:
        return _with(subject, None, "unknown_subject")
    if isinstance(cached, ProfileView):
        return _with(subject, cached.with_consent(allowed), None)
    started = views.clock() if views is not None else 0.0
    try:
        found = await asyncio.wait_for(
            _first_view(database, source.source_id, pseudonyms, allowed), budget_seconds
        )
    except TimeoutError:
        return _with(subject, None, "core_unavailable")
    except Exception as error:  # the core's store is down: the baseline, never an error
        log.warning("profile_unavailable", error=type(error).__name__)
        return _with(subject, None, "core_unavailable")
    root, view = found if found is not None else (None, None)
    if views is not None:
        views.put(source.source_id, pseudonyms[0], today, root, view, started)
    return _with(subject, view, None if view is not None else "unknown_subject")


async def _first_view(
    database: Database, source_id: str, pseudonyms: tuple[str, ...], allowed: frozenset[str]
) -> tuple[str, ProfileView] | None:
    # the newest pseudonym first: a profile built under an older key version is still found
    for pseudonym in pseudonyms:
        found = await subject_view(database, source_id, pseudonym, allowed)
        if found is not None:
            return found
    return None


def _with(subject: Subject, view: ProfileView | None, missing: Any) -> Subject:
    return Subject(
        targeting_key=subject.targeting_key,
        allowed=subject.allowed,
        suppressed=subject.suppressed,
        view=view,
        missing=missing,
        today=subject.today,
    )
