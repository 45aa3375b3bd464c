"""What the privacy center shows: the subject's purposes with their current state and where
it came from, the history of its choices, and its requests (`gateway.routes_pages` serves it)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from consent import ConsentStore
from gateway.callers import SubjectCaller
from gateway.routes_consent import SignedReceipt, current_consent
from privacy import PrivacyRequests, PrivacyRequestView
from web import render

_THROUGH = {
    "banner": "the consent banner",
    "gpc": "Global Privacy Control",
    "tcf": "a TCF consent string",
    "consent_mode": "Google Consent Mode",
    "api": "the app",
    "import": "an import",
    "subject": "you, through the app",
    "privacy_center": "you, here",
    "opt_out": "your opt-out",
}
KINDS = {"access": "Download of my data", "erasure": "Deletion of my data"}


async def privacy_center_html(
    caller: SubjectCaller,
    csrf: str,
    consent: ConsentStore,
    privacy: PrivacyRequests,
    notice: str | None = None,
    receipt: SignedReceipt | None = None,
    submitted: str | None = None,
) -> str:
    """The privacy center's page for the caller's subject. `submitted`: the request just made;
    if it completed before the page was rendered, the page announces it, as its script does
    for one that completes after."""
    source = caller.source
    view = await current_consent(consent, source, (caller.subject,))
    definitions = source.consent.known_purposes()
    purposes = []
    for key in definitions:
        choice = view.purposes.get(key)
        state = (
            "Not decided yet: the default applies."
            if choice is None
            else f"{'Allowed' if choice.granted else 'Refused'} by "
            f"{_THROUGH.get(choice.source, choice.source)} on {_day(choice.recorded_at)}."
        )
        purposes.append(
            {
                "key": key,
                "name": key.replace("_", " ").capitalize(),
                "description": definitions[key].description,
                "granted": bool(choice and choice.granted),
                "state": state,
            }
        )
    history = sorted(
        await consent.history(source.source_id, caller.subject),
        key=lambda r: (r.recorded_at, r.record_id),
        reverse=True,
    )
    requests = [
        request_row(privacy.view(r))
        for r in await privacy.store.listing(source_id=source.source_id, subject=caller.subject)
    ]
    done = [r for r in requests if r["id"] == submitted and r["status_code"] == "completed"]
    return render(
        "privacy.html",
        source_name=source.name,
        purposes=purposes,
        csrf=csrf,
        notice=notice,
        suppressed=view.suppressed,
        receipt=None
        if receipt is None
        else {
            "key_id": receipt.key_id,
            "signature": receipt.signature,
            "json": json.dumps(receipt.receipt, indent=2, sort_keys=True),
        },
        requests=requests,
        announcement=f"{done[0]['kind_name']}: completed." if done else "",
        history=[
            {
                "at": _minute(r.recorded_at),
                "at_iso": r.recorded_at.isoformat(),
                "purpose": r.purpose.replace("_", " ").capitalize(),
                "choice": "Allowed" if r.granted else "Refused",
                "through": _THROUGH.get(r.source, r.source),
            }
            for r in history
        ],
    )


def request_row(view: PrivacyRequestView) -> dict[str, Any]:
    """A privacy request as the page (and its script) shows it."""
    return {
        "id": view.id,
        "kind_name": KINDS.get(view.type, view.type),
        "status": view.status.replace("_", " "),
        "status_code": view.status,
        "received": _minute(view.received_at),
        "received_iso": view.received_at.isoformat(),
        "deadline": _day(view.deadline),
        "deadline_iso": view.deadline.isoformat(),
        "download": f"/privacy/requests/{view.id}/export"
        if view.type == "access" and view.status == "completed"
        else None,
        "receipts": [f"{r.store}: {r.action} ({r.count})" for r in view.receipts],
    }


def _day(moment: datetime) -> str:
    return moment.strftime("%d %B %Y")


def _minute(moment: datetime) -> str:
    return moment.strftime("%d %B %Y, %H:%M UTC")
