"""A cache of profile views for flag evaluations (see ViewCache)."""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import date
from typing import Any

NOT_CACHED = object()  # what `ViewCache.get` answers for a miss (None is "no profile")


class ViewCache:
    """Profile views for evaluations, so that a burst of them reads the profile once.

    The core runs in this process and says which pseudonyms each commit touched
    (`ProfileConsumer.take_touched`); those, and every pseudonym whose profile is one of them
    (an anonymous id merged into a user), are forgotten at once. Entries also expire after
    `ttl_seconds`, which bounds what a change made elsewhere (another process's CLI) can hide.
    Views are kept without consent (read live for every evaluation) and per UTC day (windows).

    A read that began before a change committed may answer the old profile: `put` keeps it only
    if neither its pseudonym nor its profile's subject was forgotten since the read began
    (`started`, from `clock()`), so a stale read never outlives the change.
    """

    FORGOTTEN_SECONDS = 10.0  # how long a forget is remembered: far beyond any read

    def __init__(self, max_entries: int = 50_000, ttl_seconds: float = 60.0) -> None:
        self._entries: OrderedDict[tuple[str, str], tuple[float, date, str | None, Any]] = (
            OrderedDict()
        )
        self._by_root: dict[tuple[str, str], set[str]] = {}
        self._forgotten: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._max = max_entries
        self._ttl = ttl_seconds

    @staticmethod
    def clock() -> float:
        return time.monotonic()

    def get(self, source_id: str, pseudonym: str, today: date) -> Any:
        """The cached view (None: no profile), or NOT_CACHED."""
        entry = self._entries.get((source_id, pseudonym))
        if entry is None:
            return NOT_CACHED
        stored_at, day, _, view = entry
        if day != today or time.monotonic() - stored_at > self._ttl:
            self._drop((source_id, pseudonym))
            return NOT_CACHED
        return view

    def put(
        self,
        source_id: str,
        pseudonym: str,
        today: date,
        root: str | None,
        view: Any,
        started: float,
    ) -> None:
        key = (source_id, pseudonym)
        for name in (pseudonym, root):
            forgotten = self._forgotten.get((source_id, name)) if name is not None else None
            if forgotten is not None and forgotten >= started:
                return  # changed while it was read: the next read gets the change
        self._drop(key)
        self._entries[key] = (time.monotonic(), today, root, view)
        if root is not None:
            self._by_root.setdefault((source_id, root), set()).add(pseudonym)
        while len(self._entries) > self._max:
            self._drop(next(iter(self._entries)))

    def forget(self, source_id: str, pseudonym: str) -> None:
        """`pseudonym`'s profile changed: its entry, and those of pseudonyms merged into it."""
        now = time.monotonic()
        self._forgotten.pop((source_id, pseudonym), None)
        self._forgotten[(source_id, pseudonym)] = now
        while self._forgotten:
            oldest_key, oldest = next(iter(self._forgotten.items()))
            if now - oldest <= self.FORGOTTEN_SECONDS:
                break
            del self._forgotten[oldest_key]
        self._drop((source_id, pseudonym))
        for alias in self._by_root.pop((source_id, pseudonym), set()):
            self._drop((source_id, alias))

    def _drop(self, key: tuple[str, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None and entry[2] is not None:
            aliases = self._by_root.get((key[0], entry[2]))
            if aliases is not None:
                aliases.discard(key[1])
                if not aliases:
                    del self._by_root[(key[0], entry[2])]
