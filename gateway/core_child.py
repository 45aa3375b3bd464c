"""The embedded shape's core in a child process (`core_process`): `serve` starts it, restarts
it if it dies, and stops it on the way out; it stops by itself if `serve` dies (kill -9).

The child is `consentgate core` on the same SQLite database: it takes the units the gateway
commits off the outbox (looking every few milliseconds: nothing in its process wakes it) and
writes what each commit changed to a pipe the gateway reads (`gateway.core_changes`), so that
the gateway's cached profile views and evaluation streams follow as with the core in process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import structlog

log = structlog.get_logger("consentgate.core_child")

_RESTART_DELAY_SECONDS = 1.0
_STOP_TIMEOUT_SECONDS = 15.0
_COMMAND = "import sys; from gateway.cli import main; sys.exit(main(['core']))"


class CoreChild:
    def __init__(self, changes_fd: int, environment: dict[str, str]) -> None:
        self._fd = changes_fd
        self._environment = environment
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._supervise, name="core-child", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """SIGTERM (the child finishes the batch it is applying), SIGKILL past the timeout."""
        self._stopping.set()
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(_STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._thread.join(_STOP_TIMEOUT_SECONDS)

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                if self._stopping.is_set():
                    return
                self._process = self._spawn()
            code = self._process.wait()
            if self._stopping.is_set():
                return
            log.error("core_child_exited", code=code, restart_in_s=_RESTART_DELAY_SECONDS)
            self._stopping.wait(_RESTART_DELAY_SECONDS)

    def _spawn(self) -> subprocess.Popen[bytes]:
        environment = {
            **os.environ,
            **self._environment,
            "CONSENTGATE_CORE": "true",
            "CONSENTGATE_CORE_PROCESS": "false",
            "CONSENTGATE_CORE_CHANGES_FD": str(self._fd),
        }
        command = [sys.executable, "-c", _COMMAND]  # this interpreter, a constant program
        return subprocess.Popen(command, env=environment, pass_fds=(self._fd,))  # noqa: S603


def parent_gone(parent_pid: int) -> bool:
    """Whether the `serve` that started this child has died (it is reparented then)."""
    return os.getppid() != parent_pid
