"""A bounded HTTP/1.1 load client for loopback, run in its own process.

`python -m benchmarks.load URL BODY_FILE --seconds S --connections C [--authorization H]
[--method PUT]` prints
one JSON object: requests, status counts, req/s, p50/p99 in ms. It speaks just enough
HTTP/1.1 (keep-alive, Content-Length responses) to stay out of the way of the server it
measures; the harness uses wrk instead when wrk is installed. Targets must be loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import socket
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
    uvloop = None  # type: ignore[assignment]

MAX_SECONDS = 120.0


def _loopback_only(host: str) -> None:
    address = ipaddress.ip_address(socket.gethostbyname(host))
    if not address.is_loopback:
        raise SystemExit(f"refusing to load {host}: benchmarks target loopback only")


def build_request(url: str, body: bytes, headers: dict[str, str], method: str = "POST") -> bytes:
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    lines = [
        f"{method} {target} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
        "",
        "",
    ]
    return "\r\n".join(lines).encode() + body


async def _worker(
    host: str,
    port: int,
    request: bytes,
    deadline: float,
    latencies: list[float],
    statuses: Counter[int],
    interval: float = 0.0,
    offset: float = 0.0,
) -> None:
    """Requests back to back on one connection; with `interval`, one every `interval` seconds
    from `offset` on (a steady rate: a late answer delays the next send, and its latency
    shows it)."""
    reader, writer = await asyncio.open_connection(host, port)
    next_send = time.perf_counter() + offset
    try:
        while time.perf_counter() < deadline:
            if interval:
                next_send += interval
                await asyncio.sleep(max(0.0, next_send - time.perf_counter()))
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            statuses[status] += 1
    finally:
        writer.close()


async def run(
    url: str,
    body: bytes,
    seconds: float,
    connections: int,
    headers: dict[str, str],
    rate: float = 0.0,
    method: str = "POST",
) -> dict[str, object]:
    """Closed-loop load on `connections` connections, or with `rate` requests a second spread
    over them."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    _loopback_only(host)
    request = build_request(url, body, headers, method)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    started = time.perf_counter()
    deadline = started + min(seconds, MAX_SECONDS)
    interval = connections / rate if rate else 0.0
    stagger = interval / connections
    # the connections take turns (an even stagger), or a steady rate would arrive in bursts
    await asyncio.gather(
        *(
            _worker(
                host,
                port,
                request,
                deadline,
                latencies,
                statuses,
                interval,
                n * stagger,
            )
            for n in range(connections)
        )
    )
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "req_per_s": len(latencies) / elapsed,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "statuses": {str(code): count for code, count in statuses.items()},
        "client": "asyncio",
    }


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("body_file")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--authorization", help="the Authorization header's value")
    parser.add_argument("--rate", type=float, default=0.0, help="requests a second (0: flat out)")
    parser.add_argument("--method", default="POST", choices=["POST", "PUT", "GET"])
    args = parser.parse_args()
    headers = {}
    if args.authorization:
        headers["Authorization"] = args.authorization
    with open(args.body_file, "rb") as handle:
        body = handle.read()
    work = run(args.url, body, args.seconds, args.connections, headers, args.rate, args.method)
    result = uvloop.run(work) if uvloop is not None else asyncio.run(work)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
