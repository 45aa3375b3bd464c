"""The request-wide stages of the pipeline, and `build_pipeline`, which lists every stage.

authenticate and validate read the body; the lookups fetch what the per-event stages need for
all of a request's events at once (stored consent, data keys); forward hands the envelopes and
decision records to the bus in one durable commit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

from opentelemetry.trace import Tracer, format_trace_id

from anonymization import Keyring
from bus import Bus, BusUnavailable, encode_event
from consent import ConsentState, ConsentStore, merge_states
from gateway import stages
from gateway._body import decode_content
from gateway._validate import Limits, ValidCall, validate_body
from gateway.edge import RateLimiter
from gateway.errors import Unavailable
from gateway.pipeline import (
    EventContext,
    NamedStage,
    Pipeline,
    Pseudonymize,
    RequestContext,
    each,
)
from gateway.sources import Source
from observability import Metrics, decisions_message, remember_raw_identifiers, trace_headers

Authenticator = Callable[[str | None, bytes], Awaitable[Source]]


def build_pipeline(
    *,
    authenticate: Authenticator,
    consent: ConsentStore,
    keyring: Keyring,
    bus: Bus,
    limits: Limits,
    tracer: Tracer,
    metrics: Metrics | None = None,
    rate_limiter: RateLimiter | None = None,
    publish_decisions: bool = True,
) -> Pipeline:
    """Every stage of ingestion, in order (`publish_decisions=False` only to measure what
    the decision log costs)."""
    refused = _record_refusal
    return Pipeline(
        (
            NamedStage("authenticate", Authenticate(authenticate, limits, rate_limiter)),
            NamedStage("validate", Validate(limits)),
            NamedStage("consent.lookup", LookupConsent(consent)),
            NamedStage("consent", each(stages.consent, refused)),
            NamedStage("keys.lookup", LookupKeys(keyring), needed=_needs_data_keys),
            NamedStage("anonymize", each(stages.anonymize, refused)),
            NamedStage("record", each(stages.record, refused)),
            NamedStage("forward", Forward(bus, metrics, publish_decisions)),
        ),
        tracer,
        metrics,
    )


def _record_refusal(event: EventContext) -> None:
    """A refused event: its identifiers pseudonymized, its decision recorded, nothing else."""
    stages.record(stages.pseudonymize_ids(event))


def _needs_data_keys(context: RequestContext) -> bool:
    """Only a source whose policy encrypts fields needs data keys, and only for live events:
    a refused (say, erased) subject's key is never touched."""
    return bool(context.live) and context.authenticated.fields.needs_data_keys


class Authenticate:
    """The write key (Basic username, or `writeKey` in the body), the origin, the rate."""

    __slots__ = ("_authenticate", "_limit", "_rate_limiter")

    def __init__(
        self, authenticate: Authenticator, limits: Limits, rate_limiter: RateLimiter | None
    ) -> None:
        self._authenticate = authenticate
        self._limit = limits.max_request_bytes
        self._rate_limiter = rate_limiter

    async def __call__(self, context: RequestContext) -> None:
        request = context.request
        context.body = decode_content(request.body, request.content_encoding, self._limit)
        source = await self._authenticate(request.authorization, context.body)
        source.edge.check_origin(request.origin)
        if self._rate_limiter is not None:
            self._rate_limiter.admit(source.source_id, source.edge)
        context.source = source
        context.attributes["consentgate.source_id"] = source.source_id


class Validate:
    """The body becomes checked calls (all of them, before any is processed), then events."""

    __slots__ = ("_limits",)

    def __init__(self, limits: Limits) -> None:
        self._limits = limits

    async def __call__(self, context: RequestContext) -> None:
        source = context.authenticated
        request = context.request
        calls = validate_body(context.body, request.call_type, self._limits, context.received_at)
        remember_raw_identifiers(_raw_identifiers(calls))
        context.attributes["consentgate.events"] = len(calls)
        trace_id = format_trace_id(context.span.get_span_context().trace_id)
        pseudonymize = _once_per_request(source)
        context.calls = calls
        context.events = context.live = [
            EventContext.from_call(
                source, call, context.received_at, request.sec_gpc, trace_id, pseudonymize
            )
            for call in calls
        ]


