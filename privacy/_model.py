"""A privacy request as the package works with it, and as the API shows it."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, Literal

import msgspec

RequestKind = Literal["erasure", "access", "opt_out"]
REQUEST_KINDS: tuple[RequestKind, ...] = ("erasure", "access", "opt_out")
Status = Literal["received", "in_progress", "completed"]
STATUSES: tuple[Status, ...] = ("received", "in_progress", "completed")
# GDPR art. 12(3): one month; CCPA §1798.130: 45 days. Sources with no jurisdiction get a month.
DEADLINE_DAYS = {"gdpr": 30, "ccpa": 45, "none": 30}


def new_request_id() -> str:
    return "pr_" + secrets.token_hex(12)


class StoreReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """What one store did for the request: `{"store": "keys", "action": "shredded", …}`."""

    store: str
    action: str
    count: int
    at: str


class PrivacyRequest(msgspec.Struct, kw_only=True):
    request_id: str
    source_id: str
    kind: RequestKind
    status: Status
    subject: str  # the current pseudonym; `subjects` adds older versions' and anonymous ids'
    subjects: list[str]
    purposes: list[str]
    requested_by: str
    received_at: datetime
    deadline: datetime
    completed_at: datetime | None = None
    receipts: list[StoreReceipt] = []

    def done(self) -> set[str]:
        """The stores that already gave their receipt (a resumed request skips them)."""
        return {receipt.store for receipt in self.receipts}


class PrivacyRequestView(msgspec.Struct, frozen=True, kw_only=True):
    """A request as the API shows it, with its signed receipt once complete."""

    id: str
    type: RequestKind
    status: Status
    source_id: str
    subject: str
    purposes: list[str]
    received_at: datetime
    deadline: datetime
    completed_at: datetime | None
    receipts: list[StoreReceipt]
    receipt: dict[str, Any] | None  # {"receipt", "signature", "key_id"}
