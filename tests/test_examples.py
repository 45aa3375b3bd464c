"""examples/: the Prometheus, Grafana and Collector configs are valid and point at what the
gateway ships; the analytics.js page sends to the gateway and nowhere else."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_the_prometheus_config_loads_the_shipped_rules() -> None:
    config = _yaml(EXAMPLES / "prometheus" / "prometheus.yml")
    (rules,) = config["rule_files"]
    assert (EXAMPLES / "prometheus" / rules).resolve() == (
        ROOT / "observability" / "dashboards" / "alerts.rules.yml"
    )
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:8000"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed here")
def test_promtool_accepts_the_prometheus_config() -> None:
    """`promtool check config` also checks the rule files the config names."""
    subprocess.run(
        ["promtool", "check", "config", "prometheus.yml"],
        cwd=EXAMPLES / "prometheus",
        check=True,
        capture_output=True,
    )


def test_grafana_provisions_a_prometheus_source_and_the_shipped_dashboard() -> None:
    provisioning = EXAMPLES / "grafana" / "provisioning"
    (source,) = _yaml(provisioning / "datasources" / "consentgate.yml")["datasources"]
    assert source["type"] == "prometheus"
    assert source["isDefault"] is True
    (provider,) = _yaml(provisioning / "dashboards" / "consentgate.yml")["providers"]
    mounted = provider["options"]["path"]
    assert (
        f"observability/dashboards:{mounted}:ro" in (EXAMPLES / "grafana" / "README.md").read_text()
    )
    dashboard = json.loads((ROOT / "observability" / "dashboards" / "grafana.json").read_text())
    variable = dashboard["templating"]["list"][0]
    assert (variable["type"], variable["query"]) == ("datasource", source["type"])


def test_the_collector_receives_otlp_http_where_the_gateway_sends() -> None:
    config = _yaml(EXAMPLES / "otel-collector" / "config.yaml")
    endpoint = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert endpoint == "127.0.0.1:4318"
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    for kind in ("processors", "exporters"):
        assert set(pipeline[kind]) <= set(config[kind])


def test_the_analytics_js_page_sends_to_the_gateway_only() -> None:
    page = (EXAMPLES / "analytics-js" / "index.html").read_text()
    assert "apiHost: GATEWAY" in page
    assert re.search(r'const GATEWAY = "[^"]+/v1";', page)
    assert "cdnSettings" in page  # no settings fetched from Segment's CDN
    assert "categoryPreferences" in page
    assert not re.search(r"(src|href)=\"https?://", page)
