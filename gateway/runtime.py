"""What a running gateway holds: database, bus, sources, pipeline, core. Built once per app."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import text

from anonymization import KekSet, Keyring, decrypt_fields
from bus import (
    Bus,
    BusMessage,
    BusUnavailable,
    Database,
    MessageHandler,
    create_bus,
    erase_dead_letters,
)
from consent import CONSENT_CACHE_LIMIT, ConsentRecord, ConsentStore
from gateway import core_changes
from gateway._validate import Limits
from gateway.audit import AuditTrail
from gateway.auth import WriteKeyAuthenticator
from gateway.consent_events import consent_change_messages
from gateway.database import open_database
from gateway.edge import RateLimiter
from gateway.evaluation_events import EvaluationEvents, StreamTickets
from gateway.key_lock import holding_keys
from gateway.pipeline import Pipeline
from gateway.receipts import ReceiptSigner, receipt_signer_for
from gateway.request_stages import build_pipeline
from gateway.settings import Settings
from gateway.sources import SourceRegistry
from gateway.tokens import SubjectTokens
from observability import (
    DECISIONS_SUBJECT,
    AuditLog,
    DecisionLog,
    Metrics,
    create_tracer_provider,
)
from personalization import FlagStore, FlowStore, Recommenders, ViewCache, load_flags_file
from privacy import REQUEST_KINDS, PrivacyRequest, PrivacyRequests, RequestStore, Suppressions
from profiles import (
    ProfileConsumer,
    SegmentMaintenance,
    SegmentStore,
    erasure_receipts,
    read_profile,
)
from web import SessionCodec

log = structlog.get_logger("consentgate.runtime")
VERSION = "0.1.0"
# a core child looks for the gateway's commits this often (the event -> profile latency floor)
_CORE_CHILD_POLL_SECONDS = 0.005


@dataclass(slots=True)
class Runtime:
    settings: Settings
    database: Database
    bus: Bus
    sources: SourceRegistry
    pipeline: Pipeline
    consent: ConsentStore
    tokens: SubjectTokens
    keyring: Keyring
    receipts: ReceiptSigner
    consumer: ProfileConsumer
    decision_log: DecisionLog
    audit: AuditLog
    trail: AuditTrail
    metrics: Metrics
    privacy: PrivacyRequests
    suppressions: Suppressions
    profile_reader: ProfileReader
    segments: SegmentStore
    segment_maintenance: SegmentMaintenance
    flags: FlagStore
    flows: FlowStore
    recommenders: Recommenders
    evaluation_events: EvaluationEvents
    views: ViewCache  # profile views for flag evaluations, forgotten as the core changes them
    stream_tickets: StreamTickets
    ofrep_limiter: RateLimiter  # OFREP evaluations per caller
    pages: SessionCodec  # the privacy center's session cookies and CSRF tokens
    console: SessionCodec  # the compliance console's, under a key of its own
    write_keys: WriteKeyAuthenticator  # the consent banner's routes (ingestion has its own)
    banner_limiter: RateLimiter  # banner reads and choices per source, as events are
    # where this process's core tells the others what it changed (None: there are none)
    changes_sink: core_changes.Sink | None
    # `serve`'s core child, as the gateway hears it (None: no core child)
    core_child: core_changes.PipeReader | None = None


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings,
    keks: KekSet,
    receipt_seed: bytes | None = None,
    tracer_provider: TracerProvider | None = None,
) -> AsyncIterator[Runtime]:
    """Start everything in order and stop it in reverse; the embedded core runs inside.
    The background loops that drive it are `gateway.background`'s. The runtime holds the
    keys' lock (shared) while it runs, so that `keys rotate` refuses under it."""
    async with (
        holding_keys(settings.database_url),
        _opened_runtime(settings, keks, receipt_seed, tracer_provider) as runtime,
    ):
        yield runtime


