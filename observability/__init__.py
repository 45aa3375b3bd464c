"""Logging, tracing, metrics, decision records, the decision log and the audit log.

Imports neither gateway nor profiles.
"""

from observability._audit import AuditLog, Verification, canonical, checkpoint_message
from observability._decision_log import (
    DECISIONS_SUBJECT,
    BucketUnit,
    DecisionCount,
    DecisionLog,
    DecisionQuery,
    decisions_message,
    decode_cursor,
    encode_cursor,
)
from observability._decisions import DecisionRecord
from observability._logging import configure_logging
from observability._merkle import leaf_hash, verify_inclusion
from observability._metrics import METRIC_NAMES, Metrics, render_prometheus
from observability._request import (
    IDENTIFIER_PLACEHOLDER,
    RequestScope,
    current_request_id,
    current_scrubber,
    remember_raw_identifiers,
    request_id_from,
    request_scope,
)
from observability._tables import metadata
from observability._tracing import (
    PiiGuardProcessor,
    create_tracer_provider,
    scrub_attributes,
    server_span,
    trace_headers,
)

__all__ = [
    "DECISIONS_SUBJECT",
    "IDENTIFIER_PLACEHOLDER",
    "METRIC_NAMES",
    "AuditLog",
    "BucketUnit",
    "DecisionCount",
    "DecisionLog",
    "DecisionQuery",
    "DecisionRecord",
    "Metrics",
    "PiiGuardProcessor",
    "RequestScope",
    "Verification",
    "canonical",
    "checkpoint_message",
    "configure_logging",
    "create_tracer_provider",
    "current_request_id",
    "current_scrubber",
    "decisions_message",
    "decode_cursor",
    "encode_cursor",
    "leaf_hash",
    "metadata",
    "remember_raw_identifiers",
    "render_prometheus",
    "request_id_from",
    "request_scope",
    "scrub_attributes",
    "server_span",
    "trace_headers",
    "verify_inclusion",
]
