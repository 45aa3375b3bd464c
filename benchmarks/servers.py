"""The servers under test, each its own process on a free loopback port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, a graceful wait, then SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _readyz(url: str) -> bool:
    return httpx.get(url + "/readyz", timeout=1).status_code == 200


def _decodes(url: str) -> bool:
    return httpx.post(url + "/v1/track", content=b"{}", timeout=1).status_code == 200


class Server:
    """A process serving HTTP on 127.0.0.1:`port`, ready once `probe(url)` is true."""

    def __init__(
        self, command: list[str], env: dict[str, str], port: int, probe: Callable[[str], bool]
    ) -> None:
        self.command = command
        self.env = env
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.probe = probe
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        self.process = subprocess.Popen(
            self.command, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command[0]} exited: {self.process.stderr.read()!r}")  # type: ignore[union-attr]
            try:
                if self.probe(self.url):
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.command} not ready within 30 s")

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            stop_process(self.process)

    def cpu_seconds(self) -> float:
        """User and system CPU used so far by the process and the children it runs (`serve`'s
        core child): the server's whole cost."""
        assert self.process is not None
        pid = self.process.pid
        children = [
            int(child)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
        return sum(_cpu_seconds(process) for process in (pid, *children))

    def peak_rss_mb(self) -> float:
        """The process's high-water resident set size (VmHWM), in MiB."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:  # it has just exited
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gateway_env(workdir: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "CONSENTGATE_DATABASE_URL": f"sqlite:///{workdir}/bench.db",
        "CONSENTGATE_KEY_FILE": str(workdir / "keys" / "master.key"),
        "CONSENTGATE_PORT": str(port),
        "CONSENTGATE_LOG_LEVEL": "warning",
        # the bench measures throughput: the per-write-key rate limit would cap it
        "CONSENTGATE_RATE_LIMIT_PER_SECOND": "0",
    }


def cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    """A `consentgate` command's JSON answer."""
    done = subprocess.run(
        [str(BIN / "consentgate"), *args], env=env, capture_output=True, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def create_source(env: dict[str, str], jurisdiction: str = "gdpr") -> dict[str, Any]:
    return cli(env, "sources", "create", "bench", "--jurisdiction", jurisdiction)


def gateway(
    workdir: Path, jurisdiction: str = "gdpr", **extra_env: str
) -> tuple[Server, dict[str, Any]]:
    port = free_port()
    env = {**gateway_env(workdir, port), **extra_env}
    cli(env, "migrate")  # the CLI's other commands refuse a database that does not exist
    source = create_source(env, jurisdiction)
    return Server([str(BIN / "consentgate"), "serve"], env, port, _readyz), source


def bare() -> Server:
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.bare_app", "--port", str(port)]
    return Server(command, dict(os.environ), port, _decodes)
