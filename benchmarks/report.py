"""Ratios, targets, the markdown table and the results file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("results")

# ratio or figure -> (comparison, bound): reported beside each figure, never enforced in tests.
TARGETS: dict[str, tuple[str, float]] = {
    "batch_vs_floor": (">=", 0.6),
    "track_vs_bare": (">=", 0.75),
    "track_half_rate_p99_ms": ("<", 20.0),
    "e2e_p99_ms": ("<", 100.0),
    "gateway_rss_mb": ("<", 200.0),
    "consent_decision_us": ("<", 3.0),
    "anonymize_vs_floor": ("<", 2.0),
    "observability_cost": ("<", 0.25),
    "observability_cost_track": ("<", 0.25),
    "tracing_cost_track": ("<", 0.25),
    "core_segments_vs_none": (">=", 0.7),
    "ofrep_vs_bare": (">=", 0.7),
    "ofrep_half_rate_p99_ms": ("<", 5.0),
    "flag_flip_p99_ms": ("<", 100.0),
    "scaleout_batch_vs_raw_publish": (">=", 0.7),
    "scaleout_e2e_p99_ms": ("<", 100.0),
    # the gateway's CPU per consent write and read (about 30x and 20x Ethyca Fides 2.86's)
    "consent_write_cpu_ms": ("<", 1.0),
    "consent_read_cpu_ms": ("<", 0.25),
}


def ratios(figures: dict[str, float]) -> dict[str, float]:
    values = _ratios(figures)
    on, off = (
        figures.get("observability_on_events_per_s"),
        figures.get("observability_off_events_per_s"),
    )
    if on and off:
        values["observability_cost"] = 1 - on / off  # the share of throughput they cost
    on, off = (
        figures.get("observability_on_track_events_per_s"),
        figures.get("observability_off_track_events_per_s"),
    )
    if on and off:
        values["observability_cost_track"] = 1 - on / off
    traced, untraced = figures.get("track_traced_cpu_us"), figures.get("track_untraced_cpu_us")
    if traced and untraced:
        values["tracing_cost_track"] = 1 - untraced / traced  # the share of a request's CPU
    return values


def _ratios(figures: dict[str, float]) -> dict[str, float]:
    pairs = {
        "batch_vs_floor": ("batch_events_per_s", "floor_events_per_s"),
        "track_vs_bare": ("track_req_per_s", "bare_track_req_per_s"),
        "batch_vs_bare": ("batch_events_per_s", "bare_batch_events_per_s"),
        "pipeline_vs_floor": ("pipeline_events_per_s", "floor_events_per_s"),
        "decision_vs_dict_lookup": ("consent_decision_us", "dict_lookup_us"),
        "anonymize_vs_floor": ("anonymize_1kb_us", "anonymize_floor_us"),
        "core_segments_vs_none": (
            "core_50_segments_events_per_s",
            "core_no_segments_events_per_s",
        ),
        "ofrep_vs_bare": ("ofrep_single_req_per_s", "bare_ofrep_req_per_s"),
        # the gateway's tail at half its peak rate against the framework's at the same rate
        "ofrep_half_rate_p99_vs_bare": ("ofrep_half_rate_p99_ms", "bare_ofrep_half_rate_p99_ms"),
        # one gateway worker's events into JetStream against raw pipelined publishes
        "scaleout_batch_vs_raw_publish": (
            "scaleout_batch_1w_events_per_s",
            "raw_publish_msgs_per_s",
        ),
        "scaleout_2_workers_vs_1": (
            "scaleout_batch_2w_events_per_s",
            "scaleout_batch_1w_events_per_s",
        ),
        "scaleout_2_cores_vs_1": ("scaleout_core_2_events_per_s", "scaleout_core_1_events_per_s"),
        "consent_write_vs_bare": ("consent_write_req_per_s", "bare_consent_write_req_per_s"),
        "consent_read_vs_bare": ("consent_read_req_per_s", "bare_consent_read_req_per_s"),
    }
    return {
        name: figures[top] / figures[bottom]
        for name, (top, bottom) in pairs.items()
        if top in figures and figures.get(bottom)
    }


def verdicts(
    figures: dict[str, float], ratio_values: dict[str, float]
) -> dict[str, dict[str, Any]]:
    values = {**figures, **ratio_values}
    out: dict[str, dict[str, Any]] = {}
    for name, (op, bound) in TARGETS.items():
        if name in values:
            value = values[name]
            ok = value >= bound if op == ">=" else value < bound
            out[name] = {"value": value, "target": f"{op} {bound}", "pass": ok}
    return out


def machine(client: str) -> dict[str, Any]:
    import uvicorn

    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "server": f"uvicorn {uvicorn.__version__} (uvloop, httptools)",
        "workers": 1,
        "load_client": client,
        "shape": "embedded (SQLite outbox, in-process core)",
        "commit": _git("describe", "--always", "--dirty"),
    }


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], capture_output=True, check=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return done.stdout.strip()


def markdown(
    figures: dict[str, float], ratio_values: dict[str, float], targets: dict[str, Any]
) -> str:
    lines = ["| figure | value | target |", "|---|---:|---|"]
    for name, value in {**figures, **ratio_values}.items():
        verdict = targets.get(name)
        mark = f"{verdict['target']} {'PASS' if verdict['pass'] else 'FAIL'}" if verdict else ""
        lines.append(f"| `{name}` | {value:,.2f} | {mark} |")
    return "\n".join(lines)


def write(result: dict[str, Any]) -> Path:
    machine_info: dict[str, Any] = result["machine"]
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(result, indent=2, sort_keys=False) + "\n"
    (RESULTS / "latest.json").write_text(text)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}-{machine_info['commit']}.json"
    path.write_text(text)
    return path
