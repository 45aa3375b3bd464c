"""OFREP on the real server: one flag and 50 flags per subject, p99 at half the peak rate, and
how soon an event flips a flag while events stream in at a steady rate."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks import servers
from benchmarks.http import run_at_rate, run_load
from benchmarks.payloads import batch_body

FLAG_COUNT = 50
USER = "bench-ofrep-user"
CONSENTED = {"consent": {"categoryPreferences": {"analytics": True, "personalization": True}}}
SINGLE_BODY = json.dumps({"context": {"targetingKey": USER}}).encode()


def flag_definitions() -> dict[str, dict[str, Any]]:
    """50 flags of every type and kind of rule, as an app would have them."""
    flags: dict[str, dict[str, Any]] = {}
    for n in range(FLAG_COUNT):
        match n % 5:
            case 0:
                flag: dict[str, Any] = {
                    "type": "boolean",
                    "variants": {"on": True, "off": False},
                    "default_variant": "off",
                    "rules": [
                        {"when": {"trait": "plan", "op": "eq", "value": "pro"}, "variant": "on"}
                    ],
                }
            case 1:
                flag = {
                    "type": "string",
                    "variants": {"a": "Welcome", "b": "Hello"},
                    "default_variant": "a",
                    "rules": [{"when": {"event": "Signed Up"}, "split": {"a": 50, "b": 50}}],
                }
            case 2:
                flag = {
                    "type": "number",
                    "variants": {"few": 3, "many": 5},
                    "default_variant": "few",
                    "rules": [
                        {
                            "when": {"computed": "sessions", "op": "gte", "value": 1},
                            "variant": "many",
                        }
                    ],
                }
            case 3:
                flag = {
                    "type": "object",
                    "variants": {"v1": {"layout": "compact", "items": 3}},
                    "default_variant": "v1",
                    "requires_consent": None,
                }
            case _:
                flag = {
                    "type": "boolean",
                    "variants": {"on": True, "off": False},
                    "default_variant": "off",
                    "rules": [{"when": {"consent": "personalization"}, "variant": "on"}],
                }
        flags[f"flag-{n}"] = flag
    return flags


def gateway(workdir: Path) -> tuple[servers.Server, dict[str, Any], str]:
    """A gateway with no OFREP rate limit, a source without a consent default, an admin."""
    server, source = servers.gateway(workdir, "none", CONSENTGATE_OFREP_RATE_LIMIT_PER_SECOND="0")
    admin = servers.cli(server.env, "tokens", "create", "--role", "admin")["token"]
    return server, source, admin


def _prepare(url: str, source: dict[str, Any], admin: str) -> None:
    staff = {"Authorization": f"Bearer {admin}"}
    for key, definition in flag_definitions().items():
        httpx.put(f"{url}/v1/flags/{key}", headers=staff, json=definition).raise_for_status()
    auth = (source["write_key"], "")
    for path, body in (
        ("/v1/identify", {"userId": USER, "traits": {"plan": "pro"}, "context": CONSENTED}),
        ("/v1/track", {"userId": USER, "event": "Signed Up", "context": CONSENTED}),
    ):
        httpx.post(url + path, auth=auth, json=body).raise_for_status()
    server = {"Authorization": f"Bearer {source['server_key']}"}
    deadline = time.monotonic() + 30
    while httpx.get(f"{url}/v1/profiles/{USER}", headers=server).status_code != 200:
        if time.monotonic() > deadline:
            raise RuntimeError("the bench user's profile never appeared")
        time.sleep(0.05)


async def _flip_latencies(
    url: str, source: dict[str, Any], probes: int, rate: float
) -> list[float]:
    """ms from an identify's 200 to the first evaluation serving its new variant, while other
    users' events arrive at `rate` events/s."""
    auth = (source["write_key"], "")
    server = {"Authorization": f"Bearer {source['server_key']}"}
    latencies: list[float] = []
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:

        async def background() -> None:
            n = 0
            interval = 20 / rate
            next_send = time.perf_counter()
            while not stop.is_set():
                body = batch_body(20, f"flip-load-{n}")
                n += 1
                await client.post("/v1/batch", content=body, auth=auth)
                next_send += interval
                await asyncio.sleep(max(0.0, next_send - time.perf_counter()))

        loader = asyncio.create_task(background())
        try:
            await asyncio.sleep(1.0)  # let the load settle
            for n in range(probes):
                user = f"flipper-{n}"
                identify = {"userId": user, "traits": {"plan": "pro"}, "context": CONSENTED}
                (await client.post("/v1/identify", json=identify, auth=auth)).raise_for_status()
                acked = time.perf_counter()
                body = {"context": {"targetingKey": user}}
                while True:
                    answer = await client.post(
                        "/ofrep/v1/evaluate/flags/flag-0", json=body, headers=server
                    )
                    if answer.json().get("value") is True:
                        latencies.append((time.perf_counter() - acked) * 1000)
                        break
                    if time.perf_counter() - acked > 10:
                        raise RuntimeError(f"flag-0 never flipped for {user}")
        finally:
            stop.set()
            await loader
    return sorted(latencies)


