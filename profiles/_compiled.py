"""Rules compiled once into closures: the same answers as `profiles._rules.evaluate` (the
oracle of `tests/test_rules.py`'s differential test), without re-reading the rule's dict on
every event.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from profiles._computed import ComputedView
from profiles._rules import _MISSING, ProfileView, _as_time, lookup

Predicate = Callable[[ProfileView], bool]
Comparison = Callable[[Any], bool]

_ORDERING: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "neq": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def compile_rule(rule: Mapping[str, Any]) -> Predicate:
    """A predicate over a ProfileView equal to `evaluate(rule, view)` for a valid rule."""
    if "all" in rule:
        return _every(tuple(compile_rule(child) for child in rule["all"]))
    if "any" in rule:
        return _some(tuple(compile_rule(child) for child in rule["any"]))
    if "not" in rule:
        inner = compile_rule(rule["not"])
        return lambda view: not inner(view)
    if "trait" in rule:
        name, compare = rule["trait"], _comparison(rule)
        return lambda view: compare(view.traits.get(name, _MISSING))
    if "computed" in rule:
        return _computed(rule["computed"], _comparison(rule))
    if "event" in rule:
        name = rule["event"]
        count = _comparison(rule.get("count", {"op": "gte", "value": 1}))
        within = rule.get("within_days")
        if within is None:
            return lambda view: count(view.event_counts.get(name, 0))
        return lambda view: count(_count_within(view, name, within))
    if "segment" in rule:
        key = rule["segment"]
        return lambda view: key in view.segments
    purpose = rule["consent"]
    return lambda view: purpose in view.consent


# `all`/`any` as loops: a generator given to all() costs more than the parts it runs
def _every(parts: tuple[Predicate, ...]) -> Predicate:
    def every(view: ProfileView) -> bool:
        for part in parts:  # noqa: SIM110
            if not part(view):
                return False
        return True

    return every


def _some(parts: tuple[Predicate, ...]) -> Predicate:
    def some(view: ProfileView) -> bool:
        for part in parts:  # noqa: SIM110
            if part(view):
                return True
        return False

    return some


def _computed(path: str, compare: Comparison) -> Predicate:
    def holds(view: ProfileView) -> bool:
        computed = view.computed
        if type(computed) is ComputedView:
            return compare(computed.path(path))
        return compare(lookup(computed, path))

    return holds


def _count_within(view: ProfileView, name: str, within: int) -> int:
    days = view.day_counts.get(name)
    if not days:
        return 0
    first = _first_day(view.today, within)
    total = 0
    for day, count in days.items():  # ISO days sort as dates; a loop costs less than sum()
        if day >= first:
            total += count
    return total


@functools.lru_cache(maxsize=256)
def _first_day(today: date, within: int) -> str:
    return (today - timedelta(days=within - 1)).isoformat()


def _comparison(rule: Mapping[str, Any]) -> Comparison:
    op: str = rule["op"]
    expected: Any = rule.get("value")
    if op == "exists":
        return lambda actual: actual is not _MISSING and actual is not None
    missing = op == "neq"  # what a missing value (or None) answers
    if op == "in":
        times = [_as_time(v) for v in expected]

        def member(actual: Any) -> bool:
            if actual is _MISSING or actual is None:
                return missing
            try:
                return bool(actual in (times if isinstance(actual, datetime) else expected))
            except TypeError:
                return False

        return member
    if op == "contains":

        def contains(actual: Any) -> bool:
            if actual is _MISSING or actual is None:
                return missing
            try:
                return isinstance(actual, str | list | dict) and expected in actual
            except TypeError:
                return False

        return contains
    ordering = _ORDERING[op]
    as_time = _as_time(expected)
    if as_time is expected:  # not a time: a computed time compares with it as with any value

        def compare_value(actual: Any) -> bool:
            if actual is _MISSING or actual is None:
                return missing
            try:
                return bool(ordering(actual, expected))
            except TypeError:  # a type mismatch (a number against a string) matches nothing
                return False

        return compare_value

    def compare(actual: Any) -> bool:
        if actual is _MISSING or actual is None:
            return missing
        try:
            return bool(ordering(actual, as_time if isinstance(actual, datetime) else expected))
        except TypeError:  # a type mismatch (a number against a string) matches nothing
            return False

    return compare
