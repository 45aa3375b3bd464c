"""The HTTP server: uvicorn (uvloop + httptools) with limits it does not have on its own.

uvicorn's httptools protocol buffers headers without a bound (ten unfinished 16 MB headers took
the gateway from 108 to 315 MB) and waits for a slow client's headers and body forever. The
protocol here refuses, before the app sees the request:
- headers over `max_header_bytes` in total, or more than `max_headers` of them: 431;
- headers not complete within `header_timeout_seconds` of the request's first byte, or a body
  not complete within `body_timeout_seconds` of its headers: 408.
Each answer is the gateway's JSON error and closes the connection. Connections beyond
`max_connections` get 503 (uvicorn's `limit_concurrency`).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import httptools
import msgspec
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.settings import Settings

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


@dataclass(frozen=True, slots=True)
class ServerLimits:
    max_header_bytes: int
    max_headers: int
    header_timeout_seconds: float
    body_timeout_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerLimits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            header_timeout_seconds=settings.header_timeout_seconds,
            body_timeout_seconds=settings.body_timeout_seconds,
        )


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; answered in `data_received`."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


class CoalescingTransport:
    """A transport whose writes within one turn of the event loop leave in one `write`.

    uvicorn writes a response's status line and headers, then its body: two system calls and
    two TCP segments for every small answer, each charged to the gateway's CPU (on loopback
    the sending side runs the receiving side's TCP work too). Here they wait for the end of
    the loop's turn and go together. Closing sends what waits first; aborting drops it."""

    __slots__ = ("_flushing", "_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._flushing = False

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._pending.append(data)
        if not self._flushing:
            self._flushing = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flushing = False
        pending = self._pending
        if not pending:
            return
        self._pending = []
        if not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def writelines(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        # everything else (is_closing, get_extra_info, pause_reading, set_protocol, ...)
        return getattr(self._transport, name)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with bounded headers and read timeouts, writing each
    response in one piece (`CoalescingTransport`)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    def __init__(self, *args: Any, limits: ServerLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._reading_headers = True
        self._header_bytes = 0
        self._header_count = 0
        self._timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        if self._reading_headers and self._timer is None:
            self._arm(self._limits.header_timeout_seconds, "headers")
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _Refused):
                self._refuse(exc.__context__)
                return
            self._fall_back(exc, data)
            return
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fall_back(exc, data)
            return
        self._unset_keepalive_if_required()
        if self._reading_headers:
            # Unfinished headers: count what they have taken so far, so that a header that
            # never ends cannot grow without bound.
            self._header_bytes += len(data)
            if self._header_bytes > self._limits.max_header_bytes:
                self._refuse(_too_large(self._limits))

    def _fall_back(self, exc: Exception, data: bytes) -> None:
        """uvicorn's own handling of parser errors and upgrades (400, websockets)."""
        if isinstance(exc, httptools.HttpParserUpgrade):
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        self.send_400_response("Invalid HTTP request received.")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._header_bytes = 0
        self._header_count = 0
        if self._timer is None:  # a keep-alive connection's next request: its own deadline
            self._arm(self._limits.header_timeout_seconds, "headers")

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        if self._header_bytes > self._limits.max_header_bytes:
            raise _too_large(self._limits)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self._limits.max_headers:
            raise _Refused(
                431,
                "too_many_headers",
                f"a request carries at most {self._limits.max_headers} headers",
            )
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self._limits.max_header_bytes:
            raise _too_large(self._limits)
        self._reading_headers = False
        self._header_bytes = 0
        self._disarm()
        self._arm(self._limits.body_timeout_seconds, "body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float, what: str) -> None:
        self._timer = self.loop.call_later(seconds, self._timed_out, what)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self, what: str) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if what == "body" and self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # the app already answered; just stop waiting
            return
        seconds = (
            self._limits.header_timeout_seconds
            if what == "headers"
            else self._limits.body_timeout_seconds
        )
        self._refuse(
            _Refused(408, "request_timeout", f"the request's {what} took longer than {seconds:g}s")
        )

    def _refuse(self, refusal: _Refused) -> None:
        self._disarm()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app, if it runs, reads a disconnect
            self.cycle.message_event.set()
        body = msgspec.json.encode({"error": refusal.code, "detail": refusal.detail})
        head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % (
            refusal.status,
            _REASONS[refusal.status],
            len(body),
        )
        self.transport.write(head + b"connection: close\r\n\r\n" + body)
        self.transport.close()


def _too_large(limits: ServerLimits) -> _Refused:
    return _Refused(
        431,
        "headers_too_large",
        f"the request line and headers exceed {limits.max_header_bytes} bytes",
    )


class StoppingServer(uvicorn.Server):
    """uvicorn's server, which freezes the long-lived heap once started (see `startup`), and on
    SIGTERM/SIGINT first ends the app's open event streams: it waits for open connections
    before it stops, and a stream never ends on its own."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # Everything built by now (the app, its services and the lifespan's) lives as long as
        # the process: out of the collector's sight, a full collection scans what requests
        # allocate, not the whole app. Before, full collections paused the event loop ~80 ms
        # at a time under load (OFREP p99 390 ms; with it, 20 ms; make bench).
        gc.collect()
        gc.freeze()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        app = self.config.app if not isinstance(self.config.app, str) else self._loaded_app()
        runtime = getattr(getattr(app, "state", None), "runtime", None)
        events = getattr(runtime, "evaluation_events", None)
        if events is not None:
            events.close()
        super().handle_exit(sig, frame)

    def _loaded_app(self) -> Any:
        """A worker's app (given as an import string), under uvicorn's middleware wrappers."""
        app = getattr(self.config, "loaded_app", None)
        while app is not None and not hasattr(app, "state") and hasattr(app, "app"):
            app = app.app
        return app


def uvicorn_config_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn `Config` options that bound what one client can cost."""
    return {
        "http": functools.partial(
            BoundedHttpToolsProtocol, limits=ServerLimits.from_settings(settings)
        ),
        "limit_concurrency": settings.max_connections,
        # what is still running this long after SIGTERM is cancelled
        "timeout_graceful_shutdown": 10,
        "timeout_keep_alive": settings.keep_alive_seconds,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
    }
