"""Computed traits a source declares (Segment Engage's kinds): the sum, min, max or average of a
numeric property, its most frequent value, its first and last value, and a bounded unique list.

    {"computed_traits": [
        {"name": "total_spent", "kind": "sum", "event": "Order Completed", "property": "revenue"},
        {"name": "favourite_feature", "kind": "most_frequent", "event": "Feature Used",
         "property": "feature"},
        {"name": "plans_seen", "kind": "unique", "event": "Plan Viewed", "property": "plan",
         "limit": 10}]}

Sums are kept in integer millionths, so that they add the same in any order (floating-point
addition does not). Each accumulator merges with another of its kind in any order to the same
result (the most frequent value is exact while a profile has seen at most MAX_FREQUENT_VALUES
distinct values).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

Kind = Literal["sum", "min", "max", "avg", "most_frequent", "first", "last", "unique"]
MAX_DEFINITIONS = 50
MAX_UNIQUE = 100
MAX_FREQUENT_VALUES = 100
MAX_VALUE_LENGTH = 200
_NUMERIC: frozenset[str] = frozenset({"sum", "min", "max", "avg"})
_MICROS = 1_000_000
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class TraitConfigError(ValueError):
    """An invalid computed-trait declaration; the message names the path."""


class TraitDefinition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    kind: Kind
    event: str
    property: str
    limit: int = 20  # unique lists only


class TraitConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    computed_traits: list[TraitDefinition] = []


def load_trait_config(config: Mapping[str, Any] | None) -> tuple[TraitDefinition, ...]:
    """The declarations in `config`, validated, or a TraitConfigError naming the path."""
    try:
        loaded = msgspec.convert(dict(config or {}), TraitConfig)
    except msgspec.ValidationError as error:
        raise TraitConfigError(str(error)) from None
    definitions = loaded.computed_traits
    if len(definitions) > MAX_DEFINITIONS:
        raise TraitConfigError(
            f"at most {MAX_DEFINITIONS} computed traits - at `$.computed_traits`"
        )
    names: set[str] = set()
    for index, definition in enumerate(definitions):
        path = f"$.computed_traits[{index}]"
        for field in ("name", "event", "property"):
            value = getattr(definition, field)
            if not value or len(value) > MAX_VALUE_LENGTH:
                raise TraitConfigError(f"1 to {MAX_VALUE_LENGTH} characters - at `{path}.{field}`")
        if definition.name in names:
            raise TraitConfigError(f"{definition.name!r} is declared twice - at `{path}.name`")
        if not 1 <= definition.limit <= MAX_UNIQUE:
            raise TraitConfigError(f"a limit of 1 to {MAX_UNIQUE} - at `{path}.limit`")
        names.add(definition.name)
    return tuple(definitions)


def _usable(definition: TraitDefinition, value: Any) -> bool:
    if definition.kind in _NUMERIC:
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        return numeric and abs(value) < 1e15  # NaN and infinities fail the comparison
    if isinstance(value, str):
        return len(value) <= MAX_VALUE_LENGTH
    return isinstance(value, int | float | bool)


def accumulate(
    custom: dict[str, dict[str, Any]],
    definitions: tuple[TraitDefinition, ...],
    event: str | None,
    properties: Mapping[str, Any],
    stamp: str,
) -> bool:
    """Fold one track event (its name, properties and clock) into the declared traits; whether
    any took it."""
    took = False
    for definition in definitions:
        if definition.event != event or definition.property not in properties:
            continue
        value = properties[definition.property]
        if not _usable(definition, value):
            continue
        merge_accumulator(custom, definition, _single(definition.kind, value, stamp))
        took = True
    return took


def _single(kind: Kind, value: Any, stamp: str) -> dict[str, Any]:
    """The accumulator of one observation."""
    if kind in ("sum", "avg"):
        return {"sum": round(value * _MICROS), "count": 1}
    if kind in ("min", "max"):
        return {"value": value}
    if kind in ("first", "last"):
        return {"at": stamp, "value": value}
    if kind == "most_frequent":
        return {"counts": {_encode(value).decode(): 1}, "other": 0}
    return {"values": {_encode(value).decode(): stamp}}


def merge_accumulator(
    custom: dict[str, dict[str, Any]], definition: TraitDefinition, other: dict[str, Any]
) -> None:
    """`custom[definition.name]` joined with `other` (an accumulator of the same kind)."""
    mine = custom.get(definition.name)
    if mine is None:
        custom[definition.name] = _copy(other)
        _bound(custom[definition.name], definition)
        return
    kind = definition.kind
    if kind in ("sum", "avg"):
        mine["sum"] += other["sum"]
        mine["count"] += other["count"]
    elif kind == "min":
        mine["value"] = min(mine["value"], other["value"])
    elif kind == "max":
        mine["value"] = max(mine["value"], other["value"])
    elif kind == "first":
        if other["at"] < mine["at"]:
            mine.update(other)
    elif kind == "last":
        if other["at"] > mine["at"]:
            mine.update(other)
    elif kind == "most_frequent":
        counts = mine["counts"]
        for key, count in other["counts"].items():
            counts[key] = counts.get(key, 0) + count
        mine["other"] += other["other"]
    else:
        values = mine["values"]
        for key, stamp in other["values"].items():
            values[key] = min(values.get(key, stamp), stamp)
    _bound(mine, definition)


def _copy(accumulator: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = msgspec.json.decode(_encode(accumulator))
    return copied


def _bound(accumulator: dict[str, Any], definition: TraitDefinition) -> None:
    if definition.kind == "most_frequent":
        counts = accumulator["counts"]
        if len(counts) > MAX_FREQUENT_VALUES:
            kept = sorted(counts, key=lambda key: (-counts[key], key))[:MAX_FREQUENT_VALUES]
            accumulator["other"] += sum(n for key, n in counts.items() if key not in kept)
            accumulator["counts"] = {key: counts[key] for key in kept}
    elif definition.kind == "unique":
        values = accumulator["values"]
        if len(values) > definition.limit:
            # the earliest `limit` values: the same set whatever order they were seen in
            kept = sorted(values, key=lambda key: (values[key], key))[: definition.limit]
            accumulator["values"] = {key: values[key] for key in kept}


def trait_value(definition: TraitDefinition, accumulator: dict[str, Any]) -> Any:
    """What the profile shows for a declared trait."""
    kind = definition.kind
    if kind == "sum":
        whole, fraction = divmod(accumulator["sum"], _MICROS)
        return whole if not fraction else accumulator["sum"] / _MICROS
    if kind == "avg":
        return accumulator["sum"] / _MICROS / accumulator["count"]
    if kind in ("min", "max", "first", "last"):
        return accumulator["value"]
    if kind == "most_frequent":
        counts = accumulator["counts"]
        return _decode(min(counts, key=lambda key: (-counts[key], key))) if counts else None
    values = accumulator["values"]
    return [_decode(key) for key in sorted(values, key=lambda key: (values[key], key))]


def custom_values(
    custom: Mapping[str, dict[str, Any]], definitions: tuple[TraitDefinition, ...]
) -> dict[str, Any]:
    """Every declared trait the profile has a value for."""
    return {
        definition.name: trait_value(definition, custom[definition.name])
        for definition in definitions
        if definition.name in custom
    }
