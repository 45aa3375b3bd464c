"""The Grafana dashboard and the Prometheus alert rules use only metrics the gateway exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from observability import METRIC_NAMES

FOLDER = Path(__file__).parents[1] / "observability" / "dashboards"
EXPORTED = {name + suffix for name in METRIC_NAMES for suffix in ("", "_bucket", "_sum", "_count")}
_METRIC = re.compile(r"\bconsentgate_[a-z_]+")


def _exprs_of_dashboard() -> list[str]:
    dashboard = json.loads((FOLDER / "grafana.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def _exprs_of_rules() -> list[str]:
    rules = yaml.safe_load((FOLDER / "alerts.rules.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_queries_use_only_exported_metrics(source: str) -> None:
    """Every metric a query names is one the gateway exports."""
    exprs = _exprs_of_dashboard() if source == "dashboard" else _exprs_of_rules()
    used = {name for expr in exprs for name in _METRIC.findall(expr)}
    assert used
    assert used <= EXPORTED, used - EXPORTED


def test_alerts_cover_lag_drops_failures_and_audit() -> None:
    """The alerts the operators asked for exist."""
    rules = yaml.safe_load((FOLDER / "alerts.rules.yml").read_text())
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {
        "ConsentgateIngestionLag",
        "ConsentgateDropRateSpike",
        "ConsentgateProfileUpdateFailures",
        "ConsentgateAuditVerificationFailed",
    } <= names


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed here")
def test_promtool_accepts_the_rules() -> None:
    """`promtool check rules` passes."""
    subprocess.run(["promtool", "check", "rules", str(FOLDER / "alerts.rules.yml")], check=True)
