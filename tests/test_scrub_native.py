"""The scrubber's native walk answers as its Python oracle does, on generated events."""

from __future__ import annotations

import types
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from anonymization import PII_KINDS, PythonScrubber, Scrubber

IDENTIFIERS = ["alice.smith@example.com", "alice.smith", "user-42", "anon-0001-4b1c", "42"]
PII = ["bob@example.org", "+44 20 7946 0958", "4111 1111 1111 1111", "203.0.113.77", "2001:db8::1"]
CLEAN = ["step", "onboarding_v2", "/welcome?utm=autumn", "Connect your calendar", "", " "]

texts = st.one_of(
    st.sampled_from(IDENTIFIERS + PII + CLEAN),
    st.lists(st.sampled_from(IDENTIFIERS + PII + CLEAN), max_size=4).map(" ".join),
    st.text(max_size=20),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), texts)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(texts, children, max_size=4),
        st.dictionaries(texts, children, max_size=3).map(types.MappingProxyType),
    ),
    max_leaves=16,
)
identifier_maps = st.dictionaries(
    st.sampled_from([*IDENTIFIERS, ""]),
    st.text(min_size=1, max_size=6).map(lambda alias: f"p1_{alias}"),
    max_size=4,
)
actions = st.fixed_dictionaries(
    {kind: st.sampled_from(["redact", "drop", "pseudonymize"]) for kind in PII_KINDS}
)
CONTEXT_KEYS = ["library", "app", "os", "device", "page", "locale", "timezone", "channel"]
CONTEXT_KEYS += ["ip", "userAgent", "traits", "campaign", "screen"]
contexts = st.dictionaries(
    st.sampled_from(CONTEXT_KEYS),
    st.one_of(
        values,
        st.sampled_from(["203.0.113.77", "2001:db8::1", "Mozilla/5.0 Chrome/131.0.0.0"]),
        st.fixed_dictionaries(
            {"name": texts, "version": texts, "model": texts, "email": st.sampled_from(PII)}
        ),
    ),
    max_size=6,
)


def _pair(identifiers: dict[str, str], chosen: Any) -> tuple[Any, Any]:
    def pseudonymize(value: str) -> str:
        return f"p1_{value[::-1]}"

    return (
        PythonScrubber(identifiers, chosen, pseudonymize),
        Scrubber(identifiers, chosen, pseudonymize),
    )


def test_the_native_walk_is_built() -> None:
    assert Scrubber is not PythonScrubber


@settings(max_examples=600)
@given(identifier_maps, actions, values)
def test_values_and_keys_are_scrubbed_as_the_oracle_does(
    identifiers: dict[str, str], chosen: Any, value: Any
) -> None:
    oracle, native = _pair(identifiers, chosen)
    assert native.value(value) == oracle.value(value)
    if isinstance(value, str):
        assert native.text(value) == oracle.text(value)
        assert native.key(value) == oracle.key(value)


@settings(max_examples=300)
@given(identifier_maps, actions, contexts)
def test_contexts_are_reduced_as_the_oracle_does(
    identifiers: dict[str, str], chosen: Any, context: dict[str, Any]
) -> None:
    oracle, native = _pair(identifiers, chosen)
    assert native.context(context) == oracle.context(context)
