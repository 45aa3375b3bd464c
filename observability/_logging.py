"""structlog configuration: JSON lines (or console), ISO timestamps, trace ids, a PII guard.

No bodies and no keys are ever logged by our code; as defence in depth, every string value a
PII detector flags, or that holds a raw identifier of the request, is scrubbed before a line
is written. Lines written while serving a request carry its `request_id`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from opentelemetry import trace

from observability._request import add_request_id, current_scrubber

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def add_trace_context(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """trace_id and span_id of the current span, when there is one."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = format(context.trace_id, "032x")
        event_dict["span_id"] = format(context.span_id, "016x")
    return event_dict


def guard_pii(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Scrub detected PII and the request's raw identifiers out of every string value."""
    scrub = current_scrubber()
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = scrub.text(value)
        elif isinstance(value, list | tuple | dict):
            event_dict[key] = scrub.value(value)
    return event_dict


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """Our lines and every library's (the OTLP exporter's retries, uvicorn's, alembic's) as
    one stream: the same renderer, timestamps, trace ids and PII guard for all."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_request_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_context,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, guard_pii, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                guard_pii,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(_LEVELS[level])
    logging.getLogger("alembic").setLevel(max(_LEVELS[level], logging.WARNING))