def _once_per_request(source: Source) -> Pseudonymize:
    """The source's pseudonymizer, remembering each identifier's pseudonym for the request:
    a batch of one user's events keys the user once."""
    known: dict[tuple[str, str], str] = {}
    pseudonymize = source.pseudonymize

    def once(kind: str, raw: str) -> str:
        pseudonym = known.get((kind, raw))
        if pseudonym is None:
            pseudonym = known[(kind, raw)] = pseudonymize(kind, raw)  # type: ignore[arg-type]
        return pseudonym

    return once


class LookupConsent:
    """Each event's subject pseudonyms and its stored consent (cached by the store).

    With several pseudonym key versions, the choices recorded under any of the subject's
    pseudonyms count: a withdrawal made before a new epoch still holds after it.
    """

    __slots__ = ("_consent",)

    def __init__(self, consent: ConsentStore) -> None:
        self._consent = consent

    async def __call__(self, context: RequestContext) -> None:
        source = context.authenticated
        older = source.pseudonymizers[1:]
        aliases: dict[str, list[str]] = {}
        keys: set[str] = set()
        for event in context.events:
            for raw, attribute in ((event.user_id, "subject"), (event.anonymous_id, "anonymous")):
                if not raw:
                    continue
                current = event.pseudonymize("subject", raw)
                setattr(event, attribute, current)
                keys.add(current)
                if older and current not in aliases:
                    aliases[current] = [p("subject", raw) for p in older]
                    keys.update(aliases[current])
        states = await self._consent.states(source.source_id, keys)
        for event in context.events:
            # The user's own choices first; an anonymous visitor's apply until identified.
            event.stored = _state_of(event.subject, states, aliases) or (
                _state_of(event.anonymous, states, aliases) or {}
            )


def _state_of(
    subject: str | None, states: dict[str, ConsentState], aliases: dict[str, list[str]]
) -> ConsentState:
    if subject is None:
        return {}
    state = states.get(subject, {})
    if subject not in aliases:
        return state
    return merge_states([state, *(states.get(alias, {}) for alias in aliases[subject])])


class LookupKeys:
    """The data keys of the live events' subjects, for the fields the policy encrypts."""

    __slots__ = ("_keyring",)

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring

    async def __call__(self, context: RequestContext) -> None:
        owners = {e.subject or e.anonymous for e in context.live} - {None}
        keys = await self._keyring.subject_keys(
            context.authenticated.source_id,
            owners,  # type: ignore[arg-type]
        )
        for event in context.live:
            owner = event.subject or event.anonymous
            event.data_key = keys.get(owner) if owner else None


class Forward:
    """The request's envelopes, and every event's decision record, in one durable publish;
    then the decisions are counted (once, here)."""

    __slots__ = ("_bus", "_metrics", "_publish_decisions")

    def __init__(self, bus: Bus, metrics: Metrics | None, publish_decisions: bool) -> None:
        self._bus = bus
        self._metrics = metrics
        self._publish_decisions = publish_decisions

    async def __call__(self, context: RequestContext) -> None:
        headers = trace_headers(context.span)  # the W3C traceparent, for the core's spans
        messages = [encode_event(e.envelope, headers) for e in context.live if e.envelope]
        records = [e.record for e in context.events if e.record is not None]
        if records and self._publish_decisions:
            # The decisions ride in the same durable commit as the events they decided.
            messages.append(decisions_message("decisions:" + records[0].message_id, records))
        try:
            await self._bus.publish(messages)
        except BusUnavailable as exc:
            raise Unavailable(
                "events were not accepted; retry the request", code="bus_unavailable"
            ) from exc
        if self._metrics is not None:
            self._metrics.record_decisions(context.authenticated.source_id, records)


def _raw_identifiers(calls: list[ValidCall]) -> Iterator[str | None]:
    """Every raw identifier the request's calls carry, for the telemetry guards."""
    for call in calls:
        yield call.user_id
        yield call.anonymous_id
        for name in ("groupId", "previousId"):
            value = getattr(call.call, name, None)
            if value is not None:
                yield str(value)
