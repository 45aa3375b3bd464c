"""Computed traits kept as each event applies: sessions, onboarding flows, platform and device;
and the `computed` view a profile shows and rules read.

Every update here is a join (commutative, associative, idempotent on the same event), so a
profile is the same whatever order its events arrive in, and two profiles merge the same way.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from profiles._rules import _MISSING, lookup
from profiles._state import (
    MAX_FLOW_STEPS,
    MAX_FLOWS,
    MAX_SESSIONS_KEPT,
    Accumulated,
    FlowState,
    ProfileState,
    Stamped,
    clock_time,
)

WINDOWS = {"1d": 1, "7d": 7, "30d": 30}
_NAME_MAX = 100


def add_session(acc: Accumulated, moment: float, gap: float) -> None:
    """Count activity at `moment`: it extends, starts or joins sessions (`gap` seconds of
    inactivity end one)."""
    _insert_interval(acc, (moment, moment), gap)


def _insert_interval(acc: Accumulated, interval: tuple[float, float], gap: float) -> None:
    sessions = acc.sessions
    start, end = interval
    # the first kept interval that could touch [start, end]: the last one starting before it
    index = max(bisect_right(sessions, (start, float("inf"))) - 1, 0)
    while index < len(sessions) and sessions[index][1] + gap < start:
        index += 1
    last = index
    while last < len(sessions) and sessions[last][0] - gap <= end:
        start = min(start, sessions[last][0])
        end = max(end, sessions[last][1])
        last += 1
    sessions[index:last] = [(start, end)]
    excess = len(sessions) - MAX_SESSIONS_KEPT
    if excess > 0:
        del sessions[:excess]
        acc.sessions_folded += excess


def merge_sessions(into: Accumulated, other: Accumulated, gap: float) -> None:
    into.sessions_folded += other.sessions_folded
    for interval in other.sessions:
        _insert_interval(into, interval, gap)


def later(current: Stamped | None, candidate: Stamped | None) -> Stamped | None:
    """The value with the later clock."""
    if candidate is None:
        return current
    if current is None or candidate.at > current.at:
        return candidate
    return current


def record_flow_step(acc: Accumulated, properties: Mapping[str, Any], stamp: str) -> bool:
    """A track event with string `flow` and `step` properties marks that step of that flow
    done; whether what the flow shows changed (a new step, an earlier time, the last step)."""
    flow, step = properties.get("flow"), properties.get("step")
    if not (isinstance(flow, str) and isinstance(step, str) and flow and step):
        return False
    flow, step = flow[:_NAME_MAX], step[:_NAME_MAX]
    state = acc.flows.get(flow)
    if state is None:
        if len(acc.flows) >= MAX_FLOWS:
            return False
        state = acc.flows[flow] = FlowState()
    before = (state.done.get(step), state.last.value if state.last else None)
    _merge_flow(state, FlowState(done={step: stamp}, last=Stamped(stamp, step)))
    return before != (state.done.get(step), state.last.value if state.last else None)


def _merge_flow(into: FlowState, other: FlowState) -> None:
    for step, stamp in other.done.items():
        known = into.done.get(step)
        if known is None and len(into.done) >= MAX_FLOW_STEPS:
            continue
        into.done[step] = stamp if known is None else min(known, stamp)
    into.last = later(into.last, other.last)


def merge_flows(into: Accumulated, other: Accumulated) -> None:
    for flow, state in other.flows.items():
        mine = into.flows.get(flow)
        if mine is None:
            if len(into.flows) >= MAX_FLOWS:
                continue
            mine = into.flows[flow] = FlowState()
        _merge_flow(mine, state)


_WEB_LIBRARIES = ("analytics.js", "analytics-next", "javascript", "rudderlabs javascript")
_SERVER_LIBRARIES = (
    "analytics-python", "analytics-node", "analytics-ruby", "analytics-go", "analytics-java",
    "analytics-php", "analytics-dotnet", "rudder-sdk-", "rudderanalytics-", "python", "node",
)  # fmt: skip
_OS_PLATFORMS = {
    "ios": "ios", "ipados": "ios", "iphone os": "ios", "android": "android",
    "mac os x": "desktop", "macos": "desktop", "windows": "desktop", "linux": "desktop",
    "chrome os": "desktop",
}  # fmt: skip


def platform_of(context: Mapping[str, Any]) -> str | None:
    """web, ios, android, desktop or server, from the scrubbed context; None when unknown."""
    library = _name(context.get("library"), "name")
    if library and library.startswith(_WEB_LIBRARIES):
        return "web"
    agent = context.get("userAgent")
    if isinstance(agent, str) and agent != "bot" and " " in agent:
        return "web"  # a browser family and version
    system = _name(context.get("os"), "name")
    if system in _OS_PLATFORMS:
        return _OS_PLATFORMS[system]
    if library and library.startswith(_SERVER_LIBRARIES):
        return "server"
    return None


def device_of(context: Mapping[str, Any], platform: str | None) -> str | None:
    """mobile, tablet, desktop or tv; None when unknown or a server."""
    device_type = _name(context.get("device"), "type")
    model = _name(context.get("device"), "model")
    if device_type in ("tablet", "ipad") or (model and model.startswith("ipad")):
        return "tablet"
    if device_type in ("tv", "smarttv", "tvos", "androidtv"):
        return "tv"
    if platform in ("ios", "android") or device_type in ("ios", "android", "mobile", "phone"):
        return "mobile"
    agent = context.get("userAgent")
    if isinstance(agent, str):
        if agent.endswith(("(iOS)", "(Android)")):
            return "mobile"
        if agent.endswith(("(macOS)", "(Windows)", "(Linux)", "(ChromeOS)")):
            return "desktop"
    if platform == "desktop":
        return "desktop"
    return None


def _name(section: Any, field: str) -> str | None:
    if isinstance(section, Mapping):
        value = section.get(field)
        if isinstance(value, str) and value:
            return value.lower()
    return None


def window_counts(day_counts: Mapping[str, Mapping[str, int]], today: date) -> dict[str, Any]:
    """Per window (1, 7, 30 days, today included), the count of each event name in it."""
    windows: dict[str, dict[str, int]] = {label: {} for label in WINDOWS}
    for label, days in WINDOWS.items():
        oldest = (today - timedelta(days=days - 1)).isoformat()
        counts = windows[label]
        for name, by_day in day_counts.items():
            total = sum(n for day, n in by_day.items() if day >= oldest)
            if total:
                counts[name] = total
    return dict(windows)


class ComputedView(Mapping[str, Any]):
    """What `computed` shows of a profile, and what `{"computed": …}` rules read; each field
    is computed when first read (a segment reads few of them, and runs on every event)."""

    __slots__ = ("_declared", "_done", "_paths", "_state", "_today")
    FIELDS = (
        "first_seen", "last_seen", "event_counts", "event_last", "sessions",
        "last_session_start", "flows", "platform", "device", "windows", "custom", "items",
    )  # fmt: skip

    def __init__(
        self,
        state: ProfileState,
        today: date,
        custom: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
    ) -> None:
        self._state, self._today, self._declared = state, today, custom
        self._done: dict[str, Any] = {}
        self._paths: dict[str, Any] = {}  # what `path` answered

    def __getitem__(self, name: str) -> Any:
        value = self.field(name, _MISSING)
        if value is _MISSING:
            raise KeyError(name)
        return value

    def field(self, name: str, missing: Any) -> Any:
        """`self[name]`, or `missing` for a name that is no field (the compiled rules' path)."""
        done = self._done
        if name in done:
            return done[name]
        compute = _COMPUTE.get(name)
        if compute is None:
            return missing
        value = done[name] = compute(self)
        return value

    def path(self, path: str) -> Any:
        """`lookup(self, path)`: a field ("platform") or a path into one
        ("flows.onboarding.last_step"), `_MISSING` when absent. Kept once read: the rules of
        a profile often read the same paths."""
        paths = self._paths
        if path in paths:
            return paths[path]
        # a field's name holds no dot: the path's head is the field, or nothing is
        head, dot, rest = path.partition(".")
        value = self.field(head, _MISSING)
        if not dot:
            return value  # `field` keeps it
        if value is not _MISSING:
            value = lookup(value, rest) if isinstance(value, Mapping) else _MISSING
        paths[path] = value
        return value

    def __contains__(self, name: object) -> bool:
        return name in _FIELD_SET

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in _FIELD_SET else default

    def __iter__(self) -> Iterator[str]:
        return iter(self.FIELDS)

    def __len__(self) -> int:
        return len(self.FIELDS)

    def _first_seen(self) -> datetime:
        return self._state.first_seen

    def _last_seen(self) -> datetime:
        return self._state.last_seen

    def _event_counts(self) -> dict[str, int]:
        return self._state.event_counts

    def _event_last(self) -> dict[str, datetime]:
        return {name: _parse(at) for name, at in self._state.event_last.items()}

    def _sessions(self) -> int:
        acc = self._state.accumulated
        return acc.sessions_folded + len(acc.sessions)

    def _last_session_start(self) -> datetime | None:
        sessions = self._state.accumulated.sessions
        return datetime.fromtimestamp(sessions[-1][0], UTC) if sessions else None

    def _flows(self) -> dict[str, Any]:
        return {
            flow: {
                "done": sorted(state.done, key=state.done.__getitem__),
                "last_step": state.last.value if state.last else None,
            }
            for flow, state in self._state.accumulated.flows.items()
        }

    def _platform(self) -> str | None:
        platform = self._state.accumulated.platform
        return platform.value if platform else None

    def _device(self) -> str | None:
        device = self._state.accumulated.device
        return device.value if device else None

    def _windows(self) -> dict[str, Any]:
        return window_counts(self._state.day_counts, self._today)

    def _items(self) -> dict[str, dict[str, int]]:
        """Interaction kind ("event\x00property") -> item -> count (what recommendations use)."""
        return self._state.accumulated.items

    def _custom(self) -> dict[str, Any]:
        declared = self._declared
        return dict(declared() if callable(declared) else declared)


_FIELD_SET = frozenset(ComputedView.FIELDS)
_COMPUTE: dict[str, Callable[[ComputedView], Any]] = {
    name: getattr(ComputedView, f"_{name}") for name in ComputedView.FIELDS
}


def computed_view(state: ProfileState, today: date, custom: Mapping[str, Any]) -> dict[str, Any]:
    """Every computed field of a profile (what `GET /v1/profiles` shows)."""
    return dict(ComputedView(state, today, custom))


def _parse(iso: str) -> datetime:
    return datetime.fromisoformat(clock_time(iso).replace("Z", "+00:00"))
