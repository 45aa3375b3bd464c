"""The units a process committed, held in memory for its own handler (`bus._outbox`), so that
the dispatcher need not read back what it has just written. Bounded: past `limit` messages
(the handler lags) it drops them all and says so, and the dispatcher reads the table in order
until it has caught up, so that a backlog costs no memory."""

from __future__ import annotations

import collections

from bus.envelope import BusMessage

Unit = tuple[int, list[BusMessage]]  # (unit id, its messages)


class HeldUnits:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._units: collections.deque[Unit] = collections.deque()
        self._messages = 0
        self.lagging = False  # past the limit: nothing is held until the table has caught up

    def __bool__(self) -> bool:
        return bool(self._units)

    @property
    def messages(self) -> int:
        return self._messages

    def ids(self) -> set[int]:
        return {unit_id for unit_id, _ in self._units}

    def hold(self, unit_ids: list[int], units: list[list[BusMessage]]) -> bool:
        """Hold a commit's units; False when the handler lags too far (nothing is held now,
        the units dropped included: the table has them)."""
        count = sum(len(unit) for unit in units)
        if self.lagging or self._messages + count > self._limit:
            self.lagging = True
            self._units.clear()
            self._messages = 0
            return False
        self._units.extend(zip(unit_ids, units, strict=True))
        self._messages += count
        return True

    def take(self, batch_size: int) -> list[Unit]:
        """The oldest units, up to `batch_size` messages (one unit at least)."""
        units = [self._units.popleft()]
        taken = len(units[0][1])
        while self._units and taken + len(self._units[0][1]) <= batch_size:
            unit = self._units.popleft()
            units.append(unit)
            taken += len(unit[1])
        self._messages -= taken
        return units

    def put_back(self, units: list[Unit]) -> None:
        """Units taken and not handled (the transport is down): first again."""
        self._units.extendleft(reversed(units))
        self._messages += sum(len(unit) for _, unit in units)