HALF_RATE_WINDOWS = 3


def _half_rate(url: str, authorization: str, rate: float, seconds: float) -> dict[str, float]:
    """p50/p99 at `rate` (half the peak): the median of three windows, each followed by one of
    bare litestar's OFREP endpoint at the same rate. A p99 is the slowest 1% of one window, so
    a few ms of the host's steal time in it decide it; the median window, and the framework's
    own tail measured beside it, say what belongs to the gateway (docs/performance.md)."""
    gateway: list[dict[str, Any]] = []
    bare: list[dict[str, Any]] = []
    with servers.bare() as reference:
        bare_url = reference.url + "/ofrep/v1/evaluate/flags/flag-0"
        run_load(bare_url, SINGLE_BODY, min(2.0, seconds))  # warm-up
        for _ in range(HALF_RATE_WINDOWS):
            gateway.append(
                run_at_rate(url, SINGLE_BODY, rate, seconds, authorization=authorization)
            )
            bare.append(run_at_rate(bare_url, SINGLE_BODY, rate, seconds))
    figures = {"ofrep_half_rate_req_per_s": rate}
    for name, windows in (("ofrep_half_rate", gateway), ("bare_ofrep_half_rate", bare)):
        for quantile in ("p50_ms", "p99_ms"):
            figures[f"{name}_{quantile}"] = statistics.median(w[quantile] for w in windows)
        p99s = sorted(w["p99_ms"] for w in windows)
        figures[f"{name}_p99_min_ms"], figures[f"{name}_p99_max_ms"] = p99s[0], p99s[-1]
    return figures


def measure(url: str, source: dict[str, Any], admin: str, seconds: float) -> dict[str, float]:
    _prepare(url, source, admin)
    authorization = f"Bearer {source['server_key']}"
    figures: dict[str, float] = {}
    single_url = f"{url}/ofrep/v1/evaluate/flags/flag-0"
    run_load(single_url, SINGLE_BODY, min(2.0, seconds), authorization=authorization)  # warm-up
    single = run_load(single_url, SINGLE_BODY, seconds, authorization=authorization)
    figures["ofrep_single_req_per_s"] = single["req_per_s"]
    figures["ofrep_single_p50_ms"] = single["p50_ms"]
    figures["ofrep_single_p99_ms"] = single["p99_ms"]
    figures["ofrep_single_errors"] = float(single["errors"])
    figures.update(_half_rate(single_url, authorization, single["req_per_s"] / 2, seconds))
    bulk = run_load(
        f"{url}/ofrep/v1/evaluate/flags", SINGLE_BODY, seconds, authorization=authorization
    )
    figures["ofrep_bulk50_req_per_s"] = bulk["req_per_s"]
    figures["ofrep_bulk50_p99_ms"] = bulk["p99_ms"]
    flips = asyncio.run(_flip_latencies(url, source, probes=100, rate=2000.0))
    figures["flag_flip_p50_ms"] = flips[len(flips) // 2]
    figures["flag_flip_p99_ms"] = flips[min(len(flips) - 1, int(0.99 * len(flips)))]
    return figures
