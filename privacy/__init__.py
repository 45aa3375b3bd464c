"""Data-subject requests: erasure, access/export and opt-out, with deadlines, a receipt per
store and a signed completion receipt; and the suppression list.

The package takes what it works on (the consent store, the key shredder, the decision log, the
bus, the audit trail, the core's erasure receipts) as arguments: it imports neither the edge
nor the core.
"""

from privacy._export import PrivacyExport, build_export
from privacy._model import (
    DEADLINE_DAYS,
    REQUEST_KINDS,
    STATUSES,
    PrivacyRequest,
    PrivacyRequestView,
    RequestKind,
    Status,
    StoreReceipt,
)
from privacy._process import PrivacyError, PrivacyRequests, SourceView, request_view
from privacy._store import RequestStore
from privacy._suppression import NotSuppressed, Suppression, Suppressions
from privacy._tables import metadata

__all__ = [
    "DEADLINE_DAYS",
    "REQUEST_KINDS",
    "STATUSES",
    "NotSuppressed",
    "PrivacyError",
    "PrivacyExport",
    "PrivacyRequest",
    "PrivacyRequestView",
    "PrivacyRequests",
    "RequestKind",
    "RequestStore",
    "SourceView",
    "Status",
    "StoreReceipt",
    "Suppression",
    "Suppressions",
    "build_export",
    "metadata",
    "request_view",
]
