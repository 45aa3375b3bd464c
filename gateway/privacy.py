"""Privacy requests: erasure, access and opt-out, each with a deadline and a receipt per store.

An erasure, in order:
1. `consent`: the subject is suppressed at once (a suppression record for each of its
   pseudonyms); from the next event on, the gateway refuses everything for it;
2. `keys`: its data keys are shredded: every ciphertext under them, in the outbox, on the
   bus, in backups and exports, and in the audit log, is noise from now on;
3. `decisions`: its decision records are deleted;
   `dead_letters`: so are its events among the bus's dead letters;
4. `profiles`: an `erase` message goes to the core on the bus, after every event already
   accepted; the core deletes the profiles and leaves a receipt (a tombstone that also skips
   events accepted before the erasure and delivered after it). When that receipt is in, the
   decision log is swept once more and the request completes.

Every step is written to the audit log. A request interrupted by a crash is resumed by the
background task (`advance`); each step can run twice without harm. Consent records stay:
pseudonymous, they are the proof of what was decided and they carry the suppression.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import structlog

from anonymization import decrypt_fields
from bus import Erase, OptOut, as_utc, encode_control, erase_dead_letters
from consent import GPC_REFUSED, SUPPRESSION, merge_states, new_records
from gateway import privacy_store
from gateway.errors import BadRequest
from gateway.receipts import ReceiptSigner, iso_utc
from gateway.runtime import Runtime
from gateway.sources import Source
from profiles import erasure_receipts, read_profile

log = structlog.get_logger("consentgate.privacy")

RequestKind = Literal["erasure", "access", "opt_out"]
REQUEST_KINDS: tuple[str, ...] = ("erasure", "access", "opt_out")
Status = Literal["received", "in_progress", "completed"]
# GDPR art. 12(3): one month; CCPA §1798.130: 45 days. Sources with no jurisdiction get a month.
DEADLINE_DAYS = {"gdpr": 30, "ccpa": 45, "none": 30}


def new_request_id() -> str:
    return "pr_" + secrets.token_hex(12)


async def submit(
    runtime: Runtime,
    source: Source,
    kind: RequestKind,
    subjects: Sequence[str],
    requested_by: str,
    purposes: Sequence[str] = (),
) -> dict[str, Any]:
    """Record the request, run it as far as it goes now, and return it."""
    now = datetime.now(UTC)
    if kind == "opt_out":
        purposes = _opt_out_purposes(source, purposes)
    row: dict[str, Any] = {
        "request_id": new_request_id(),
        "source_id": source.source_id,
        "kind": kind,
        "status": "received",
        "subject": subjects[0],
        "subjects": list(dict.fromkeys(subjects)),
        "purposes": list(purposes),
        "requested_by": requested_by,
        "received_at": now,
        "deadline": now + timedelta(days=DEADLINE_DAYS.get(source.jurisdiction, 30)),
        "completed_at": None,
        "claimed_until": None,
        "receipts": [],
    }
    await privacy_store.insert(runtime.database, row)
    await runtime.trail.privacy_request_received(source, row)
    try:
        await _advance_one(runtime, source, row["request_id"])
    except Exception as exc:  # recorded, so accepted: the background task will resume it
        log.error(
            "privacy_request_stalled",
            privacy_request_id=row["request_id"],
            error=type(exc).__name__,
        )
    return await privacy_store.get(runtime.database, row["request_id"]) or row


def _opt_out_purposes(source: Source, purposes: Sequence[str]) -> list[str]:
    known = source.consent.known_purposes()
    unknown = sorted(set(purposes) - set(known))
    if unknown:
        raise BadRequest(
            f"unknown purpose {unknown[0]!r}; known: {sorted(known)}", code="unknown_purpose"
        )
    chosen = list(purposes) or sorted(GPC_REFUSED)
    if "necessary" in chosen:
        raise BadRequest("the necessary purpose cannot be opted out of", code="invalid_body")
    return chosen


async def advance(runtime: Runtime) -> int:
    """Resume every open request (after a crash, or while the core catches up); returns how
    many are still open."""
    pending = await privacy_store.open_ids(runtime.database)
    for request_id, source_id in pending:
        source = await runtime.sources.by_id(source_id)
        if source is not None:
            await _advance_one(runtime, source, request_id)
    rows = await privacy_store.listing(runtime.database, limit=1_000_000, open_only=True)
    _observe(runtime, rows)
    return len(rows)


def _observe(runtime: Runtime, open_rows: list[dict[str, Any]]) -> None:
    runtime.metrics.privacy_open = {
        kind: sum(1 for r in open_rows if r["kind"] == kind) for kind in REQUEST_KINDS
    }
    now = datetime.now(UTC)
    runtime.metrics.privacy_next_deadline_seconds = min(
        ((as_utc(r["deadline"]) - now).total_seconds() for r in open_rows), default=None
    )


async def _advance_one(runtime: Runtime, source: Source, request_id: str) -> None:
    """Take the request as far as it goes now, never together with another advance of it:
    one at a time in this process, and under a lease in the database against other
    replicas (a lease outlives a crash only by a minute)."""
    async with runtime.privacy_lock:
        lease = await privacy_store.claim(runtime.database, request_id)
        if lease is None:
            return
        try:
            row = await privacy_store.get(runtime.database, request_id)
            if row is None:
                return
            if row["status"] == "received":
                await _start(runtime, source, row)
            if row["status"] == "in_progress" and row["kind"] == "erasure":
                await _finish_erasure(runtime, source, row)
        finally:
            await privacy_store.release(runtime.database, request_id, lease)


async def _start(runtime: Runtime, source: Source, row: dict[str, Any]) -> None:
    """The request's own steps; a step already receipted (before a crash) is not redone."""
    kind = row["kind"]
    subjects: list[str] = row["subjects"]
    done = {receipt["store"] for receipt in row["receipts"]}
    if kind == "erasure":
        if "consent" not in done:
            suppressed = await _withdraw(runtime, source, row, [SUPPRESSION])
            await _step(runtime, row, "consent", "suppressed", suppressed)
        if "keys" not in done:
            shredded = 0
            for subject in subjects:
                shredded += await runtime.keyring.shred(source.source_id, subject)
            await _step(runtime, row, "keys", "shredded", shredded)
        if "decisions" not in done:
            deleted = await runtime.decision_log.erase(source.source_id, subjects)
            await _step(runtime, row, "decisions", "deleted", deleted)
        if "dead_letters" not in done:
            deleted = await erase_dead_letters(runtime.database, source.source_id, subjects)
            await _step(runtime, row, "dead_letters", "deleted", deleted)
        erase = Erase(
            source_id=source.source_id,
            subject=subjects[0],
            request_id=row["request_id"],
            at=datetime.now(UTC),
            others=tuple(subjects[1:]),
        )
        await runtime.bus.publish([encode_control(erase, f"{row['request_id']}:erase")])
        await _set_status(runtime, row, "in_progress")
    elif kind == "opt_out":
        if "consent" not in done:
            withdrawn = await _withdraw(runtime, source, row, row["purposes"])
            message = OptOut(
                source_id=source.source_id,
                subject=subjects[0],
                purposes=tuple(row["purposes"]),
                at=datetime.now(UTC),
            )
            await runtime.bus.publish([encode_control(message, f"{row['request_id']}:opt_out")])
            await _step(runtime, row, "consent", "withdrawn", withdrawn)
        await _complete(runtime, row)
    else:  # access: the export is assembled when it is fetched, from the stores as they are
        if "export" not in done:
            await _step(runtime, row, "export", "ready", len(subjects))
        await _complete(runtime, row)


