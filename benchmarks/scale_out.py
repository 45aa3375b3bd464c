"""The scale-out shape (PostgreSQL + NATS JetStream), a section of its own in `make bench`.

- `/v1/batch` events/s into JetStream with 1 and 2 gateway workers (`serve --workers N
  --no-core`), beside raw nats-py pipelined publishes of the same envelopes in the same run;
- core events/s with 1 and 2 `consentgate core` processes, draining a backlog left in the
  durable consumer;
- event -> profile latency (p50, p99) at 2,000 events/s, one gateway worker and one core.

It needs PostgreSQL and NATS (`CONSENTGATE_TEST_POSTGRES_URL`, `CONSENTGATE_TEST_NATS_URL`, or
their loopback defaults); without them the section is skipped and says why.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks import e2e
from benchmarks.http import run_load
from benchmarks.payloads import batch_body
from benchmarks.servers import BIN, Server, _readyz, cli, free_port, gateway_env, stop_process

POSTGRES_ADMIN_URL = os.environ.get(
    "CONSENTGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
NATS_URL = os.environ.get("CONSENTGATE_TEST_NATS_URL", "nats://127.0.0.1:4222")
BATCH = 100
BACKLOG_EVENTS = 20_000
E2E_RATE = 2000.0  # events/s offered for the event -> profile latency


def available() -> str | None:
    """None when PostgreSQL and NATS answer; else why the section is skipped."""
    for name, url, port in (("PostgreSQL", POSTGRES_ADMIN_URL, 5432), ("NATS", NATS_URL, 4222)):
        parts = urlsplit(url)
        try:
            with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or port), 1):
                pass
        except OSError:
            return f"{name} is not reachable at {url}"
    return None


def measure(workdir: Path, seconds: float) -> dict[str, float]:
    figures: dict[str, float] = {}
    with scratch_database() as database_url, _stream() as stream:
        env = {
            **gateway_env(workdir, free_port()),
            "CONSENTGATE_DATABASE_URL": database_url,
            "CONSENTGATE_BUS_URL": NATS_URL,
            "CONSENTGATE_NATS_STREAM": stream,
        }
        cli(env, "migrate")
        source = cli(env, "sources", "create", "bench", "--jurisdiction", "none")
        body = batch_body(BATCH)
        figures["raw_publish_msgs_per_s"] = asyncio.run(_raw_publish(seconds))
        for workers in (1, 2):
            port = free_port()
            command = [str(BIN / "consentgate"), "serve", "--workers", str(workers), "--no-core"]
            with Server(command, {**env, "CONSENTGATE_PORT": str(port)}, port, _readyz) as server:
                url = server.url + "/v1/batch"
                run_load(url, body, min(2.0, seconds), source["write_key"])  # warm-up
                _wait_relayed(env)
                started = time.monotonic()
                result = run_load(url, body, seconds, source["write_key"])
                accepted = result["requests"] * BATCH
                _wait_relayed(env)
                # into JetStream: accepted events over the time until the last one was relayed
                # (a 200 only says the event is in the outbox)
                elapsed = time.monotonic() - started
                figures[f"scaleout_batch_{workers}w_events_per_s"] = accepted / elapsed
                figures[f"scaleout_batch_{workers}w_accepted_events_per_s"] = accepted / seconds
                figures[f"scaleout_batch_{workers}w_p99_ms"] = result["p99_ms"]
        for cores in (1, 2):
            figures[f"scaleout_core_{cores}_events_per_s"] = _drain_rate(env, cores)
        figures.update(_event_to_profile(workdir, env, source, seconds))
    return figures


def _event_to_profile(
    workdir: Path, env: dict[str, str], source: dict[str, Any], seconds: float
) -> dict[str, float]:
    """Event -> profile latency at E2E_RATE events/s: one gateway worker, one core process."""
    port = free_port()
    command = [str(BIN / "consentgate"), "serve", "--no-core"]
    core = subprocess.Popen(
        [str(BIN / "consentgate"), "core"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with Server(command, {**env, "CONSENTGATE_PORT": str(port)}, port, _readyz) as server:
            measured = e2e.measure(
                server.url, workdir, source, E2E_RATE, seconds, env["CONSENTGATE_DATABASE_URL"]
            )
    finally:
        stop_process(core)
    return {f"scaleout_{name}": value for name, value in measured.items()}


def _wait_relayed(env: dict[str, str], timeout: float = 120.0) -> None:
    """Until the relay has emptied the outbox (the cores drain JetStream later)."""
    deadline = time.monotonic() + timeout
    while not _outbox_empty(env):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the outbox was not relayed within {timeout:.0f} s")
        time.sleep(0.05)


def _outbox_empty(env: dict[str, str]) -> bool:
    return asyncio.run(_outbox_count(env["CONSENTGATE_DATABASE_URL"])) == 0


async def _outbox_count(database_url: str) -> int:
    import asyncpg

    connection = await asyncpg.connect(database_url)
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM bus_outbox WHERE relayed_at IS NULL"
        )
        return count
    finally:
        await connection.close()


def _drain_rate(env: dict[str, str], cores: int) -> float:
    """Events/s `cores` core processes apply, from a backlog of BACKLOG_EVENTS, timed from
    the first batch applied (not counting the processes' start)."""
    stream = env["CONSENTGATE_NATS_STREAM"]
    asyncio.run(_publish_backlog(stream, BACKLOG_EVENTS))
    backlog = asyncio.run(_pending(stream))
    processes = [
        subprocess.Popen(
            [str(BIN / "consentgate"), "core"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(cores)
    ]
    launched = time.monotonic()
    started: tuple[float, int] | None = None
    try:
        while (pending := asyncio.run(_pending(stream))) > 0:
            if started is None and pending < backlog:
                started = (time.monotonic(), pending)
            if time.monotonic() - launched > 300:
                raise RuntimeError("the core did not drain the backlog within 300 s")
            time.sleep(0.05)
        if started is None:
            raise RuntimeError("the backlog drained between two looks: make it larger")
        return started[1] / (time.monotonic() - started[0])
    finally:
        for process in processes:
            stop_process(process)


def _envelopes(count: int) -> list[tuple[str, bytes]]:
    """Event envelopes as the gateway publishes them (pseudonymous, scrubbed)."""
    from datetime import UTC, datetime

    from bus import EventEnvelope, encode_event

    now = datetime.now(UTC)
    messages = []
    for n in range(count):
        envelope = EventEnvelope(
            message_id=f"m1_{secrets.token_urlsafe(16)}",
            source_id="src_bench",
            type="track",
            subject=f"p1_{n % 5000:022d}",
            anonymous=None,
            received_at=now,
            timestamp=now,
            event="Onboarding Step Completed",
            properties={"step": n % 7, "flow": "onboarding_v2", "ms": 1834},
            context={"locale": "en-GB", "timezone": "Europe/London"},
            purposes=("analytics",),
        )
        message = encode_event(envelope)
        messages.append((message.message_id, message.payload))
    return messages


async def _raw_publish(seconds: float) -> float:
    """nats-py publishes of gateway envelopes, 500 in flight, into a scratch stream."""
    import nats

    stream = "BENCHRAW" + secrets.token_hex(3).upper()
    connection = await nats.connect(NATS_URL)
    js = connection.jetstream()
    await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"], duplicate_window=120)
    envelopes = _envelopes(5000)
    sent = 0
    started = time.monotonic()
    try:
        while time.monotonic() - started < seconds:
            window = envelopes[(sent % 5000) : (sent % 5000) + 500]
            await asyncio.gather(
                *(
                    js.publish(
                        f"{stream.lower()}.events",
                        payload,
                        headers={"Nats-Msg-Id": f"{message_id}-{sent}"},
                    )
                    for message_id, payload in window
                )
            )
            sent += len(window)
        return sent / (time.monotonic() - started)
    finally:
        await js.delete_stream(stream)
        await connection.close()


async def _publish_backlog(stream: str, count: int) -> None:
    """Put `count` envelopes in the stream, where the core's durable consumer finds them."""
    import nats

    connection = await nats.connect(NATS_URL)
    js = connection.jetstream()
    try:
        envelopes = _envelopes(count)
        for first in range(0, count, 500):
            await asyncio.gather(
                *(
                    js.publish(f"{stream.lower()}.events", payload, headers={"Nats-Msg-Id": mid})
                    for mid, payload in envelopes[first : first + 500]
                )
            )
    finally:
        await connection.close()


async def _pending(stream: str) -> int:
    import nats

    connection = await nats.connect(NATS_URL)
    try:
        info = await connection.jetstream().consumer_info(stream, "core")
        return int(info.num_pending) + int(info.num_ack_pending)
    except Exception:  # the consumer is created by the first core process
        return 1
    finally:
        await connection.close()


@contextmanager
def scratch_database(admin_url: str = POSTGRES_ADMIN_URL, prefix: str = "bench") -> Iterator[str]:
    """A fresh, empty PostgreSQL database (its URL), dropped afterwards (the tests' too)."""
    from sqlalchemy.engine import make_url

    admin = make_url(admin_url)
    name = f"consentgate_{prefix}_" + secrets.token_hex(4)

    async def execute(statement: str) -> None:
        import asyncpg

        connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def _stream() -> Iterator[str]:
    name = "CGBENCH" + secrets.token_hex(3).upper()
    try:
        yield name
    finally:

        async def delete() -> None:
            import nats

            connection = await nats.connect(NATS_URL)
            try:
                await connection.jetstream().delete_stream(name)
            except Exception:  # never created
                pass
            finally:
                await connection.close()

        asyncio.run(delete())
