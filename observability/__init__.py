"""Logging, tracing, metrics, decision records, the decision log and the audit log.

Imports neither gateway nor profiles.
"""

from observability._audit import AuditLog, Verification, canonical, checkpoint_message
from observability._decision_log import (
    DECISIONS_SUBJECT,
    DecisionLog,
    DecisionQuery,
    decisions_message,
)
from observability._decisions import DecisionCounter, DecisionRecord, DecisionSink
from observability._logging import configure_logging
from observability._metrics import METRIC_NAMES, Metrics, render_prometheus
from observability._tables import metadata
from observability._tracing import PiiGuardExporter, create_tracer_provider, scrub_attributes

__all__ = [
    "DECISIONS_SUBJECT",
    "METRIC_NAMES",
    "AuditLog",
    "DecisionCounter",
    "DecisionLog",
    "DecisionQuery",
    "DecisionRecord",
    "DecisionSink",
    "Metrics",
    "PiiGuardExporter",
    "Verification",
    "canonical",
    "checkpoint_message",
    "configure_logging",
    "create_tracer_provider",
    "decisions_message",
    "metadata",
    "render_prometheus",
    "scrub_attributes",
]
