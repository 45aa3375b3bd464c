"""The background loops of a running gateway: core maintenance (dedupe ids, decision
retention), audit checkpoints, the bus-lag gauge, and resuming open privacy requests.

They live above the packages they drive (runtime, privacy), so that none of those imports
another to reach a loop: `background_loops` starts them all and stops them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import structlog

from bus import count_dead_letters
from gateway import core_changes
from gateway.runtime import Runtime
from personalization import build_model
from profiles import interaction_key, interaction_sets

log = structlog.get_logger("consentgate.background")

_MAINTENANCE_INTERVAL_SECONDS = 600.0
_BUS_LAG_INTERVAL_SECONDS = 5.0
_FIRST_RECHECK_SECONDS = 0.1
_STOP_SECONDS = 10.0


@contextlib.asynccontextmanager
async def background_loops(runtime: Runtime) -> AsyncIterator[None]:
    """Run every loop while the context is open; cancel and await them all on exit."""
    tasks = [
        asyncio.create_task(_maintain(runtime), name="core-maintenance"),
        asyncio.create_task(_checkpoint_audit(runtime), name="audit-checkpoints"),
        asyncio.create_task(_observe_bus(runtime), name="bus-lag"),
        asyncio.create_task(_advance_privacy_requests(runtime), name="privacy-requests"),
        asyncio.create_task(_maintain_segments(runtime), name="segment-maintenance"),
        asyncio.create_task(_refresh_recommendations(runtime), name="recommendations"),
    ]
    try:
        yield
    finally:
        await _stop(tasks)


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the loops, again and again until each has ended (bounded).

    A cancellation can be lost: a driver may turn one that lands inside its call into an
    ordinary error, which the loop then logs and carries on after (seen: a shutdown waiting
    forever, the audit loop still committing every second). Cancelling again reaches the
    loop at its next await."""
    pending = set(tasks)
    deadline = asyncio.get_running_loop().time() + _STOP_SECONDS
    while pending and asyncio.get_running_loop().time() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)
    for task in pending:
        log.error("background_loop_did_not_stop", loop=task.get_name())


async def _maintain_segments(runtime: Runtime) -> None:
    """Backfill new and edited segments, a page at a time, and re-evaluate time windows once
    a day (checked every `segment_maintenance_seconds`)."""
    maintenance = runtime.segment_maintenance
    while True:
        try:
            more = True
            while more:  # a page per transaction, requests served in between
                more = await maintenance.backfill_step()
                await _tell_streams(runtime)
            changed = await maintenance.sweep_windows()
            await _tell_streams(runtime)
            if changed:  # None: swept already today
                log.info("segment_windows_swept", changes=changed)
        except Exception as exc:  # the next round retries
            log.warning("segment_maintenance_failed", error=type(exc).__name__)
        await asyncio.sleep(runtime.settings.segment_maintenance_seconds)


async def refresh_recommendations(runtime: Runtime) -> None:
    """Rebuild every recommendation model from the profiles' consented interactions."""
    kinds = await runtime.flows.recommend_kinds()
    runtime.recommenders.kinds = kinds
    if not kinds:
        runtime.recommenders.replace({})
        return
    sets = await interaction_sets(runtime.database, {interaction_key(*kind) for kind in kinds})
    models = await asyncio.to_thread(lambda: {key: build_model(s) for key, s in sets.items()})
    runtime.recommenders.replace(models)


async def _refresh_recommendations(runtime: Runtime) -> None:
    while True:
        try:
            await refresh_recommendations(runtime)
        except Exception as exc:  # the next round retries; personalize serves none meanwhile
            log.warning("recommendations_failed", error=type(exc).__name__)
        await asyncio.sleep(runtime.settings.recommend_refresh_seconds)


async def _tell_streams(runtime: Runtime) -> None:
    changes = core_changes.collect((), runtime.consumer.segments.take_changes())
    core_changes.apply(changes, runtime.views, runtime.evaluation_events)
    await core_changes.announce(runtime.changes_sink, changes)  # to other processes' gateways


async def _advance_privacy_requests(runtime: Runtime) -> None:
    """Resume open privacy requests (after a crash, or until the core has erased), and keep
    the open-request and deadline gauges current. An erasure just handed to the core is looked
    at again after 0.1 s, then half as often each round it stays open, back to every
    `privacy_advance_seconds`: it completes as soon as the core has applied it, and a core
    that is down costs a round every `privacy_advance_seconds`, no more."""
    longest = runtime.settings.privacy_advance_seconds
    pause = longest
    while True:
        still_open = 0
        try:
            still_open = await runtime.privacy.advance()
        except Exception as exc:  # keep advancing; the gauges show what stays open
            log.error("privacy_requests_failed", error=type(exc).__name__)
        pause = min(pause * 2, longest) if still_open else longest
        if await runtime.privacy.pause(pause):
            pause = _FIRST_RECHECK_SECONDS / 2  # doubled after the next round


async def _checkpoint_audit(runtime: Runtime) -> None:
    """Sign a checkpoint within `audit_checkpoint_seconds` of any new entry (entries after the
    last checkpoint could be deleted undetected), and re-verify the whole log every
    `audit_verify_seconds`. A round with nothing new costs two indexed reads."""
    settings = runtime.settings
    verified_at = float("-inf")
    while True:
        await asyncio.sleep(settings.audit_checkpoint_seconds)
        try:
            await runtime.audit.checkpoint()
            if time.monotonic() - verified_at >= settings.audit_verify_seconds:
                verified_at = time.monotonic()
                verified = await runtime.audit.verify()
                runtime.metrics.audit_verified = int(verified.ok)
                if not verified.ok:
                    log.error("audit_verification_failed", first_bad=verified.first_bad)
        except Exception as exc:  # the next round retries
            log.warning("audit_checkpoint_failed", error=type(exc).__name__)


async def _observe_bus(runtime: Runtime) -> None:
    """Events acknowledged but not yet applied by the core (the bus-lag gauge), and the
    dead letters kept (the dead-letter gauge)."""
    pending = getattr(runtime.bus, "pending_count", None)
    while True:
        try:
            if pending is not None:
                runtime.metrics.bus_lag = await pending()
            runtime.metrics.dead_letters = await count_dead_letters(runtime.database)
        except Exception as exc:  # the next round retries
            log.warning("bus_lag_unavailable", error=type(exc).__name__)
        await asyncio.sleep(_BUS_LAG_INTERVAL_SECONDS)


async def _maintain(runtime: Runtime) -> None:
    retention = timedelta(hours=runtime.settings.dedupe_retention_hours)
    decision_retention = timedelta(days=runtime.settings.decision_retention_days)
    while True:
        try:
            purged = await runtime.consumer.purge_processed(retention)
            if purged:
                log.info("dedupe_ids_purged", count=purged)
            expired = await runtime.decision_log.purge(decision_retention)
            if expired:
                log.info("decisions_purged", count=expired)
        except Exception as exc:  # keep maintaining; the next round retries
            log.warning("maintenance_failed", error=type(exc).__name__)
        await asyncio.sleep(_MAINTENANCE_INTERVAL_SECONDS)
