"""The rule language, as one table of cases (tests/cases/rules.json), and segment ordering."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from profiles import ProfileView, RuleError, evaluate, evaluation_order, validate_rule
from profiles._compiled import compile_rule
from profiles._rules import OPERATORS

TABLE = json.loads((Path(__file__).parent / "cases" / "rules.json").read_text())
PROFILE = TABLE["profile"]
VIEW = ProfileView(
    traits=PROFILE["traits"],
    computed=PROFILE["computed"],
    event_counts=PROFILE["event_counts"],
    day_counts=PROFILE["day_counts"],
    segments=frozenset(PROFILE["segments"]),
    consent=frozenset(PROFILE["consent"]),
    today=date.fromisoformat(TABLE["today"]),
)


@pytest.mark.parametrize("case", TABLE["cases"], ids=[c["name"] for c in TABLE["cases"]])
def test_rule_cases(case: dict[str, Any]) -> None:
    """Each valid rule gives the table's answer on the table's profile."""
    validate_rule(case["rule"])
    assert evaluate(case["rule"], VIEW) is case["expected"]


@pytest.mark.parametrize("case", TABLE["invalid"], ids=[c["path"] for c in TABLE["invalid"]])
def test_invalid_rules_name_their_node(case: dict[str, Any]) -> None:
    """An invalid rule is refused with the path of the node at fault."""
    with pytest.raises(RuleError) as refused:
        validate_rule(case["rule"])
    assert str(refused.value).endswith(f"at {case['path']}")


def test_segments_are_ordered_after_what_they_refer_to() -> None:
    """A segment comes after the segments it refers to; cycles and unknown ones are refused."""
    order = evaluation_order(
        {"power": {"segment": "active"}, "active": {"event": "x"}, "rich": {"segment": "power"}}
    )
    assert order.index("active") < order.index("power") < order.index("rich")
    with pytest.raises(RuleError, match="cycle: a -> b -> a"):
        evaluation_order({"a": {"segment": "b"}, "b": {"segment": "a"}})
    with pytest.raises(RuleError, match="unknown segment 'ghost'"):
        evaluation_order({"a": {"segment": "ghost"}})


@pytest.mark.parametrize("case", TABLE["cases"], ids=[c["name"] for c in TABLE["cases"]])
def test_compiled_rules_answer_as_the_interpreter_on_the_table(case: dict[str, Any]) -> None:
    """The compiled rule (what the core runs) agrees with `evaluate` (the oracle)."""
    assert compile_rule(case["rule"])(VIEW) is evaluate(case["rule"], VIEW)


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(-3, 3, allow_nan=False),
    st.sampled_from(["pro", "free", "ios", "2026-01-02T00:00:00Z", "x"]),
    st.lists(st.sampled_from(["pro", "free", 1, 2]), max_size=3),
)
_COMPARISON = {"op": st.sampled_from(sorted(OPERATORS - {"in"})), "value": _VALUES}
_LEAVES = st.one_of(
    st.fixed_dictionaries({"trait": st.sampled_from(["plan", "age", "tags"]), **_COMPARISON}),
    st.fixed_dictionaries(
        {
            "trait": st.sampled_from(["plan", "age"]),
            "op": st.just("in"),
            "value": st.lists(_VALUES, max_size=3),
        }
    ),
    st.fixed_dictionaries(
        {
            "computed": st.sampled_from(
                ["sessions", "first_seen", "flows.onboarding.last_step", "platform", "missing"]
            ),
            **_COMPARISON,
        }
    ),
    st.fixed_dictionaries(
        {
            "event": st.sampled_from(["Signed Up", "Feature Used", "Never"]),
            "count": st.fixed_dictionaries(
                {"op": st.sampled_from(["gte", "lt", "eq"]), "value": st.integers(0, 4)}
            ),
        },
        optional={"within_days": st.integers(1, 30)},
    ),
    st.fixed_dictionaries({"segment": st.sampled_from(["a", "b"])}),
    st.fixed_dictionaries({"consent": st.sampled_from(["analytics", "personalization"])}),
)
_RULES = st.recursive(
    _LEAVES,
    lambda children: st.one_of(
        st.fixed_dictionaries({"all": st.lists(children, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"any": st.lists(children, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"not": children}),
    ),
    max_leaves=8,
)
_TODAY = date(2026, 3, 10)
_VIEWS = st.builds(
    ProfileView,
    traits=st.dictionaries(st.sampled_from(["plan", "age", "tags"]), _VALUES, max_size=3),
    computed=st.fixed_dictionaries(
        {},
        optional={
            "sessions": st.integers(0, 5),
            "first_seen": st.datetimes(
                min_value=datetime(2025, 12, 1),
                max_value=datetime(2026, 3, 1),
                timezones=st.just(UTC),
            ),
            "flows": st.just({"onboarding": {"last_step": "profile"}}),
            "platform": st.sampled_from(["ios", "web", None]),
        },
    ),
    event_counts=st.dictionaries(st.sampled_from(["Signed Up", "Feature Used"]), st.integers(0, 5)),
    day_counts=st.dictionaries(
        st.sampled_from(["Signed Up", "Feature Used"]),
        st.dictionaries(
            st.integers(0, 40).map(lambda ago: (_TODAY - timedelta(days=ago)).isoformat()),
            st.integers(1, 3),
            max_size=4,
        ),
    ),
    segments=st.frozensets(st.sampled_from(["a", "b"])),
    consent=st.frozensets(st.sampled_from(["analytics", "personalization"])),
    today=st.just(_TODAY),
)


@settings(max_examples=500, deadline=None)
@given(rule=_RULES, view=_VIEWS)
def test_compiled_rules_answer_as_the_interpreter_on_any_rule(
    rule: dict[str, Any], view: ProfileView
) -> None:
    """Differential: random valid rules on random profiles give the interpreter's answer."""
    try:
        validate_rule(rule)
    except RuleError:
        assume(False)  # only valid rules are compiled
    assert compile_rule(rule)(view) is evaluate(rule, view)


def test_a_view_with_the_consent_of_now_keeps_everything_else() -> None:
    """`with_consent` is `dataclasses.replace(view, consent=…)`, field for field."""
    import dataclasses

    view = ProfileView(
        traits={"plan": "pro"},
        computed={"sessions": 3},
        event_counts={"Signed Up": 1},
        day_counts={"Signed Up": {"2026-01-01": 1}},
        segments={"active"},
        consent=frozenset({"analytics"}),
        today=date(2026, 1, 2),
    )
    now = frozenset({"analytics", "personalization"})
    assert view.with_consent(now) == dataclasses.replace(view, consent=now)
    assert view.consent == frozenset({"analytics"})  # the cached view is left as it was
