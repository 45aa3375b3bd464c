"""In-process figures: the physical floor per event, and the pipeline stage by stage."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import re
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from anonymization import Pseudonymizer
from benchmarks.payloads import batch_body, track_body, track_body_1kb
from bus import Database, OutboxBus, encode_event
from consent import ConsentStore, decide, parse_signals
from gateway import stages
from gateway._validate import Limits, validate_body
from gateway.database import open_database
from gateway.migrate import upgrade_to_head
from gateway.pipeline import EventContext
from gateway.sources import Source

# One pass over a string for every PII kind the floor accounts for.
_PII = re.compile(
    r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-.]+\.[A-Za-z]{2,}"  # email
    r"|\+?\d[\d \-]{7,14}\d"  # phone
    r"|\b(?:\d[ \-]?){13,19}\b"  # card
    r"|\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b"  # IBAN
)
LIMITS = Limits(max_request_bytes=512_000, max_event_bytes=32_768, max_batch_events=2500)


def _rate(work: Callable[[], int], seconds: float) -> float:
    """Events per second of `work` (which returns how many events it did), run for `seconds`."""
    done = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        done += work()
    return done / elapsed


@contextlib.asynccontextmanager
async def _scratch_database() -> AsyncIterator[Database]:
    """A migrated SQLite database in a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        await asyncio.to_thread(upgrade_to_head, url)
        database = open_database(url)
        try:
            yield database
        finally:
            await database.dispose()


def floor_events_per_s(seconds: float = 2.0) -> float:
    """decode + consent lookup + 2 HMAC-SHA256 + one PII regex pass + encode, per event."""
    body = track_body()
    consent = {("src", "analytics"): True}
    # HMAC-SHA256 with the key's pad states precomputed: the cheapest correct way to key it.
    inner = hashlib.sha256(bytes(0x36 for _ in range(64)))
    outer = hashlib.sha256(bytes(0x5C for _ in range(64)))

    def keyed(message: bytes) -> bytes:
        state = inner.copy()
        state.update(message)
        result = outer.copy()
        result.update(state.digest())
        return result.digest()

    decoder = msgspec.json.Decoder()
    encoder = msgspec.json.Encoder()

    def one() -> int:
        event: dict[str, Any] = decoder.decode(body)
        allowed = consent.get(("src", "analytics"), False)
        subject = keyed(event["userId"].encode())
        anonymous = keyed(event["anonymousId"].encode())
        properties = event["properties"]
        for value in properties.values():
            if isinstance(value, str):
                _PII.search(value)
        encoder.encode({"s": subject, "a": anonymous, "p": properties, "ok": allowed})
        return 1

    return _rate(one, seconds)


def _source() -> Source:
    return Source(
        source_id="src_bench",
        name="bench",
        jurisdiction="gdpr",
        pseudonymize=Pseudonymizer(bytes(32)),
    )


def pipeline_stage_costs(events: int = 20_000) -> dict[str, float]:
    """Microseconds per event for each stage, forward included (durable, batches of 100)."""
    return asyncio.run(_stage_costs(events))


