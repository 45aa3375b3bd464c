"""What tracing costs a `/v1/track` request on the real server: a gateway tracing every request
(the default) beside one sampling none (`CONSENTGATE_TRACE_SAMPLE_RATIO=0`: its spans record
nothing; decisions still carry trace ids), both up at once and their loads alternated, so that
the machine's drift falls on both alike. Compared by the gateway's CPU a request."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from benchmarks import servers
from benchmarks.http import run_load
from benchmarks.payloads import track_body

ROUNDS = 3


def measure(workdir: Path, seconds: float) -> dict[str, float]:
    sides = {"traced": {}, "untraced": {"CONSENTGATE_TRACE_SAMPLE_RATIO": "0"}}
    used = dict.fromkeys(sides, 0.0)
    requests = dict.fromkeys(sides, 0)
    with ExitStack() as stack:
        running = {}
        for name, extra in sides.items():
            (workdir / name).mkdir()
            server, source = servers.gateway(workdir / name, **extra)
            stack.enter_context(server)
            running[name] = (server, source["write_key"])
            run_load(server.url + "/v1/track", track_body(), min(2.0, seconds), source["write_key"])
        for _ in range(ROUNDS):
            for name, (server, key) in running.items():
                before = server.cpu_seconds()
                result = run_load(server.url + "/v1/track", track_body(), seconds / 2, key)
                used[name] += server.cpu_seconds() - before
                requests[name] += result["requests"]
    cpu = {name: used[name] / max(requests[name], 1) * 1e6 for name in sides}
    return {
        "track_traced_cpu_us": cpu["traced"],
        "track_untraced_cpu_us": cpu["untraced"],
    }
