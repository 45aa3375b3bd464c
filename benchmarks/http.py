"""HTTP load from a separate process: wrk with a Lua script when installed, else benchmarks.load."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

LUA = Path(__file__).with_name("wrk_report.lua")
CONNECTIONS = 32


def load_client() -> str:
    return "wrk" if shutil.which("wrk") else "asyncio"


def run_load(
    url: str,
    body: bytes,
    seconds: float,
    write_key: str | None = None,
    authorization: str | None = None,
    method: str = "POST",
    connections: int = CONNECTIONS,
) -> dict[str, Any]:
    """Send `body` to `url` (`method`, POST by default) for `seconds` from another process on
    `connections` connections; req/s, p50, p99, errors. `write_key` authenticates as
    Segment's SDKs do (Basic); `authorization` is a whole header."""
    if write_key:
        authorization = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    with tempfile.NamedTemporaryFile(suffix=".json") as handle:
        handle.write(body)
        handle.flush()
        if load_client() == "wrk":
            result = _wrk(url, handle.name, seconds, authorization, method, connections)
        else:
            result = _asyncio(url, handle.name, seconds, authorization, method, connections)
    result["req_per_s"] = result["requests"] / result["seconds"]
    return result


def run_at_rate(
    url: str,
    body: bytes,
    rate: float,
    seconds: float,
    write_key: str | None = None,
    authorization: str | None = None,
) -> dict[str, Any]:
    """`body` to `url` at a steady `rate` (requests a second, the connections taking turns)
    from another process (benchmarks.load: wrk has no steady rate); req/s, p50, p99, errors."""
    if write_key:
        authorization = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    with tempfile.NamedTemporaryFile(suffix=".json") as handle:
        handle.write(body)
        handle.flush()
        return _asyncio(url, handle.name, seconds, authorization, "POST", CONNECTIONS, rate)


def _wrk(
    url: str,
    body_file: str,
    seconds: float,
    authorization: str | None,
    method: str,
    connections: int,
) -> dict[str, Any]:
    env = {
        **os.environ,
        "BENCH_BODY_FILE": body_file,
        "BENCH_AUTH_HEADER": authorization or "",
        "BENCH_METHOD": method,
    }
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "-s", str(LUA), url],
        env=env,
        capture_output=True,
        check=True,
        timeout=seconds + 60,
    )
    last = [line for line in done.stdout.decode().splitlines() if line.startswith("{")][-1]
    result: dict[str, Any] = json.loads(last)
    return result


def _asyncio(
    url: str,
    body_file: str,
    seconds: float,
    authorization: str | None,
    method: str,
    connections: int,
    rate: float = 0.0,
) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.load",
        url,
        body_file,
        f"--seconds={seconds}",
        f"--connections={connections}",
        f"--method={method}",
        f"--rate={rate}",
    ]
    if authorization:
        command.append(f"--authorization={authorization}")
    done = subprocess.run(command, capture_output=True, check=True, timeout=seconds + 60)
    result: dict[str, Any] = json.loads(done.stdout)
    statuses = result.pop("statuses")
    result["errors"] = sum(n for code, n in statuses.items() if code != "200")
    return result
