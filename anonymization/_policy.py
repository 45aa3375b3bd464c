"""Field policies: what happens to each traits/properties field, declared per source.

`{"fields": {"traits.email": "encrypt", "properties.zip": "truncate"}, "pii": {"phone": "drop"}}`

| action | the stored value |
|---|---|
| keep | unchanged (an explicit decision: no detector runs on it) |
| drop | removed |
| hash | a keyed blind index (`b1_…`), joinable, not reversible |
| encrypt | `{"enc": "e1.…", "bidx": "b1_…"}` under the subject's data key |
| truncate | IP → its /24 or /48, ISO date → its year, other text → its first 3 characters |
| redact | `"[redacted]"` |

Segment's reserved traits that identify a person are dropped unless the policy says otherwise.
Fields not named are scrubbed (detectors, raw identifiers). An invalid policy is refused at
load with the path that is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Literal, cast

import msgspec

from anonymization._detect import PII_KINDS, PiiKind
from anonymization._fieldcrypt import blind_index, encrypt_value
from anonymization._network import truncate_ip

FieldAction = Literal["keep", "drop", "hash", "encrypt", "truncate", "redact"]
FIELD_ACTIONS: tuple[str, ...] = ("keep", "drop", "hash", "encrypt", "truncate", "redact")
PiiAction = Literal["redact", "drop", "pseudonymize"]
PII_ACTIONS: tuple[str, ...] = ("redact", "drop", "pseudonymize")
SECTIONS = ("traits", "properties")

DEFAULT_FIELDS: dict[str, FieldAction] = {
    f"traits.{name}": "drop"
    for name in (
        "email",
        "phone",
        "name",
        "firstName",
        "lastName",
        "first_name",
        "last_name",
        "username",
        "address",
        "birthday",
        "ip",
        "avatar",
    )
}
_ISO_DATE = re.compile(r"^(\d{4})-\d{2}-\d{2}")


class FieldPolicyError(ValueError):
    """An invalid field policy; the message names the path."""


class FieldPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # values are checked in __post_init__, so that an error names the offending path
    fields: dict[str, str] = {}
    pii: dict[str, str] = {}

    def __post_init__(self) -> None:
        for path, action in self.fields.items():
            section, _, name = path.partition(".")
            if section not in SECTIONS or not name:
                raise FieldPolicyError(
                    f"fields[{path!r}]: a path is traits.<name> or properties.<name>"
                )
            if action not in FIELD_ACTIONS:
                raise FieldPolicyError(
                    f"fields[{path!r}]: unknown action {action!r}; known: {list(FIELD_ACTIONS)}"
                )
        for kind, action in self.pii.items():
            if kind not in PII_KINDS:
                raise FieldPolicyError(f"pii[{kind!r}]: unknown kind; known: {list(PII_KINDS)}")
            if action not in PII_ACTIONS:
                raise FieldPolicyError(
                    f"pii[{kind!r}]: unknown action {action!r}; known: {list(PII_ACTIONS)}"
                )

    def actions(self) -> dict[str, FieldAction]:
        """The effective field actions: the defaults, then this policy's."""
        return {**DEFAULT_FIELDS, **cast(dict[str, FieldAction], self.fields)}

    def pii_actions(self) -> dict[PiiKind, PiiAction]:
        return {kind: cast(PiiAction, self.pii.get(kind, "redact")) for kind in PII_KINDS}


DEFAULT_POLICY = FieldPolicy()


def load_field_policy(data: Mapping[str, Any] | None) -> FieldPolicy:
    if not data:
        return DEFAULT_POLICY
    try:
        return msgspec.convert(dict(data), FieldPolicy)
    except msgspec.ValidationError as exc:
        message = str(exc)
        if isinstance(exc.__cause__, FieldPolicyError) or message.startswith(("fields[", "pii[")):
            raise FieldPolicyError(message.split(" - at `", maxsplit=1)[0]) from None
        raise FieldPolicyError(message) from None


def truncate_value(value: Any) -> Any:
    """The coarse form of a value (see the table above); non-strings are dropped to None."""
    if not isinstance(value, str):
        return None
    network = truncate_ip(value)
    if network is not None:
        return network
    date = _ISO_DATE.match(value)
    if date is not None:
        return date.group(1)
    return value[:3]


class FieldProtector:
    """A source's field policy, ready to apply to one event's traits and properties."""

    __slots__ = ("_by_section", "_index_key", "_source_id", "needs_data_keys", "pii_actions")

    def __init__(self, policy: FieldPolicy, source_id: str, index_key: bytes) -> None:
        actions = policy.actions()
        self._by_section: dict[str, dict[str, FieldAction]] = {
            section: {
                path.partition(".")[2]: action
                for path, action in actions.items()
                if path.partition(".")[0] == section
            }
            for section in SECTIONS
        }
        self._index_key = index_key
        self._source_id = source_id
        self.pii_actions = policy.pii_actions()
        self.needs_data_keys = "encrypt" in actions.values()

    def __repr__(self) -> str:
        return f"FieldProtector(source={self._source_id!r}, <keys hidden>)"

    def apply(
        self,
        section: str,
        values: Mapping[str, Any],
        scrub: Callable[[Any], Any],
        subject: str | None,
        data_key: bytes | None,
        scrub_key: Callable[[str], str] = str,
    ) -> dict[str, Any]:
        """`values` of `section` under the policy: named fields by their action, every other
        field (its name too, which the client chose) scrubbed."""
        actions = self._by_section[section]
        if not actions or actions.keys().isdisjoint(values):
            scrubbed: dict[str, Any] = scrub(dict(values))
            return scrubbed
        kept: dict[str, Any] = {}
        for name, value in values.items():
            action = actions.get(name)
            path = f"{section}.{name}"
            if action is None:
                kept[scrub_key(name)] = scrub(value)
            elif action == "keep":
                kept[name] = value
            elif action == "hash":
                kept[name] = blind_index(self._index_key, path, value)
            elif action == "encrypt":
                if data_key is not None and subject is not None:
                    kept[name] = {
                        "enc": encrypt_value(data_key, self._source_id, subject, path, value),
                        "bidx": blind_index(self._index_key, path, value),
                    }
            elif action == "truncate":
                coarse = truncate_value(value)
                if coarse is not None:
                    kept[name] = coarse
            elif action == "redact":
                kept[name] = "[redacted]"
            # drop: nothing kept
        return kept