@contextlib.asynccontextmanager
async def _opened_runtime(
    settings: Settings,
    keks: KekSet,
    receipt_seed: bytes | None,
    tracer_provider: TracerProvider | None,
) -> AsyncIterator[Runtime]:
    database = open_database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    core_child = settings.core and settings.core_changes_fd is not None  # `serve`'s core child
    bus = create_bus(
        settings.bus_url,
        database,
        batch_size=settings.outbox_batch_size,
        nats_sync_seconds=settings.nats_sync_seconds,
        nats_stream=settings.nats_stream,
        # the gateway commits in another process: nothing wakes the dispatcher here
        poll_interval=_CORE_CHILD_POLL_SECONDS if core_child else 1.0,
    )
    changes_sink: core_changes.Sink | None = getattr(bus, "announce_changes", None)
    if core_child and settings.core_changes_fd is not None:
        changes_sink = core_changes.PipeSink(settings.core_changes_fd)
    metrics = Metrics(VERSION)
    recommenders = Recommenders()
    consumer = ProfileConsumer(
        database,
        interactions=lambda: recommenders.kinds,
        max_keys=settings.profile_max_keys,
        session_gap_seconds=settings.session_gap_minutes * 60,
        on_capped=lambda kind, count: metrics.profile_capped.add(count, {"map": kind}),
    )
    decision_log = DecisionLog(database)
    tracer = (tracer_provider or tracer_provider_for(settings)).get_tracer("consentgate")
    keyring = Keyring(database, keks)
    sources = SourceRegistry(database, keyring)
    # scaled out, another process may change a subject's consent at any time: no cache
    consent = ConsentStore(
        database,
        cache_limit=0 if settings.shared_bus else CONSENT_CACHE_LIMIT,
        commit_with=bus.publish,  # a change, its audit entry and its announcement: one commit
    )
    consent.announce_with(consent_change_messages)
    evaluation_events = EvaluationEvents()
    views = ViewCache()

    async def consent_changed(records: Sequence[ConsentRecord]) -> None:
        evaluation_events.changed(records[0].source_id, [records[0].subject])

    consent.on_change(consent_changed)
    pipeline = build_pipeline(
        authenticate=WriteKeyAuthenticator(sources),
        consent=consent,
        keyring=keyring,
        bus=bus,
        limits=Limits(
            max_request_bytes=settings.max_request_bytes,
            max_event_bytes=settings.max_event_bytes,
            max_batch_events=settings.max_batch_events,
        ),
        tracer=tracer,
        metrics=metrics,
        rate_limiter=RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst),
    )
    segments = SegmentStore(database)
    flags = FlagStore(database, segments.keys)
    flows = FlowStore(database, segments.keys)
    if settings.flags_file:
        await load_flags_file(flags, settings.flags_file)
    signer = ReceiptSigner(receipt_seed) if receipt_seed else receipt_signer_for(settings)
    audit_log = AuditLog(database, signer.sign_bytes, signer.verify_bytes)
    trail = AuditTrail(audit_log, keyring)
    runtime = Runtime(
        settings=settings,
        database=database,
        bus=bus,
        sources=sources,
        pipeline=pipeline,
        consent=consent,
        tokens=SubjectTokens(database, keks),
        pages=SessionCodec(keks.derive("consentgate/page-session/v1")),
        console=SessionCodec(keks.derive("consentgate/console-session/v1")),
        write_keys=WriteKeyAuthenticator(sources),
        banner_limiter=RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst),
        changes_sink=changes_sink,
        keyring=keyring,
        receipts=signer,
        consumer=consumer,
        decision_log=decision_log,
        audit=audit_log,
        trail=trail,
        privacy=PrivacyRequests(
            store=RequestStore(database),
            consent=consent,
            keys=keyring,
            decisions=decision_log,
            erase_dead_letters=functools.partial(erase_dead_letters, database),
            core_erasure=functools.partial(_core_erasure, database),
            bus=bus,
            audit=trail,
            sign=signer.sign,
            find_source=sources.by_id,
            observe_open=functools.partial(_observe_privacy_requests, metrics),
            personal_stores=[("exposures", flows.erase)],
        ),
        suppressions=Suppressions(consent, trail),
        profile_reader=functools.partial(_decrypted_profile, database, keyring),
        segments=segments,
        segment_maintenance=SegmentMaintenance(database, consumer),
        flags=flags,
        flows=flows,
        recommenders=recommenders,
        evaluation_events=evaluation_events,
        views=views,
        stream_tickets=StreamTickets(keks),
        ofrep_limiter=RateLimiter(
            settings.ofrep_rate_limit_per_second, settings.ofrep_rate_limit_burst
        ),
        metrics=metrics,
    )
    subscribe_control = getattr(bus, "subscribe_control", None)
    if subscribe_control is not None:
        subscribe_control(core_changes.control_listener(views, evaluation_events))
    subscribe_changes = getattr(bus, "subscribe_changes", None)
    if subscribe_changes is not None:  # what core processes change (scaled out)
        subscribe_changes(core_changes.listener(views, evaluation_events))
    if not settings.core and settings.core_changes_fd is not None:  # what `serve`'s child changes
        runtime.core_child = core_changes.PipeReader(
            settings.core_changes_fd, views, evaluation_events
        )
    readers = (changes_sink, evaluation_events, views)
    await bus.start(
        _route(database, consumer, decision_log, tracer, metrics, readers)
        if settings.core
        else None
    )
    if core_child and changes_sink is not None:
        await changes_sink(core_changes.HELLO)  # the gateway is ready once it hears this
    try:
        yield runtime
    finally:
        if runtime.core_child is not None:
            runtime.core_child.stop()
        await bus.close()
        await database.dispose()


