"""Scrubbing free-form values: raw identifiers of the request, detected PII, reserved traits.

Pure: values in, scrubbed values out. Each detected kind is redacted (`[email]`), dropped
(removed from the text) or pseudonymized (`[email:p1_…]`), per the actions given.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

from anonymization._agent import generalize_user_agent
from anonymization._detect import CLEAN_TEXTS, PII_KINDS, PiiKind, find_pii
from anonymization._network import truncate_ip
from anonymization._policy import PiiAction

DEFAULT_PII_ACTIONS: Mapping[PiiKind, PiiAction] = dict.fromkeys(PII_KINDS, "redact")

# Shorter identifiers ("1", "42") would match inside unrelated text; only whole values are
# replaced for them.
_MIN_SUBSTRING_IDENTIFIER = 6

_SCALARS = frozenset({int, float, bool, type(None)})

# The context fields that carry no identifier, by path; everything else is dropped.
_CONTEXT_ALLOWED: Mapping[str, frozenset[str] | None] = {
    "library": frozenset({"name", "version"}),
    "app": frozenset({"name", "version", "build", "namespace"}),
    "os": frozenset({"name", "version"}),
    "device": frozenset({"type", "manufacturer", "model"}),
    "screen": frozenset({"width", "height", "density"}),
    "page": frozenset({"path", "title"}),
    "locale": None,
    "timezone": None,
    "channel": None,
}


def _longest_first(item: tuple[str, str]) -> int:
    return -len(item[0])


class Scrubber:
    """Scrubs values of one event, knowing its raw identifiers and their pseudonyms."""

    __slots__ = ("_actions", "_exact", "_pseudonymize", "_shortest", "_within")

    def __init__(
        self,
        identifiers: Mapping[str, str],
        actions: Mapping[PiiKind, PiiAction] = DEFAULT_PII_ACTIONS,
        pseudonymize: Callable[[str], str] | None = None,
    ) -> None:
        self._actions = actions
        self._pseudonymize = pseudonymize
        self._exact = {raw: alias for raw, alias in identifiers.items() if raw}
        within = [item for item in self._exact.items() if len(item[0]) >= _MIN_SUBSTRING_IDENTIFIER]
        if len(within) > 1:
            within.sort(key=_longest_first)  # so that "alice@x.io" is replaced before "alice"
        self._within = within
        # Most values are shorter than any identifier: they skip the substring searches.
        self._shortest = min(len(raw) for raw, _ in within) if within else sys.maxsize

    def value(self, value: Any) -> Any:
        kind = type(value)  # exact types first: decoded JSON holds nothing else
        if kind is str:
            return self.text(value)
        if kind is dict:
            return {self.key(key): self._item(item) for key, item in value.items()}
        if kind is list:
            return [self._item(item) for item in value]
        if kind in _SCALARS:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.key(key): self.value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        return value

    def key(self, key: Any) -> Any:
        """A key of a free-form object: the client chose it, so it is scrubbed as a value is."""
        if (
            type(key) is str
            and key in CLEAN_TEXTS
            and len(key) < self._shortest
            and key not in self._exact
        ):
            return key
        return self.text(key) if isinstance(key, str) else key

    def _item(self, item: Any) -> Any:
        # The hot path: most values are short strings already known to be clean.
        kind = type(item)
        if kind is str:
            if item in CLEAN_TEXTS and len(item) < self._shortest and item not in self._exact:
                return item
            return self.text(item)
        if kind in _SCALARS:
            return item
        return self.value(item)

    def text(self, text: str) -> str:
        alias = self._exact.get(text)
        if alias is not None:
            return alias
        if len(text) >= self._shortest:
            for raw, alias in self._within:
                if raw in text:
                    text = text.replace(raw, alias)
        found = find_pii(text)
        if not found:
            return text
        for kind, start, end in reversed(found):
            text = text[:start] + self._replacement(kind, text[start:end]) + text[end:]
        return text

    def _replacement(self, kind: PiiKind, value: str) -> str:
        action = self._actions.get(kind, "redact")
        if action == "drop":
            return ""
        if action == "pseudonymize" and self._pseudonymize is not None:
            return f"[{kind}:{self._pseudonymize(value)}]"
        return f"[{kind}]"

    def context(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """Only the allow-listed context fields, scrubbed; `ip` truncated. The hot path."""
        kept: dict[str, Any] = {}
        for key, value in context.items():
            if key not in _CONTEXT_ALLOWED or value is None:
                if key == "ip" and isinstance(value, str):
                    network = truncate_ip(value)
                    if network is not None:
                        kept["ip"] = network
                elif key == "userAgent" and isinstance(value, str):
                    general = generalize_user_agent(value)
                    if general is not None:
                        kept["userAgent"] = general
                continue
            allowed = _CONTEXT_ALLOWED[key]
            if allowed is None:
                if isinstance(value, str):
                    kept[key] = self.text(value)
                elif isinstance(value, int | float | bool):
                    kept[key] = value
            elif isinstance(value, dict):
                inner = {name: self._item(item) for name, item in value.items() if name in allowed}
                if inner:
                    kept[key] = inner
        return kept
