"""The consent and anonymize stages on one event: strip by field purpose, stored state."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from anonymization import Pseudonymizer
from consent import ConsentConfig, PurposeResolver
from gateway import stages
from gateway._validate import Limits, validate_body
from gateway.cli import main
from gateway.pipeline import EventContext, EventRefused
from gateway.sources import Source

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
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"category_purposes": {"C0004": ["marketing"]}}))
    bad = tmp_path / "bad.toml"
    bad.write_text('[event_purposes]\n"track:*" = ["astrology"]\n')
    assert main(["sources", "create", "ok", "--consent-config", str(good)]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["name"] == "ok"
    assert main(["sources", "create", "bad", "--consent-config", str(bad)]) == 2
    assert "event_purposes['track:*'][0]: unknown purpose 'astrology'" in capsys.readouterr().err
