# cython: language_level=3, boundscheck=True, wraparound=False
"""`Scrubber` in native code: the walk over an event's free-form values, compiled.

The same class as `anonymization._scrub.Scrubber`, line for line, with C types where it walks
(exact type checks, dict iteration, no Python frame per value). `_scrub.Scrubber` stays the
oracle: `tests/test_scrub_native.py` checks on generated events that both answer the same.
Detection itself is `find_pii` (the native scanner under it).
"""

from collections.abc import Mapping

from anonymization._agent import generalize_user_agent
from anonymization._detect import CLEAN_TEXTS, find_pii
from anonymization._network import truncate_ip
from anonymization._scrub import (
    _CONTEXT_ALLOWED,
    _MIN_SUBSTRING_IDENTIFIER,
    DEFAULT_PII_ACTIONS,
)

cdef dict CLEAN = CLEAN_TEXTS  # the same dict object: cleared in place, never replaced
cdef dict CONTEXT_ALLOWED = dict(_CONTEXT_ALLOWED)
cdef Py_ssize_t MIN_SUBSTRING_IDENTIFIER = _MIN_SUBSTRING_IDENTIFIER


cdef inline bint is_scalar(object value):
    cdef type kind = type(value)
    return kind is int or kind is float or kind is bool or value is None


cdef class Scrubber:
    """Scrubs values of one event, knowing its raw identifiers and their pseudonyms."""

    cdef object _actions
    cdef object _pseudonymize
    cdef dict _exact
    cdef list _within
    cdef Py_ssize_t _shortest

    def __init__(self, identifiers, actions=DEFAULT_PII_ACTIONS, pseudonymize=None):
        self._actions = actions
        self._pseudonymize = pseudonymize
        self._exact = {raw: alias for raw, alias in identifiers.items() if raw}
        within = [
            item for item in self._exact.items() if len(item[0]) >= MIN_SUBSTRING_IDENTIFIER
        ]
        if len(within) > 1:
            within.sort(key=_longest_first)  # so that "alice@x.io" is replaced before "alice"
        self._within = within
        self._shortest = min([len(raw) for raw, _ in within]) if within else 2**62

    cpdef object value(self, object value):
        cdef type kind = type(value)
        if kind is str:
            return self.text(value)
        if kind is dict:
            return {self.key(key): self._item(item) for key, item in (<dict>value).items()}
        if kind is list:
            return [self._item(item) for item in <list>value]
        if is_scalar(value):
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.key(key): self.value(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(item) for item in value]
        return value

    cpdef object key(self, object key):
        """A key of a free-form object: the client chose it, so it is scrubbed as a value is."""
        if (
            type(key) is str
            and key in CLEAN
            and len(<str>key) < self._shortest
            and key not in self._exact
        ):
            return key
        return self.text(key) if isinstance(key, str) else key

    cdef object _item(self, object item):
        if type(item) is str:
            if item in CLEAN and len(<str>item) < self._shortest and item not in self._exact:
                return item
            return self.text(item)
        if is_scalar(item):
            return item
        return self.value(item)

    cpdef object text(self, object text):
        cdef object alias = self._exact.get(text)
        cdef Py_ssize_t index
        if alias is not None:
            return alias
        if len(text) >= self._shortest:
            for raw, alias in self._within:
                if raw in text:
                    text = text.replace(raw, alias)
        found = find_pii(text)
        if not found:
            return text
        for index in range(len(found) - 1, -1, -1):
            kind, start, end = found[index]
            text = text[:start] + self._replacement(kind, text[start:end]) + text[end:]
        return text

    cdef str _replacement(self, str kind, str value):
        action = self._actions.get(kind, "redact")
        if action == "drop":
            return ""
        if action == "pseudonymize" and self._pseudonymize is not None:
            return f"[{kind}:{self._pseudonymize(value)}]"
        return f"[{kind}]"

    def context(self, context):
        """Only the allow-listed context fields, scrubbed; `ip` truncated. The hot path."""
        cdef dict kept = {}
        cdef dict inner
        for key, value in context.items():
            if key not in CONTEXT_ALLOWED or value is None:
                if key == "ip" and isinstance(value, str):
                    network = truncate_ip(value)
                    if network is not None:
                        kept["ip"] = network
                elif key == "userAgent" and isinstance(value, str):
                    general = generalize_user_agent(value)
                    if general is not None:
                        kept["userAgent"] = general
                continue
            allowed = CONTEXT_ALLOWED[key]
            if allowed is None:
                if isinstance(value, str):
                    kept[key] = self.text(value)
                elif isinstance(value, (int, float, bool)):
                    kept[key] = value
            elif isinstance(value, dict):
                inner = {
                    name: self._item(item) for name, item in (<dict>value).items() if name in allowed
                }
                if inner:
                    kept[key] = inner
        return kept


def _longest_first(item):
    return -len(item[0])
