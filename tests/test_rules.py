"""The rule language, as one table of cases (tests/cases/rules.json), and segment ordering."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from profiles import ProfileView, RuleError, evaluate, evaluation_order, validate_rule

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
