"""`make bench` / `consentgate bench`: every figure in one run, on loopback, in a few minutes."""

from __future__ import annotations

import argparse
import gc
import sqlite3
import tempfile
import time
from pathlib import Path

from benchmarks import (
    compute,
    consent_api,
    core,
    e2e,
    ofrep,
    report,
    scale_out,
    servers,
    tracing_cost,
)
from benchmarks.http import load_client, run_at_rate, run_load
from benchmarks.payloads import batch_body, track_body
from observability import configure_logging

BATCH = 100


def run(seconds: float, e2e_rate: float) -> dict[str, object]:
    configure_logging("warning")
    figures: dict[str, float] = {}
    print("floor …", flush=True)
    figures["floor_events_per_s"] = compute.floor_events_per_s()
    print("pipeline in-process …", flush=True)
    gc.collect()
    stage_us = compute.pipeline_stage_costs()
    figures.update({f"pipeline_{name}_us": us for name, us in stage_us.items()})
    figures["pipeline_events_per_s"] = 1e6 / sum(stage_us.values())
    print("consent decision …", flush=True)
    gc.collect()  # each in-process figure starts without the garbage of the one before
    figures.update(compute.consent_decision_costs())
    print("anonymize …", flush=True)
    gc.collect()
    figures.update(compute.anonymize_costs())
    print("tracing and decision log …", flush=True)
    gc.collect()
    figures.update(compute.observability_costs())

    print("core with and without segments …", flush=True)
    gc.collect()
    figures.update(core.core_costs())
    print("segment backfill over 100k profiles …", flush=True)
    gc.collect()
    figures.update(core.backfill_costs())
    print("recommendation model over 100k interactions …", flush=True)
    gc.collect()
    figures.update(core.recommend_costs())

    print("bare litestar …", flush=True)
    with servers.bare() as bare:
        _measure(figures, "bare_track", bare.url + "/v1/track", track_body(), seconds, None)
        _measure(figures, "bare_batch", bare.url + "/v1/batch", batch_body(BATCH), seconds, None)
        bare_ofrep = bare.url + "/ofrep/v1/evaluate/flags/flag-0"
        _measure(figures, "bare_ofrep", bare_ofrep, ofrep.SINGLE_BODY, seconds, None)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        server, source = servers.gateway(workdir)
        with server:
            print("gateway /v1/track …", flush=True)
            key = source["write_key"]
            _measure(figures, "track", server.url + "/v1/track", track_body(), seconds, key)
            print("gateway /v1/batch …", flush=True)
            _measure(figures, "batch", server.url + "/v1/batch", batch_body(BATCH), seconds, key)
            figures["gateway_rss_mb"] = server.peak_rss_mb()
            figures["core_backlog_events_after_load"] = _outbox_backlog(workdir)
            figures["core_drain_s"] = _drain(workdir)
    with tempfile.TemporaryDirectory() as tmp:
        print("gateway /v1/track traced and untraced …", flush=True)
        figures.update(tracing_cost.measure(Path(tmp), seconds))
    with tempfile.TemporaryDirectory() as tmp:
        # A fresh gateway (no backlog from the loads above): /v1/track's latency at half the
        # rate it peaked at
        server, source = servers.gateway(Path(tmp))
        with server:
            print("gateway /v1/track at half its peak rate …", flush=True)
            rate = figures["track_req_per_s"] / 2
            url = server.url + "/v1/track"
            half = run_at_rate(url, track_body(), rate, seconds, write_key=source["write_key"])
            figures["track_half_rate_req_per_s"] = half["requests"] / half["seconds"]
            figures["track_half_rate_p50_ms"] = half["p50_ms"]
            figures["track_half_rate_p99_ms"] = half["p99_ms"]
            figures["track_half_rate_errors"] = float(half["errors"])
    with tempfile.TemporaryDirectory() as tmp:
        # A fresh gateway: the latency at a steady rate, not the recovery from the load above.
        workdir = Path(tmp)
        server, source = servers.gateway(workdir)
        # 50 segments: a profile's memberships commit with it, so the latency below is the
        # event -> segment-membership-visible latency
        core.define_segments(workdir / "bench.db")
        with server:
            print("end-to-end (event -> segment membership visible) …", flush=True)
            figures.update(e2e.measure(server.url, workdir, source, e2e_rate, seconds))

    with tempfile.TemporaryDirectory() as tmp:
        server, source, admin = ofrep.gateway(Path(tmp))
        with server:
            print("OFREP (one flag, 50 flags, half rate, flag flips under load) …", flush=True)
            figures.update(ofrep.measure(server.url, source, admin, seconds))

    with tempfile.TemporaryDirectory() as tmp:
        print("consent API (writes and reads, 16 clients) …", flush=True)
        figures.update(consent_api.measure(Path(tmp), seconds))

    unavailable = scale_out.available()
    if unavailable:
        print(f"scale-out: skipped ({unavailable})", flush=True)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            print("scale-out (PostgreSQL + NATS JetStream: workers, cores) …", flush=True)
            figures.update(scale_out.measure(Path(tmp), seconds))

    ratio_values = report.ratios(figures)
    targets = report.verdicts(figures, ratio_values)
    result: dict[str, object] = {
        "machine": report.machine(load_client()),
        "figures": figures,
        "ratios": ratio_values,
        "targets": targets,
    }
    print(report.markdown(figures, ratio_values, targets))
    print(f"\nwritten to {report.write(result)} and {report.RESULTS / 'latest.json'}")
    return result


def _measure(
    figures: dict[str, float], name: str, url: str, body: bytes, seconds: float, key: str | None
) -> None:
    run_load(url, body, min(2.0, seconds), key)  # warm-up, not counted
    result = run_load(url, body, seconds, key)
    events = BATCH if name.endswith("batch") else 1
    figures[f"{name}_req_per_s"] = result["req_per_s"]
    figures[f"{name}_events_per_s"] = result["req_per_s"] * events
    figures[f"{name}_p50_ms"] = result["p50_ms"]
    figures[f"{name}_p99_ms"] = result["p99_ms"]
    figures[f"{name}_errors"] = float(result["errors"])


def _outbox_backlog(workdir: Path) -> float:
    """Events acknowledged but not yet applied by the core."""
    with sqlite3.connect(workdir / "bench.db") as conn:
        query = "SELECT coalesce(sum(message_count), 0) FROM bus_outbox"
        return float(conn.execute(query).fetchone()[0])


def _drain(workdir: Path, timeout: float = 120.0) -> float:
    """Seconds until the core has caught up with everything acknowledged."""
    started = time.monotonic()
    while _outbox_backlog(workdir) and time.monotonic() - started < timeout:
        time.sleep(0.1)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="consentgate bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="per HTTP measurement")
    parser.add_argument("--e2e-rate", type=float, default=2000.0, help="events/s offered")
    args = parser.parse_args(argv)
    run(args.seconds, args.e2e_rate)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
