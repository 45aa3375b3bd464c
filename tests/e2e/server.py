"""Running the real `consentgate serve` in a subprocess, on a free loopback port."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from segment.analytics.client import Client as SegmentClient

from benchmarks.servers import free_port, stop_process
from tests.helpers import embedded_environ

CONSENTGATE = str(Path(sys.executable).parent / "consentgate")


class _Child:
    """A process the tests start, kill (-9, as in a crash) and stop (SIGTERM, then SIGKILL)."""

    process: subprocess.Popen[bytes] | None = None

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, as in a crash."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_process(self.process)


class Gateway(_Child):
    """One gateway process on its own SQLite file and key file under `workdir`."""

    def __init__(self, workdir: Path, **extra_env: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            **embedded_environ(workdir),
            "CONSENTGATE_PORT": str(self.port),
            **extra_env,
        }
        self.cli("migrate")  # as a user does before the first command that needs the database

    def segment_sdk(self, write_key: str, errors: list[Any]) -> SegmentClient:
        """Segment's Python SDK pointed at this gateway, sending at once, errors collected."""
        return SegmentClient(
            write_key, host=self.url, sync_mode=True, on_error=lambda e, b: errors.append(e)
        )

    def cli(self, *args: str) -> dict[str, Any]:
        """Run a CLI command; its stdout must be exactly one JSON object."""
        done = subprocess.run(
            [CONSENTGATE, *args], env=self.env, capture_output=True, check=True, timeout=60
        )
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def start(self, *serve_options: str, timeout: float = 30.0) -> None:
        with (
            open(self.workdir / "stdout.log", "ab") as stdout,
            open(self.workdir / "stderr.log", "ab") as stderr,
        ):
            self.process = subprocess.Popen(
                [CONSENTGATE, "serve", *serve_options],
                env=self.env,
                stdout=stdout,
                stderr=stderr,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited early:\n{self.logs()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gateway not ready within {timeout}s:\n{self.logs()}")

    def event_counts(self, server_key: str, user_id: str) -> dict[str, int]:
        """The user's profile's event counts, or {} while it has no profile."""
        response = httpx.get(
            f"{self.url}/v1/profiles/{user_id}", headers={"Authorization": f"Bearer {server_key}"}
        )
        if response.status_code != 200:
            return {}
        counts: dict[str, int] = response.json()["computed"]["event_counts"]
        return counts

    def logs(self) -> str:
        return "".join(
            (self.workdir / name).read_text(errors="replace")
            for name in ("stdout.log", "stderr.log")
            if (self.workdir / name).exists()
        )


class CoreProcess(_Child):
    """`consentgate core` beside a gateway, with the gateway's settings."""

    def __init__(self, gateway: Gateway, name: str = "core") -> None:
        self.gateway = gateway
        self.log = gateway.workdir / f"{name}.log"

    def start(self) -> None:
        with open(self.log, "ab") as output:
            self.process = subprocess.Popen(
                [CONSENTGATE, "core"], env=self.gateway.env, stdout=output, stderr=output
            )


class NatsServer(_Child):
    """A private NATS server with JetStream on a free loopback port (fault tests restart it;
    the machine's own server stays untouched)."""

    BINARY = "/usr/sbin/nats-server"

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.store = workdir / "nats"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.BINARY, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                import socket

                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the private nats-server did not start")


class PostgresServer:
    """A private PostgreSQL cluster on a free loopback port (a fault test stops it, as a crash
    would, and starts it again; the machine's own server stays untouched). Run as the
    `postgres` user when the tests run as root, as PostgreSQL requires."""

    BIN = Path("/usr/lib/postgresql")

    def __init__(self) -> None:
        versions = sorted(self.BIN.glob("*/bin/pg_ctl")) if self.BIN.exists() else []
        if not versions:
            raise FileNotFoundError("no PostgreSQL server binaries under /usr/lib/postgresql")
        self.bin = versions[-1].parent
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        # its own folder under /tmp: pytest's are private to root, and the cluster is the
        # postgres user's
        self.folder = Path(tempfile.mkdtemp(prefix="consentgate-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        self.data = self.folder / "data"
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def _run(self, tool: str, *args: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*prefix, str(self.bin / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-w", "start")

    def crash(self) -> None:
        """Stop at once, as a crash would (no checkpoint; recovery replays the WAL)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)
