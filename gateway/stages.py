"""The per-event stages: consent, anonymize, record. Each does one job on an EventContext;
`gateway.request_stages.build_pipeline` runs them in order over a request's live events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from anonymization import Scrubber
from bus import EventEnvelope
from consent import also_allowed, decide, parse_signals
from gateway._validate import ValidCall
from gateway._wire import Alias, Group, Identify
from gateway.pipeline import EventContext, EventRefused
from observability import DecisionRecord
from profiles import PERSONALIZATION


class StageOrderError(RuntimeError):
    """A stage ran out of order: a bug in the list of stages, not bad input."""


def _raw_event(context: EventContext, stage: str) -> ValidCall:
    if context.call is None:
        raise StageOrderError(f"{stage} needs the raw event: it runs before anonymize clears it")
    return context.call


def consent(context: EventContext) -> EventContext:
    """Decide the event's purposes; refuse it unless every purpose it needs is allowed."""
    call = _raw_event(context, "consent")
    source = context.source
    raw = call.call
    signals = parse_signals(call.context, context.sec_gpc, source.consent)
    decision = decide(
        source.purposes(call.call_type, getattr(raw, "event", None)),
        signals,
        source.jurisdiction,
        stored=context.stored,
        event_time=call.timestamp,
        optional=_field_purposes(source.consent.field_purposes, raw)
        if source.consent.field_purposes
        else (),
    )
    if decision.action == "drop":
        context.decision = decision
        raise EventRefused
    # the core may personalize from any event the subject allows personalization for
    context.decision = also_allowed(
        decision,
        PERSONALIZATION,
        signals,
        source.jurisdiction,
        stored=context.stored,
        event_time=call.timestamp,
    )
    return context


def _field_purposes(field_purposes: dict[str, str], raw: object) -> set[str]:
    """The purposes of the configured fields this event carries."""
    found = set()
    for path, purpose in field_purposes.items():
        section, _, name = path.partition(".")
        values = getattr(raw, section, None)
        if isinstance(values, dict) and name in values:
            found.add(purpose)
    return found


def _strip(values: dict[str, Any] | None, section: str, context: EventContext) -> dict[str, Any]:
    """`values` without the fields whose purpose was refused (the `strip` action)."""
    if not values:
        return {}
    decision = context.decision
    if decision is None or decision.action != "strip":
        return values
    field_purposes = context.source.consent.field_purposes
    kept = {}
    for name, value in values.items():
        purpose = field_purposes.get(f"{section}.{name}")
        if purpose is None or purpose in decision.allowed:
            kept[name] = value
    return kept


def pseudonymize_ids(context: EventContext) -> EventContext:
    """Replace the raw identifiers by pseudonyms, name the event, and drop the raw event."""
    _pseudonymize(context, {})
    return context


def _pseudonymize(context: EventContext, identifiers: dict[str, str]) -> Scrubber:
    """Set the pseudonyms and the scrubbed event name, clear everything raw.

    Returns the scrubber that knows every raw identifier of the event (those in
    `identifiers` too), for the free-form fields still to scrub.
    """
    pseudonymize = context.pseudonymize
    if context.user_id:
        context.subject = context.subject or pseudonymize("subject", context.user_id)
        identifiers[context.user_id] = context.subject
    if context.anonymous_id:
        context.anonymous = context.anonymous or pseudonymize("subject", context.anonymous_id)
        identifiers[context.anonymous_id] = context.anonymous
    fields = context.source.fields
    scrub = Scrubber(identifiers, fields.pii_actions, _pii_pseudonymizer(context))
    if context.call is not None:
        event = getattr(context.call.call, "event", None)
        if event is not None:
            context.event_name = scrub.text(event)
    context.call = None
    context.user_id = None
    context.anonymous_id = None
    return scrub


def _pii_pseudonymizer(context: EventContext) -> Callable[[str], str]:
    pseudonymize = context.pseudonymize
    return lambda value: pseudonymize("subject", value)


def anonymize(context: EventContext) -> EventContext:
    """Build the privacy-safe envelope: pseudonyms, scrubbed values, reduced context."""
    call = _raw_event(context, "anonymize")
    if context.decision is None:
        raise StageOrderError("anonymize runs after consent")
    raw = call.call
    pseudonymize = context.pseudonymize
    identifiers: dict[str, str] = {}
    group = previous = None
    if isinstance(raw, Group):
        group = pseudonymize("group", str(raw.groupId))
        identifiers[str(raw.groupId).strip()] = group
    if isinstance(raw, Alias):
        previous = pseudonymize("subject", str(raw.previousId))
        identifiers[str(raw.previousId).strip()] = previous
    scrub = _pseudonymize(context, identifiers)
    fields = context.source.fields
    owner = context.subject or context.anonymous

    traits: dict[str, Any] = {}
    if isinstance(raw, Identify | Group):
        context_traits = call.context.get("traits") if isinstance(raw, Identify) else None
        base = context_traits if isinstance(context_traits, dict) else {}
        merged = _strip({**base, **(raw.traits or {})}, "traits", context)
        traits = fields.apply("traits", merged, scrub.value, owner, context.data_key, scrub.key)
    name = getattr(raw, "name", None)
    context.envelope = EventEnvelope(
        message_id=context.message_id,
        source_id=context.source.source_id,
        type=call.call_type,  # type: ignore[arg-type]
        subject=context.subject,
        anonymous=context.anonymous,
        received_at=context.received_at,
        timestamp=call.timestamp,
        event=context.event_name,
        name=scrub.text(name) if name is not None else None,
        group=group,
        previous=previous,
        properties=fields.apply(
            "properties",
            _strip(getattr(raw, "properties", None), "properties", context),
            scrub.value,
            owner,
            context.data_key,
            scrub.key,
        ),
        traits=traits,
        context=scrub.context(call.context),
        purposes=context.decision.allowed,
        consent_ref=context.decision.consent_ref,
    )
    return context


def record(context: EventContext) -> EventContext:
    """The record stage: one decision record per event, pseudonyms only, kept on the context;
    the forward stage publishes the request's records beside its events, in the same durable
    commit (the decision log), and counts them."""
    decision = context.decision
    if decision is None:
        raise StageOrderError("record runs after consent")
    context.record = DecisionRecord(
        message_id=context.message_id,
        source_id=context.source.source_id,
        subject=context.subject,
        anonymous=context.anonymous,
        type=context.call_type,
        event=context.event_name,
        purposes_required=decision.required,
        purposes_allowed=decision.allowed,
        action=decision.action,
        reasons=decision.reasons,
        consent_ref=decision.consent_ref,
        trace_id=context.trace_id,
        decided_at=datetime.now(UTC),
    )
    context.call = None
    return context
