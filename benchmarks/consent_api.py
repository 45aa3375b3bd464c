"""The consent API under load, beside the bare framework's constant answers to the same
requests: writes (`PUT /v1/consent/{userId}`: records, audit entry, signed receipt, durable
commit) and reads (`GET`), with 16 clients as the measurement against Fides used, and the
gateway's own CPU per request (the issue's budget: about 1 ms a write, 0.25 ms a read)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import servers
from benchmarks.http import run_load

CLIENTS = 16
WRITE = json.dumps({"purposes": {"analytics": True}, "policy_version": "bench"}).encode()


def measure(workdir: Path, seconds: float) -> dict[str, float]:
    figures: dict[str, float] = {}
    with servers.bare() as bare:
        for name, method, body in (("write", "PUT", WRITE), ("read", "GET", b"")):
            url = bare.url + "/v1/consent/bench-user"
            run_load(url, body, min(2.0, seconds), method=method, connections=CLIENTS)
            result = run_load(url, body, seconds, method=method, connections=CLIENTS)
            figures[f"bare_consent_{name}_req_per_s"] = result["req_per_s"]
    server, source = servers.gateway(workdir)
    authorization = f"Bearer {source['server_key']}"
    with server:
        for name, method, body in (("write", "PUT", WRITE), ("read", "GET", b"")):
            # one subject, written over and over: a write must not cost more as its history
            # grows (it reads the subject's current state, not its history)
            url = server.url + f"/v1/consent/bench-{name}"
            run_load(
                url,
                body,
                min(2.0, seconds),
                authorization=authorization,
                method=method,
                connections=CLIENTS,
            )
            before = server.cpu_seconds()
            result = run_load(
                url, body, seconds, authorization=authorization, method=method, connections=CLIENTS
            )
            used = server.cpu_seconds() - before
            figures[f"consent_{name}_req_per_s"] = result["req_per_s"]
            figures[f"consent_{name}_p99_ms"] = result["p99_ms"]
            figures[f"consent_{name}_errors"] = float(result["errors"])
            figures[f"consent_{name}_cpu_ms"] = used / max(result["requests"], 1) * 1000
    return figures
