"""Scrubbing free-form values: raw identifiers of the request, detected PII, reserved traits.

Pure: values in, scrubbed values out. Each detected kind is redacted (`[email]`), dropped
(removed from the text) or pseudonymized (`[email:p1_…]`), per the actions given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from anonymization._agent import generalize_user_agent
from anonymization._detect import PII_KINDS, PiiKind, find_pii
from anonymization._network import truncate_ip
from anonymization._policy import PiiAction

DEFAULT_PII_ACTIONS: Mapping[PiiKind, PiiAction] = dict.fromkeys(PII_KINDS, "redact")

# Shorter identifiers ("1", "42") would match inside unrelated text; only whole values are
# replaced for them.
_MIN_SUBSTRING_IDENTIFIER = 6

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


class Scrubber:
    """Scrubs values of one event, knowing its raw identifiers and their pseudonyms."""

    __slots__ = ("_actions", "_identifiers", "_pseudonymize")

    def __init__(
        self,
        identifiers: Mapping[str, str],
        actions: Mapping[PiiKind, PiiAction] = DEFAULT_PII_ACTIONS,
        pseudonymize: Callable[[str], str] | None = None,
    ) -> None:
        self._actions = actions
        self._pseudonymize = pseudonymize
        # Longest first, so that "alice@x.io" is replaced before "alice".
        self._identifiers = sorted(
            ((raw, alias) for raw, alias in identifiers.items() if raw),
            key=lambda item: -len(item[0]),
        )

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        return value

    def text(self, text: str) -> str:
        for raw, alias in self._identifiers:
            if text == raw:
                return alias
            if len(raw) >= _MIN_SUBSTRING_IDENTIFIER and raw in text:
                text = text.replace(raw, alias)
        found = find_pii(text)
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
                inner = {
                    name: self.text(item) if isinstance(item, str) else self.value(item)
                    for name, item in value.items()
                    if name in allowed
                }
                if inner:
                    kept[key] = inner
        return kept
