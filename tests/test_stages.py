"""The consent and anonymize stages on one event: strip by field purpose, stored state."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from opentelemetry.trace import NoOpTracer

from anonymization import KekSet, Keyring, Pseudonymizer
from consent import ConsentConfig, ConsentStore, PurposeResolver
from gateway import stages
from gateway._validate import Limits, validate_body
from gateway.cli import main
from gateway.database import open_database
from gateway.pipeline import EventContext, EventRefused, IngestRequest
from gateway.request_stages import build_pipeline
from gateway.settings import Settings
from gateway.sources import Source


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs in both shapes (tests/conftest.py, `shaped`)."""
    return shaped


LIMITS = Limits(max_request_bytes=512_000, max_event_bytes=32_768, max_batch_events=2500)
CONFIG = ConsentConfig(
    field_purposes={"properties.campaign": "marketing", "traits.company": "sale_sharing"}
)


def _context(event: dict[str, object], sec_gpc: str | None = None) -> EventContext:
    source = Source(
        source_id="src_t",
        name="t",
        jurisdiction="none",
        pseudonymize=Pseudonymizer(bytes(32)),
        consent=CONFIG,
        purposes=PurposeResolver(CONFIG),
    )
    now = datetime.now(UTC)
    (call,) = validate_body(json.dumps(event).encode(), event["type"], LIMITS, now)  # type: ignore[arg-type]
    return EventContext.from_call(source, call, now, sec_gpc)


def test_gpc_strips_fields_of_refused_purposes_and_keeps_the_event() -> None:
    """With GPC, a property that belongs to marketing is stripped; the rest goes on."""
    context = _context(
        {
            "type": "track",
            "userId": "u",
            "event": "Viewed",
            "properties": {"campaign": "x", "plan": "pro"},
        },
        sec_gpc="1",
    )
    context = stages.anonymize(stages.consent(context))
    assert context.decision is not None
    assert context.decision.action == "strip"
    assert context.envelope is not None
    assert context.envelope.properties == {"plan": "pro"}


def test_without_refusal_nothing_is_stripped() -> None:
    """Without any refusal, configured fields stay."""
    context = _context(
        {"type": "identify", "userId": "u", "traits": {"company": "Acme", "plan": "pro"}}
    )
    context = stages.anonymize(stages.consent(context))
    assert context.decision is not None
    assert context.decision.action == "forward"
    assert context.envelope is not None
    assert context.envelope.traits == {"company": "Acme", "plan": "pro"}


def test_refused_required_purpose_raises_and_keeps_nothing_raw() -> None:
    """A refused required purpose stops the event; pseudonymizing then clears the raw ids."""
    context = _context(
        {
            "type": "track",
            "userId": "raw-user",
            "event": "E",
            "context": {"consent": {"categoryPreferences": {"analytics": False}}},
        }
    )
    with pytest.raises(EventRefused):
        stages.consent(context)
    context = stages.pseudonymize_ids(context)
    assert context.call is None
    assert context.user_id is None
    assert context.subject is not None
    assert context.subject.startswith("p1_")


def test_sources_create_takes_a_consent_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sources create --consent-config` validates the file and names a bad path."""
    monkeypatch.setenv("CONSENTGATE_DATABASE_URL", f"sqlite:///{tmp_path}/c.db")
    monkeypatch.setenv("CONSENTGATE_RECEIPT_KEY_FILE", str(tmp_path / "receipts.key"))
    assert main(["migrate"]) == 0
    capsys.readouterr()
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"category_purposes": {"C0004": ["marketing"]}}))
    bad = tmp_path / "bad.toml"
    bad.write_text('[event_purposes]\n"track:*" = ["astrology"]\n')
    assert main(["sources", "create", "ok", "--consent-config", str(good)]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["name"] == "ok"
    assert main(["sources", "create", "bad", "--consent-config", str(bad)]) == 2
    assert "event_purposes['track:*'][0]: unknown purpose 'astrology'" in capsys.readouterr().err


def test_the_pipeline_is_one_list_of_stages(client: TestClient) -> None:
    """The runtime runs DESIGN's stages, in order, from the one builder."""
    assert client.app.state.runtime.pipeline.stage_names == (
        "authenticate",
        "validate",
        "consent.lookup",
        "consent",
        "keys.lookup",
        "anonymize",
        "record",
        "forward",
    )


class _CountingPseudonymizer(Pseudonymizer):
    __slots__ = ("calls",)

    def __init__(self, key: bytes) -> None:
        super().__init__(key)
        self.calls: list[str] = []

    def __call__(self, kind: Any, value: str) -> str:
        self.calls.append(value)
        return super().__call__(kind, value)


class _CollectingBus:
    def __init__(self) -> None:
        self.published: list[Any] = []

    async def publish(self, messages: Any) -> None:
        self.published.extend(messages)


async def test_each_identifier_is_keyed_once_per_request(migrated: Settings) -> None:
    """A batch of one user's events keys the user (and its anonymous id) once, not per event
    and not per stage."""
    counting = _CountingPseudonymizer(bytes(32))
    source = Source(source_id="src_t", name="t", jurisdiction="none", pseudonymize=counting)
    database = open_database(migrated.database_url)

    async def authenticate(_authorization: str | None, _body: bytes) -> Source:
        return source

    bus = _CollectingBus()
    pipeline = build_pipeline(
        authenticate=authenticate,
        consent=ConsentStore(database),
        keyring=Keyring(database, KekSet(bytes(32))),
        bus=bus,  # type: ignore[arg-type]
        limits=Limits(max_request_bytes=500_000, max_event_bytes=32_000, max_batch_events=100),
        tracer=NoOpTracer(),
    )
    events = [
        {"type": "track", "userId": "same-user", "anonymousId": "same-anon", "event": f"E{n}"}
        for n in range(20)
    ]
    try:
        body = json.dumps({"batch": events}).encode()
        await pipeline.run(IngestRequest(call_type=None, body=body))
    finally:
        await database.dispose()
    assert sorted(counting.calls) == ["same-anon", "same-user"]
    assert len(bus.published) == 21  # 20 events and their decisions