async def _stage_costs(events: int) -> dict[str, float]:
    """The runtime's own pipeline (`build_pipeline`), untraced: each stage's time is what its
    stage-duration histogram summed, per event."""
    from opentelemetry.trace import NoOpTracer

    from anonymization import KekSet, Keyring
    from gateway.pipeline import IngestRequest
    from gateway.request_stages import build_pipeline
    from observability import Metrics

    source = _source()
    body = batch_body(100)
    metrics = Metrics("bench")
    async with _scratch_database() as database:
        bus = OutboxBus(database)
        await bus.start()

        async def authenticate(_authorization: str | None, _body: bytes) -> Source:
            return source

        def pipeline(measure: Metrics | None) -> Any:
            return build_pipeline(
                authenticate=authenticate,
                consent=ConsentStore(database),
                keyring=Keyring(database, KekSet(bytes(32))),
                bus=bus,
                limits=LIMITS,
                tracer=NoOpTracer(),
                metrics=measure,
            )

        request = IngestRequest(call_type=None, body=body)
        await pipeline(None).run(request)  # warm caches
        measured = pipeline(metrics)
        for _ in range(events // 100):
            await measured.run(request)
        await bus.close()
    sums = metrics.stage_seconds.sums()
    return {name: seconds / events * 1e6 for name, seconds in sums.items()}


def consent_decision_costs(events: int = 50_000) -> dict[str, float]:
    """µs per event to decide consent with a warm cache, beside a plain dict lookup."""
    return asyncio.run(_decision_costs(events))


async def _decision_costs(events: int) -> dict[str, float]:
    async with _scratch_database() as database:
        store = ConsentStore(database)
        source = _source()
        calls = validate_body(batch_body(100), None, LIMITS, datetime.now(UTC))
        subjects = [source.pseudonymize("subject", c.user_id or "") for c in calls]
        await store.states(source.source_id, subjects)  # warm the cache
        started = time.perf_counter()
        for _ in range(events // 100):
            states = await store.states(source.source_id, subjects)
            for call, subject in zip(calls, subjects, strict=True):
                decide(
                    source.purposes(call.call_type, getattr(call.call, "event", None)),
                    parse_signals(call.context, None, source.consent),
                    source.jurisdiction,
                    stored=states[subject],
                    event_time=call.timestamp,
                )
        decision = (time.perf_counter() - started) / events * 1e6
    table: dict[tuple[str, str], dict[str, object]] = {(source.source_id, s): {} for s in subjects}
    keys = list(table)
    started = time.perf_counter()
    for _ in range(events // 100):
        for key in keys:
            table.get(key)
    lookup = (time.perf_counter() - started) / events * 1e6
    return {"consent_decision_us": decision, "dict_lookup_us": lookup}


def anonymize_costs(seconds: float = 2.0) -> dict[str, float]:
    """µs per ~1 KB event: decode + anonymize + encode, beside decode + 2 HMACs + encode."""
    body = track_body_1kb()
    source = _source()
    keyed = source.pseudonymize.digest
    decoder = msgspec.json.Decoder()
    encoder = msgspec.json.Encoder()
    decision = decide(("analytics",), parse_signals({}, None), "none")

    def floor() -> int:
        event: dict[str, Any] = decoder.decode(body)
        keyed(event["userId"].encode())
        keyed(event["anonymousId"].encode())
        encoder.encode(event)
        return 1

    def anonymize() -> int:
        (call,) = validate_body(body, "track", LIMITS, datetime.now(UTC))
        context = EventContext.from_call(source, call, call.timestamp)
        context.decision = decision
        context = stages.anonymize(context)
        assert context.envelope is not None
        encode_event(context.envelope)
        return 1

    floor_rate = _rate(floor, seconds)
    anonymize_rate = _rate(anonymize, seconds)
    return {
        "anonymize_floor_us": 1e6 / floor_rate,
        "anonymize_1kb_us": 1e6 / anonymize_rate,
        "event_1kb_bytes": float(len(body)),
    }


_IN_FLIGHT = 32


def observability_costs(batches: int = 160, tracks: int = 6400) -> dict[str, float]:
    """Pipeline.run events/s with tracing and the decision log on, against both off, in the
    same run: on /v1/batch bodies (100 events) and on /v1/track bodies (one event, where the
    request's span weighs most), each through the durable outbox.

    As in the core bench, the two sides take turns (in rounds, which goes first alternating:
    the second of two identical sides measures slower) on a frozen heap, and the spans are
    exported to a sink that counts them and keeps none (an in-memory exporter's growing list
    made every collection slower, a cost no real exporter has)."""
    figures = asyncio.run(_observability_costs(batches, None, batch_body(100), ""))
    figures.update(asyncio.run(_observability_costs(tracks, "track", track_body(), "_track")))
    return figures


_OBSERVABILITY_ROUNDS = 4


class _CountingExporter:
    """A span exporter that counts what it is given and keeps nothing."""

    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


async def _observability_costs(
    requests: int, call_type: str | None, body: bytes, suffix: str
) -> dict[str, float]:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import NoOpTracer

    from anonymization import KekSet, Keyring
    from consent import ConsentStore
    from gateway.pipeline import IngestRequest
    from gateway.request_stages import build_pipeline
    from observability import PiiGuardProcessor, create_tracer_provider

    events = len(msgspec.json.decode(body).get("batch", [None]))
    per_client = requests // _IN_FLIGHT // _OBSERVABILITY_ROUNDS
    async with _scratch_database() as database:
        bus = OutboxBus(database)
        await bus.start()
        keyring = Keyring(database, KekSet(bytes(32)))
        source = _source()
        provider = create_tracer_provider(service_version="bench")
        exporter = _CountingExporter()
        provider.add_span_processor(PiiGuardProcessor(BatchSpanProcessor(exporter)))  # type: ignore[arg-type]

        async def authenticate(_authorization: str | None, _body: bytes) -> Source:
            return source

        request = IngestRequest(call_type=call_type, body=body, path=f"/v1/{call_type or 'batch'}")
        sides = {
            name: build_pipeline(
                authenticate=authenticate,
                consent=ConsentStore(database),
                keyring=keyring,
                bus=bus,
                limits=LIMITS,
                tracer=tracer,
                publish_decisions=decisions,
            )
            for name, tracer, decisions in (
                ("observability_off", NoOpTracer(), False),
                ("observability_on", provider.get_tracer("bench"), True),
            )
        }
        for pipeline in sides.values():
            await pipeline.run(request)  # warm caches
        spent = dict.fromkeys(sides, 0.0)
        gc.collect()
        gc.freeze()
        try:
            for turn in range(_OBSERVABILITY_ROUNDS):
                order = list(sides.items())
                for name, pipeline in order if turn % 2 == 0 else reversed(order):

                    async def client(count: int, run: Any = pipeline.run) -> None:
                        for _ in range(count):
                            await run(request)

                    # 32 requests in flight, as the HTTP loads have: they share the commits
                    started = time.perf_counter()
                    await asyncio.gather(*(client(per_client) for _ in range(_IN_FLIGHT)))
                    spent[name] += time.perf_counter() - started
        finally:
            gc.unfreeze()
        provider.shutdown()
        await bus.close()
    if exporter.exported < per_client * _IN_FLIGHT * _OBSERVABILITY_ROUNDS:
        raise RuntimeError(f"only {exporter.exported} spans were exported: tracing was not on")
    done = per_client * _IN_FLIGHT * _OBSERVABILITY_ROUNDS * events
    return {f"{name}{suffix}_events_per_s": done / spent[name] for name in sides}