async def _finish_erasure(runtime: Runtime, source: Source, row: dict[str, Any]) -> None:
    receipts = await erasure_receipts(runtime.database, source.source_id, row["request_id"])
    if not receipts:
        return  # the core has not applied the erase message yet
    await _step(runtime, row, "profiles", "deleted", sum(r.profiles_deleted for r in receipts))
    # decisions of events accepted before the erasure may have landed since the first sweep
    late = await runtime.decision_log.erase(source.source_id, row["subjects"])
    if late:
        await _step(runtime, row, "decisions", "deleted_late", late)
    await _complete(runtime, row)


async def _withdraw(
    runtime: Runtime, source: Source, row: dict[str, Any], purposes: Sequence[str]
) -> int:
    """Refusal records for `purposes`, for every pseudonym of the subject."""
    appended = 0
    for subject in row["subjects"]:  # one append per subject, as the store requires
        records = new_records(
            source_id=source.source_id,
            subject=subject,
            choices=dict.fromkeys(purposes, False),
            source="privacy_request",
            policy_version=row["request_id"],
            jurisdiction=source.jurisdiction,
            at=datetime.now(UTC),
        )
        await runtime.consent.append(records)
        appended += len(records)
    return appended


async def _step(runtime: Runtime, row: dict[str, Any], store: str, action: str, count: int) -> None:
    receipt = {"store": store, "action": action, "count": count, "at": iso_utc(datetime.now(UTC))}
    row["receipts"] = [*row["receipts"], receipt]
    await privacy_store.update_row(runtime.database, row["request_id"], receipts=row["receipts"])
    await runtime.trail.privacy_request_step(row, receipt)


