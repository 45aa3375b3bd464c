"""What a running gateway holds: database, bus, sources, pipeline, core. Built once per app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import structlog
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import text

from anonymization import KekSet, Keyring
from bus import Bus, BusMessage, BusUnavailable, Database, MessageHandler, create_bus
from consent import ConsentStore
from gateway import stages
from gateway._validate import Limits
from gateway.audit import AuditTrail
from gateway.auth import WriteKeyAuthenticator
from gateway.database import open_database
from gateway.edge import RateLimiter
from gateway.pipeline import Pipeline, StageSpec
from gateway.receipts import ReceiptSigner, receipt_signer_for
from gateway.settings import Settings
from gateway.sources import SourceRegistry
from gateway.tokens import SubjectTokens
from observability import (
    DECISIONS_SUBJECT,
    AuditLog,
    DecisionCounter,
    DecisionLog,
    Metrics,
    create_tracer_provider,
)
from profiles import ProfileConsumer

log = structlog.get_logger("consentgate.runtime")
VERSION = "0.1.0"


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
    decisions: DecisionCounter
    consumer: ProfileConsumer
    decision_log: DecisionLog
    audit: AuditLog
    trail: AuditTrail
    metrics: Metrics
    # privacy requests advance one at a time in a process (gateway/privacy.py)
    privacy_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def check_ready(self) -> dict[str, str]:
        """The state of each dependency: "ok" or why not."""
        checks: dict[str, str] = {}
        try:
            await self.database.read(lambda conn: conn.execute(text("SELECT 1")))
            checks["database"] = "ok"
        except Exception as exc:  # any driver error means not ready
            checks["database"] = f"unreachable: {type(exc).__name__}"
        try:
            await self.bus.ping()
            checks["bus"] = "ok"
        except BusUnavailable as exc:
            checks["bus"] = f"unavailable: {exc}"
        return checks


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings,
    keks: KekSet,
    receipt_seed: bytes | None = None,
    tracer_provider: TracerProvider | None = None,
) -> AsyncIterator[Runtime]:
    """Start everything in order and stop it in reverse; the embedded core runs inside.
    The background loops that drive it are `gateway.background`'s."""
    database = open_database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    bus = create_bus(settings.bus_url, database, batch_size=settings.outbox_batch_size)
    metrics = Metrics(VERSION)
    consumer = ProfileConsumer(
        database,
        max_keys=settings.profile_max_keys,
        on_capped=lambda kind, count: metrics.profile_capped.add(count, {"map": kind}),
    )
    decision_log = DecisionLog(database)
    tracer = (tracer_provider or tracer_provider_for(settings)).get_tracer("consentgate")
    decisions = DecisionCounter()
    keyring = Keyring(database, keks)
    sources = SourceRegistry(database, keyring)
    record = stages.Record(decisions)
    consent = ConsentStore(database)
    pipeline = Pipeline(
        authenticate=WriteKeyAuthenticator(sources),
        consent=consent,
        keyring=keyring,
        bus=bus,
        limits=Limits(
            max_request_bytes=settings.max_request_bytes,
            max_event_bytes=settings.max_event_bytes,
            max_batch_events=settings.max_batch_events,
        ),
        stages=(*stages.STAGES_BEFORE_RECORD, StageSpec("record", record)),
        pseudonymize_ids=stages.pseudonymize_ids,
        record=record,
        tracer=tracer,
        metrics=metrics,
        rate_limiter=RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst),
    )
    signer = ReceiptSigner(receipt_seed) if receipt_seed else receipt_signer_for(settings)
    audit_log = AuditLog(database, signer.sign_bytes, signer.verify_bytes)
    runtime = Runtime(
        settings=settings,
        database=database,
        bus=bus,
        sources=sources,
        pipeline=pipeline,
        consent=consent,
        tokens=SubjectTokens(database, keks),
        keyring=keyring,
        receipts=signer,
        decisions=decisions,
        consumer=consumer,
        decision_log=decision_log,
        audit=audit_log,
        trail=AuditTrail(audit_log, keyring),
        metrics=metrics,
    )
    await bus.start(_route(database, consumer, decision_log, tracer, metrics))
    try:
        yield runtime
    finally:
        await bus.close()
        await database.dispose()


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
) -> MessageHandler:
    """One bus handler: decisions to the decision log, everything else to the core, both in
    one transaction (one commit for both, not two).

    The messages the core consumes get a span in the trace of the request that sent them
    (the W3C traceparent rides in the message headers).
    """
    propagator = TraceContextTextMapPropagator()

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
        except Exception as exc:
            metrics.core_failures.add(len(rest))
            for span in spans:
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            for span in spans:
                span.end()

    return handle
