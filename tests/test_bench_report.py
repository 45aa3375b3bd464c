"""The benchmark report: ratios and target verdicts (the harness itself runs with make bench)."""

from __future__ import annotations

from benchmarks.payloads import track_body
from benchmarks.report import markdown, ratios, verdicts


def test_ratios_and_verdicts() -> None:
    """Ratios divide within one run; each target is judged with its own comparison."""
    figures = {
        "floor_events_per_s": 60_000.0,
        "batch_events_per_s": 30_000.0,
        "track_req_per_s": 8_000.0,
        "bare_track_req_per_s": 10_000.0,
        "e2e_p99_ms": 120.0,
        "gateway_rss_mb": 150.0,
    }
    values = ratios(figures)
    assert values["batch_vs_floor"] == 0.5
    assert values["track_vs_bare"] == 0.8
    judged = verdicts(figures, values)
    assert {name: v["pass"] for name, v in judged.items()} == {
        "batch_vs_floor": False,
        "track_vs_bare": True,
        "e2e_p99_ms": False,
        "gateway_rss_mb": True,
    }
    table = markdown(figures, values, judged)
    assert "| `track_vs_bare` | 0.80 | >= 0.75 PASS |" in table


def test_benchmark_event_is_realistic() -> None:
    """The benchmark's event is about 600 bytes of JSON, with PII to scrub."""
    body = track_body()
    assert 550 <= len(body) <= 700
    assert b"@example" in body
