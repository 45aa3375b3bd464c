"""What the compliance console shows, built from the stores' answers: the queue's rows and
the decisions chart (`gateway.routes_console` serves them)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from observability import BucketUnit, DecisionLog
from web import StackedBars, stacked_bars

_ACTIONS = ("forward", "strip", "drop")
WINDOWS: dict[str, tuple[timedelta, BucketUnit]] = {
    "24h": (timedelta(hours=24), "hour"),
    "14d": (timedelta(days=14), "day"),
}


def queue_row(view: Any, names: dict[str, str], now: datetime) -> dict[str, Any]:
    """A privacy request as the console's queue shows it."""
    return {
        "id": view.id,
        "type": view.type,
        "status": view.status.replace("_", " "),
        "source": names.get(view.source_id, view.source_id),
        "subject": view.subject,
        "received": minute(view.received_at),
        "deadline": minute(view.deadline),
        "deadline_iso": view.deadline.isoformat(),
        "overdue": view.deadline < now and view.status != "completed",
        "completed": minute(view.completed_at) if view.completed_at else None,
        "receipts": len(view.receipts),
    }


async def decisions_by_action(
    decision_log: DecisionLog, now: datetime, window: str
) -> tuple[StackedBars, list[dict[str, Any]]]:
    """The chart of decisions by action over the window, and the reasons' counts by action."""
    span, unit = WINDOWS[window]
    step = timedelta(hours=1) if unit == "hour" else timedelta(days=1)
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    if unit == "day":
        end = now.replace(hour=0, minute=0, second=0, microsecond=0) + step
    start = end - span
    buckets = [start + i * step for i in range(int(span / step))]
    index = {bucket: i for i, bucket in enumerate(buckets)}
    series = {action: [0] * len(buckets) for action in _ACTIONS}
    by_reason: dict[str, Counter[str]] = defaultdict(Counter)
    for row in await decision_log.counts(start, end, unit):
        i = index.get(row.bucket)
        if i is None or row.action not in series:
            continue
        series[row.action][i] += row.count
        for reason in row.reasons:
            by_reason[reason][row.action] += row.count
    labels = [b.strftime("%H:00") if unit == "hour" else b.strftime("%d %b") for b in buckets]
    chart = stacked_bars(labels, series, label_every=3 if unit == "hour" else 2)
    ranked = sorted(by_reason.items(), key=lambda item: (-item[1].total(), item[0]))
    reasons = [
        {"reason": reason, **{a: counts[a] for a in _ACTIONS}, "total": counts.total()}
        for reason, counts in ranked
    ]
    return chart, reasons


def minute(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
