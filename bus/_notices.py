"""Change notices: what a core commit changed, told to every process over plain NATS.

Not the stream: a notice invalidates caches (a gateway's profile views, its evaluation
streams), which also expire by themselves, so it is sent at most once and never stored. Its
subject is one token (`<prefix>-changed`), outside the stream's `<prefix>.>`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog

log = structlog.get_logger("consentgate.bus")

ChangeListener = Callable[[bytes], Awaitable[None]]


class ChangeNotices:
    def __init__(self, prefix: str) -> None:
        self.subject = f"{prefix}-changed"
        self._listeners: list[ChangeListener] = []
        self._nc: Any = None

    def subscribe(self, listener: ChangeListener) -> None:
        """Hear every notice from now on (call before `start`)."""
        self._listeners.append(listener)

    async def start(self, nc: Any) -> None:
        self._nc = nc
        if self._listeners:
            await nc.subscribe(self.subject, cb=self._heard)

    async def announce(self, payload: bytes) -> None:
        """Tell every process; a notice lost while NATS is down costs only freshness."""
        if self._nc is None or not self._nc.is_connected:
            return
        try:
            await self._nc.publish(self.subject, payload)
        except Exception as exc:  # never fail the commit that was made
            log.warning("changes_not_announced", error=type(exc).__name__)

    async def _heard(self, raw: Any) -> None:
        for listener in self._listeners:
            try:
                await listener(raw.data)
            except Exception as exc:  # one listener's failure must not stop the others
                log.error("change_listener_failed", error=type(exc).__name__)