def _observe_privacy_requests(metrics: Metrics, still_open: list[PrivacyRequest]) -> None:
    """The open-request and next-deadline gauges."""
    metrics.privacy_open = {
        kind: sum(1 for r in still_open if r.kind == kind) for kind in REQUEST_KINDS
    }
    now = datetime.now(UTC)
    metrics.privacy_next_deadline_seconds = min(
        ((r.deadline - now).total_seconds() for r in still_open), default=None
    )


# (source_id, subject) -> the profile with its encrypted traits opened, or None
ProfileReader = Callable[[str, str], Awaitable[dict[str, Any] | None]]


async def _decrypted_profile(
    database: Database, keyring: Keyring, source_id: str, subject: str
) -> dict[str, Any] | None:
    """A subject's profile for its own access export: encrypted traits decrypted."""
    profile = await read_profile(database, source_id, subject)
    if profile is None:
        return None
    key = await keyring.existing_subject_key(source_id, subject)
    traits = decrypt_fields(profile.traits, key, source_id, subject, "traits")
    return {"subject": subject, "traits": traits, "computed": profile.computed}


async def check_ready(database: Database, bus: Bus) -> dict[str, str]:
    """The state of each dependency: "ok" or why not."""
    checks: dict[str, str] = {}
    try:
        await database.read(lambda conn: conn.execute(text("SELECT 1")))
        checks["database"] = "ok"
    except Exception as exc:  # any driver error means not ready
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        await bus.ping()
        checks["bus"] = "ok"
    except BusUnavailable as exc:
        checks["bus"] = f"unavailable: {exc}"
    return checks


async def _core_erasure(database: Database, source_id: str, request_id: str) -> int | None:
    """How many profiles the core deleted for an erasure, or None until it has run."""
    receipts = await erasure_receipts(database, source_id, request_id)
    return sum(r.profiles_deleted for r in receipts) if receipts else None


def tracer_provider_for(settings: Settings) -> TracerProvider:
    """The tracer provider the settings ask for (OTLP, console in debug, sampling)."""
    return create_tracer_provider(
        service_version=VERSION,
        otlp_endpoint=settings.otlp_endpoint,
        console=settings.log_level == "debug",
        sample_ratio=settings.trace_sample_ratio,
    )


def _route(
    database: Database,
    consumer: ProfileConsumer,
    decision_log: DecisionLog,
    tracer: Tracer,
    metrics: Metrics,
    readers: tuple[core_changes.Sink | None, EvaluationEvents, ViewCache],
) -> MessageHandler:
    """One bus handler: decisions to the decision log, everything else to the core, both in
    one transaction (one commit for both, not two).

    The messages the core consumes get a span in the trace of the request that sent them
    (the W3C traceparent rides in the message headers).
    """
    propagator = TraceContextTextMapPropagator()
    changes_sink, evaluation_events, views = readers

    async def handle(messages: Sequence[BusMessage]) -> None:
        decisions = [m for m in messages if m.subject == DECISIONS_SUBJECT]
        rest = [m for m in messages if m.subject != DECISIONS_SUBJECT]
        units = [u for u in (decision_log.prepare(decisions), consumer.prepare(rest)) if u]
        if not units:
            return
        # One span per request's messages (they share its traceparent), not per message:
        # a span costs tens of microseconds, the core applies an event in a few.
        by_trace: dict[str, list[BusMessage]] = {}
        for message in rest:
            by_trace.setdefault(message.headers.get("traceparent", ""), []).append(message)
        spans = [
            tracer.start_span(
                "core.apply",
                context=propagator.extract(group[0].headers),
                kind=SpanKind.CONSUMER,
                attributes={"messaging.batch.message_count": len(group)},
            )
            for group in by_trace.values()
        ]
        try:
            await database.transaction(lambda conn: [unit(conn) for unit in units])
            changes = core_changes.collect(
                consumer.take_touched(), consumer.segments.take_changes()
            )
            core_changes.apply(changes, views, evaluation_events)
        except Exception as exc:
            consumer.take_touched()  # rolled back: nothing changed
            consumer.segments.take_changes()
            metrics.core_failures.add(len(rest))
            for span in spans:
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            for span in spans:
                span.end()
        await core_changes.announce(changes_sink, changes)  # to the gateways of other processes

    return handle
