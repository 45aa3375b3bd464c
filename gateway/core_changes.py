"""What a core commit changed, told to every process that serves evaluations.

A gateway caches profile views for flag evaluations and holds open evaluation streams. When the
core runs in the same process it tells them directly; when it runs in its own processes
(`serve --no-core` with `consentgate core`), the same notice travels over the bus
(`announce_changes`, plain NATS: pseudonyms only, never stored). Each notice is one
(source_id, pseudonym, segments_changed) per profile: the view is forgotten, and when the
subject's segments changed its streams refetch.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import msgspec
import structlog

from gateway.evaluation_events import EvaluationEvents
from personalization import ViewCache

log = structlog.get_logger("consentgate.core_changes")

Change = tuple[str, str, bool]  # (source_id, pseudonym, whether its segments changed)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(list[tuple[str, str, bool]])


def collect(
    touched: Iterable[tuple[str, str]], segments_changed: Iterable[tuple[str, str]]
) -> list[Change]:
    changes = dict.fromkeys(touched, False)
    for source_id, subject in segments_changed:
        changes[(source_id, subject)] = True
    return [(source_id, pseudonym, flag) for (source_id, pseudonym), flag in changes.items()]


def apply(changes: Iterable[Change], views: ViewCache, streams: EvaluationEvents) -> None:
    for source_id, pseudonym, segments_changed in changes:
        views.forget(source_id, pseudonym)
        if segments_changed:
            streams.changed(source_id, [pseudonym])


async def announce(bus: Any, changes: list[Change]) -> None:
    """Tell the other processes (a bus that cannot, the embedded one, has no other)."""
    announce_changes = getattr(bus, "announce_changes", None)
    if changes and announce_changes is not None:
        await announce_changes(_encoder.encode(changes))


def listener(views: ViewCache, streams: EvaluationEvents) -> Callable[[bytes], Awaitable[None]]:
    async def heard(payload: bytes) -> None:
        try:
            changes = _decoder.decode(payload)
        except msgspec.DecodeError:
            log.warning("core_changes_undecodable", size=len(payload))
            return
        apply(changes, views, streams)

    return heard