async def _set_status(runtime: Runtime, row: dict[str, Any], status: Status) -> None:
    values: dict[str, Any] = {"status": status}
    if status == "completed":
        values["completed_at"] = datetime.now(UTC)
        values["claimed_until"] = None  # in the same commit: a completed request holds no lease
    await privacy_store.update_row(runtime.database, row["request_id"], **values)
    row.update(values)


async def _complete(runtime: Runtime, row: dict[str, Any]) -> None:
    await _set_status(runtime, row, "completed")
    await runtime.trail.privacy_request_completed(row, signed_receipt(runtime.receipts, row))
    log.info("privacy_request_completed", privacy_request_id=row["request_id"], kind=row["kind"])


def signed_receipt(signer: ReceiptSigner, row: dict[str, Any]) -> dict[str, Any] | None:
    """The completion receipt, signed (Ed25519 is deterministic: the same each time)."""
    if row["status"] != "completed":
        return None
    return signer.sign(
        {
            "type": "privacy_request",
            "request_id": row["request_id"],
            "kind": row["kind"],
            "source_id": row["source_id"],
            "subject": row["subject"],
            "received_at": iso_utc(row["received_at"]),
            "completed_at": iso_utc(row["completed_at"]),
            "stores": row["receipts"],
        }
    )


def public_view(signer: ReceiptSigner, row: dict[str, Any]) -> dict[str, Any]:
    """The request as the API shows it."""
    return {
        "id": row["request_id"],
        "type": row["kind"],
        "status": row["status"],
        "source_id": row["source_id"],
        "subject": row["subject"],
        "purposes": row["purposes"],
        "received_at": as_utc(row["received_at"]),
        "deadline": as_utc(row["deadline"]),
        "completed_at": as_utc(row["completed_at"]) if row["completed_at"] else None,
        "receipts": row["receipts"],
        "receipt": signed_receipt(signer, row),
    }


async def export(runtime: Runtime, source: Source, row: dict[str, Any]) -> dict[str, Any]:
    """An access request's export: the subject's own data in every store, decrypted."""
    subjects: list[str] = row["subjects"]
    states = await runtime.consent.states(source.source_id, subjects)
    history = [r for s in subjects for r in await runtime.consent.history(source.source_id, s)]
    history.sort(key=lambda r: (r.recorded_at, r.record_id))
    profiles = []
    for subject in subjects:
        profile = await read_profile(runtime.database, source.source_id, subject)
        if profile is not None:
            key = await runtime.keyring.existing_subject_key(source.source_id, subject)
            traits = decrypt_fields(profile.traits, key, source.source_id, subject, "traits")
            profiles.append({"subject": subject, "traits": traits, "computed": profile.computed})
    decisions = await runtime.decision_log.for_subjects(source.source_id, subjects)
    requests = [
        public_view(runtime.receipts, r)
        for r in await privacy_store.listing(
            runtime.database, source_id=source.source_id, subject=subjects[0]
        )
    ]
    return {
        "request_id": row["request_id"],
        "source_id": source.source_id,
        "generated_at": datetime.now(UTC),
        "subject": subjects[0],
        "consent": {
            "purposes": {
                purpose: state
                for purpose, state in merge_states(states.get(s, {}) for s in subjects).items()
                if purpose != SUPPRESSION
            },
            "history": history,
        },
        "profiles": profiles,
        "decisions": decisions,
        "privacy_requests": requests,
    }
