"""Logging, decision records (and, with their issue, tracing, metrics and the audit log).

Imports neither gateway nor profiles.
"""

from observability._decisions import DecisionCounter, DecisionRecord, DecisionSink
from observability._logging import configure_logging

__all__ = ["DecisionCounter", "DecisionRecord", "DecisionSink", "configure_logging"]
