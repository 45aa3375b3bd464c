"""`consentgate core`: a process that applies what the bus delivers, without HTTP.

It opens the same runtime as `serve` (the core's consumer on the shared durable JetStream
consumer, the decision log, segment maintenance, the audit checkpoints and privacy-request
resumption, each safe to run in several processes) and runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading

import structlog

from anonymization import KekSet
from gateway.background import background_loops
from gateway.core_child import parent_gone
from gateway.runtime import open_runtime
from gateway.settings import Settings

log = structlog.get_logger("consentgate.core")
_PARENT_CHECK_SECONDS = 0.5
_STOP_GRACE_SECONDS = 15.0


async def run_core(settings: Settings, keks: KekSet) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watch = None
    if settings.core_changes_fd is not None:  # `serve`'s core child: it stops with `serve`
        watch = asyncio.create_task(_watch_parent(os.getppid(), stop), name="parent-watch")
    async with open_runtime(settings, keks) as runtime, background_loops(runtime):
        log.info("core_started", bus=settings.bus_url)
        await stop.wait()
        log.info("core_stopping")
    if watch is not None:
        watch.cancel()


async def _watch_parent(parent_pid: int, stop: asyncio.Event) -> None:
    # a poll: nothing signals a parent's death to its child without Linux's prctl
    while not parent_gone(parent_pid):  # noqa: ASYNC110
        await asyncio.sleep(_PARENT_CHECK_SECONDS)
    stop.set()
    # and if stopping hangs (its database gone with it, say), it still ends
    deadline = threading.Timer(_STOP_GRACE_SECONDS, os._exit, args=(1,))
    deadline.daemon = True  # it must not itself hold the process once stopping is done
    deadline.start()
    with contextlib.suppress(OSError):  # stderr may have gone with the parent (a closed pipe)
        log.warning("core_parent_gone", parent=parent_pid)
