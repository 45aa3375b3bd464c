"""Privacy requests: erasure, access and opt-out, each with a deadline and a receipt per store.

An erasure runs its steps in order, one receipt each:
1. `consent`: the subject is suppressed at once (a suppression record for each of its
   pseudonyms); from the next event on, the gateway refuses everything for it;
2. `keys`: its data keys are shredded: every ciphertext under them, in the outbox, on the
   bus, in backups and exports, and in the audit log, is noise from now on;
3. `decisions`: its decision records are deleted; `dead_letters`: so are its events among
   the bus's dead letters;
4. `profiles`: an `erase` message goes to the core on the bus, after every event already
   accepted; the core deletes the profiles and leaves a receipt (a tombstone that also skips
   events accepted before the erasure and delivered after it). When that receipt is in, the
   decision log is swept once more and the request completes.

Every step is written to the audit log. A request interrupted by a crash is resumed by
`advance` (a background loop calls it); a step already receipted is not redone, and each can
run twice without harm. Consent records stay: pseudonymous, they are the proof of what was
decided and they carry the suppression.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog

from bus import Bus, Erase, OptOut, encode_control
from consent import GPC_REFUSED, SUPPRESSION, ConsentConfig, ConsentStore, new_records
from privacy._model import (
    DEADLINE_DAYS,
    PrivacyRequest,
    PrivacyRequestView,
    RequestKind,
    StoreReceipt,
    new_request_id,
)
from privacy._store import RequestStore

log = structlog.get_logger("consentgate.privacy")


class PrivacyError(ValueError):
    """A request that cannot be taken as asked; `code` says why (the API's error code)."""

    def __init__(self, detail: str, code: str) -> None:
        super().__init__(detail)
        self.code = code


class SourceView(Protocol):
    """What a request needs of its source."""

    @property
    def source_id(self) -> str: ...
    @property
    def jurisdiction(self) -> str: ...
    @property
    def consent(self) -> ConsentConfig: ...


class KeyShredder(Protocol):
    async def shred(self, source_id: str, subject: str) -> int: ...


class DecisionEraser(Protocol):
    async def erase(self, source_id: str, subjects: Sequence[str]) -> int: ...


class PrivacyAudit(Protocol):
    async def privacy_request_received(self, source: Any, request: PrivacyRequest) -> None: ...
    async def privacy_request_step(
        self, request: PrivacyRequest, receipt: StoreReceipt
    ) -> None: ...
    async def privacy_request_completed(
        self, request: PrivacyRequest, signed: dict[str, Any] | None
    ) -> None: ...


Step = Callable[[SourceView, PrivacyRequest], Awaitable[tuple[str, int]]]


class PrivacyRequests:
    """Takes requests, runs them to completion, and shows them."""

    def __init__(
        self,
        *,
        store: RequestStore,
        consent: ConsentStore,
        keys: KeyShredder,
        decisions: DecisionEraser,
        erase_dead_letters: Callable[[str, Sequence[str]], Awaitable[int]],
        core_erasure: Callable[[str, str], Awaitable[int | None]],
        bus: Bus,
        audit: PrivacyAudit,
        sign: Callable[[dict[str, Any]], dict[str, Any]],
        find_source: Callable[[str], Awaitable[SourceView | None]],
        observe_open: Callable[[list[PrivacyRequest]], None] = lambda _: None,
        personal_stores: Sequence[tuple[str, Callable[[str, list[str]], Awaitable[int]]]] = (),
    ) -> None:
        """`core_erasure(source_id, request_id)` is how many profiles the core deleted for the
        request, or None until it has; `observe_open` hears the open requests each round;
        `personal_stores` (name, erase(source_id, subjects)) hold personalization state an
        erasure deletes, and an opt-out of `personalization` too."""
        self.store = store
        self._consent = consent
        self._keys = keys
        self._decisions = decisions
        self._erase_dead_letters = erase_dead_letters
        self._core_erasure = core_erasure
        self._bus = bus
        self._audit = audit
        self._sign = sign
        self._find_source = find_source
        self._observe_open = observe_open
        # requests advance one at a time in a process; a lease guards against other replicas
        self._lock = asyncio.Lock()
        self._waiting_on_core = asyncio.Event()  # an erasure was handed to the core
        # an erasure's own steps: (store, step), run in order, each receipted once
        self._erasure_steps: tuple[tuple[str, Step], ...] = (
            ("consent", self._suppress),
            ("keys", self._shred),
            ("decisions", self._erase_decisions),
            ("dead_letters", self._erase_dead_letter_events),
            *((name, self._personal_step(erase)) for name, erase in personal_stores),
        )
        self._personal_stores = tuple(personal_stores)

    async def submit(
        self,
        source: SourceView,
        kind: RequestKind,
        subjects: Sequence[str],
        requested_by: str,
        purposes: Sequence[str] = (),
    ) -> PrivacyRequest:
        """Record the request, run it as far as it goes now, and return it."""
        if purposes and kind != "opt_out":
            raise PrivacyError("purposes: only an opt_out request names purposes", "invalid_body")
        now = datetime.now(UTC)
        request = PrivacyRequest(
            request_id=new_request_id(),
            source_id=source.source_id,
            kind=kind,
            status="received",
            subject=subjects[0],
            subjects=list(dict.fromkeys(subjects)),
            purposes=_opt_out_purposes(source, purposes) if kind == "opt_out" else [],
            requested_by=requested_by,
            received_at=now,
            deadline=now + timedelta(days=DEADLINE_DAYS.get(source.jurisdiction, 30)),
        )
        await self.store.insert(request)
        await self._audit.privacy_request_received(source, request)
        try:
            await self._advance_one(source, request.request_id)
        except Exception as exc:  # recorded, so accepted: `advance` will resume it
            log.error(
                "privacy_request_stalled",
                privacy_request_id=request.request_id,
                error=type(exc).__name__,
            )
        return await self.store.get(request.request_id) or request

    async def advance(self) -> int:
        """Resume every open request (after a crash, or while the core catches up); returns
        how many are still open."""
        for request in await self.store.listing(limit=1_000_000, open_only=True):
            source = await self._find_source(request.source_id)
            if source is not None:
                await self._advance_one(source, request.request_id)
        still_open = await self.store.listing(limit=1_000_000, open_only=True)
        self._observe_open(still_open)
        return len(still_open)

    async def pause(self, seconds: float) -> bool:
        """Wait `seconds`, or less: until an erasure is handed to the core (then True: the core
        applies it within milliseconds, and the request can complete as soon as it has)."""
        try:
            await asyncio.wait_for(self._waiting_on_core.wait(), seconds)
        except TimeoutError:
            return False
        self._waiting_on_core.clear()
        return True

    def view(self, request: PrivacyRequest) -> PrivacyRequestView:
        return request_view(request, self._sign)

    async def record_step(
        self, request: PrivacyRequest, store: str, action: str, count: int
    ) -> None:
        """A receipt for one store, kept on the request and written to the audit log."""
        receipt = StoreReceipt(store=store, action=action, count=count, at=_iso(datetime.now(UTC)))
        request.receipts = [*request.receipts, receipt]
        await self.store.set_receipts(request)
        await self._audit.privacy_request_step(request, receipt)

    async def _advance_one(self, source: SourceView, request_id: str) -> None:
        """Take the request as far as it goes now, never together with another advance of it:
        one at a time in this process, and under a lease in the database against other
        replicas (a lease outlives a crash only by a minute)."""
        async with self._lock:
            lease = await self.store.claim(request_id)
            if lease is None:
                return
            try:
                request = await self.store.get(request_id)
                if request is None:
                    return
                if request.status == "received":
                    await self._start(source, request)
                if request.status == "in_progress" and request.kind == "erasure":
                    await self._finish_erasure(source, request)
            finally:
                await self.store.release(request_id, lease)

    async def _start(self, source: SourceView, request: PrivacyRequest) -> None:
        done = request.done()
        if request.kind == "erasure":
            for store, step in self._erasure_steps:
                if store not in done:
                    action, count = await step(source, request)
                    await self.record_step(request, store, action, count)
            erase = Erase(
                source_id=source.source_id,
                subject=request.subject,
                request_id=request.request_id,
                at=datetime.now(UTC),
                others=tuple(request.subjects[1:]),
            )
            await self._bus.publish([encode_control(erase, f"{request.request_id}:erase")])
            await self._set_status(request, "in_progress")
            self._waiting_on_core.set()
        elif request.kind == "opt_out":
            if "consent" not in done:
                withdrawn = await self._withdraw(source, request, request.purposes)
                await self.record_step(request, "consent", "withdrawn", withdrawn)
            if "profiles" not in done:  # the core stops keeping what the purposes fed, at once
                opt_out = OptOut(
                    source_id=source.source_id,
                    subjects=tuple(request.subjects),
                    purposes=tuple(request.purposes),
                    request_id=request.request_id,
                    at=datetime.now(UTC),
                )
                await self._bus.publish([encode_control(opt_out, f"{request.request_id}:opt_out")])
                await self.record_step(request, "profiles", "notified", len(request.subjects))
            if "personalization" in request.purposes:
                for name, eraser in self._personal_stores:
                    if name not in done:
                        count = await eraser(source.source_id, list(request.subjects))
                        await self.record_step(request, name, "deleted", count)
            await self._complete(request)
        else:  # access: the export is assembled when it is fetched, from the stores as they are
            if "export" not in done:
                await self.record_step(request, "export", "ready", len(request.subjects))
            await self._complete(request)

    @staticmethod
    def _personal_step(erase: Callable[[str, list[str]], Awaitable[int]]) -> Step:
        async def step(source: SourceView, request: PrivacyRequest) -> tuple[str, int]:
            return "deleted", await erase(source.source_id, list(request.subjects))

        return step

    async def _suppress(self, source: SourceView, request: PrivacyRequest) -> tuple[str, int]:
        return "suppressed", await self._withdraw(source, request, [SUPPRESSION])

    async def _shred(self, source: SourceView, request: PrivacyRequest) -> tuple[str, int]:
        shredded = 0
        for subject in request.subjects:
            shredded += await self._keys.shred(source.source_id, subject)
        return "shredded", shredded

    async def _erase_decisions(
        self, source: SourceView, request: PrivacyRequest
    ) -> tuple[str, int]:
        return "deleted", await self._decisions.erase(source.source_id, request.subjects)

    async def _erase_dead_letter_events(
        self, source: SourceView, request: PrivacyRequest
    ) -> tuple[str, int]:
        return "deleted", await self._erase_dead_letters(source.source_id, request.subjects)

    async def _finish_erasure(self, source: SourceView, request: PrivacyRequest) -> None:
        deleted = await self._core_erasure(source.source_id, request.request_id)
        if deleted is None:
            return  # the core has not applied the erase message yet
        await self.record_step(request, "profiles", "deleted", deleted)
        # decisions of events accepted before the erasure may have landed since the first sweep
        late = await self._decisions.erase(source.source_id, request.subjects)
        if late:
            await self.record_step(request, "decisions", "deleted_late", late)
        await self._complete(request)

    async def _withdraw(
        self, source: SourceView, request: PrivacyRequest, purposes: Sequence[str]
    ) -> int:
        """Refusal records for `purposes`, for every pseudonym of the subject."""
        appended = 0
        for subject in request.subjects:  # one append per subject, as the store requires
            records = new_records(
                source_id=source.source_id,
                subject=subject,
                choices=dict.fromkeys(purposes, False),
                source="privacy_request",
                policy_version=request.request_id,
                jurisdiction=source.jurisdiction,
                at=datetime.now(UTC),
            )
            await self._consent.append(records)
            appended += len(records)
        return appended

    async def _set_status(self, request: PrivacyRequest, status: Any) -> None:
        request.status = status
        if status == "completed":
            request.completed_at = datetime.now(UTC)
        await self.store.set_status(request)

    async def _complete(self, request: PrivacyRequest) -> None:
        await self._set_status(request, "completed")
        await self._audit.privacy_request_completed(request, signed_receipt(request, self._sign))
        log.info(
            "privacy_request_completed", privacy_request_id=request.request_id, kind=request.kind
        )


def request_view(
    request: PrivacyRequest, sign: Callable[[dict[str, Any]], dict[str, Any]]
) -> PrivacyRequestView:
    """The request as the API shows it."""
    return PrivacyRequestView(
        id=request.request_id,
        type=request.kind,
        status=request.status,
        source_id=request.source_id,
        subject=request.subject,
        purposes=request.purposes,
        received_at=request.received_at,
        deadline=request.deadline,
        completed_at=request.completed_at,
        receipts=request.receipts,
        receipt=signed_receipt(request, sign),
    )


def signed_receipt(
    request: PrivacyRequest, sign: Callable[[dict[str, Any]], dict[str, Any]]
) -> dict[str, Any] | None:
    """The completion receipt, signed (Ed25519 is deterministic: the same each time)."""
    if request.status != "completed" or request.completed_at is None:
        return None
    return sign(
        {
            "type": "privacy_request",
            "request_id": request.request_id,
            "kind": request.kind,
            "source_id": request.source_id,
            "subject": request.subject,
            "received_at": _iso(request.received_at),
            "completed_at": _iso(request.completed_at),
            "stores": [
                {"store": r.store, "action": r.action, "count": r.count, "at": r.at}
                for r in request.receipts
            ],
        }
    )


def _opt_out_purposes(source: SourceView, purposes: Sequence[str]) -> list[str]:
    known = source.consent.known_purposes()
    unknown = sorted(set(purposes) - set(known))
    if unknown:
        raise PrivacyError(
            f"unknown purpose {unknown[0]!r}; known: {sorted(known)}", "unknown_purpose"
        )
    chosen = list(purposes) or sorted(GPC_REFUSED)
    if "necessary" in chosen:
        raise PrivacyError("the necessary purpose cannot be opted out of", "invalid_body")
    return chosen


def _iso(moment: datetime) -> str:
    """UTC, ISO 8601 with a Z, as receipts write times."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
