"""`consentgate core`: a process that applies what the bus delivers, without HTTP.

It opens the same runtime as `serve` (the core's consumer on the shared durable JetStream
consumer, the decision log, segment maintenance, the audit checkpoints and privacy-request
resumption, each safe to run in several processes) and runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import signal

import structlog

from anonymization import KekSet
from gateway.background import background_loops
from gateway.runtime import open_runtime
from gateway.settings import Settings

log = structlog.get_logger("consentgate.core")


async def run_core(settings: Settings, keks: KekSet) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with open_runtime(settings, keks) as runtime, background_loops(runtime):
        log.info("core_started", bus=settings.bus_url)
        await stop.wait()
        log.info("core_stopping")
