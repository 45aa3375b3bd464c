"""The server's coalescing transport: a response's writes leave in one piece, in order, and
nothing waits past a close."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.server import CoalescingTransport


class _Recording:
    """A transport that records what reaches it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def write_eof(self) -> None:
        self.calls.append(("write_eof", None))

    def close(self) -> None:
        self.closing = True
        self.calls.append(("close", None))

    def abort(self) -> None:
        self.closing = True
        self.calls.append(("abort", None))

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def _run(steps: Any) -> list[tuple[str, Any]]:
    async def main() -> list[tuple[str, Any]]:
        inner = _Recording()
        transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        await steps(transport)
        await asyncio.sleep(0)  # the end of the turn
        return inner.calls

    return asyncio.run(main())


def test_one_turns_writes_leave_together_in_order() -> None:
    async def steps(transport: CoalescingTransport) -> None:
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b"")
        transport.writelines([b'{"a":', b"1}"])

    assert _run(steps) == [("write", b'HTTP/1.1 200 OK\r\n\r\n{"a":1}')]


def test_each_turn_flushes_its_own() -> None:
    async def steps(transport: CoalescingTransport) -> None:
        transport.write(b"one")
        await asyncio.sleep(0)
        transport.write(b"two")

    assert _run(steps) == [("write", b"one"), ("write", b"two")]


def test_close_and_eof_send_what_waits_first_and_abort_drops_it() -> None:
    async def closing(transport: CoalescingTransport) -> None:
        transport.write(b"last")
        transport.close()
        transport.write(b"after")  # a write after close goes nowhere

    assert _run(closing) == [("write", b"last"), ("close", None)]

    async def ending(transport: CoalescingTransport) -> None:
        transport.write(b"body")
        transport.write_eof()

    assert _run(ending) == [("write", b"body"), ("write_eof", None)]

    async def aborting(transport: CoalescingTransport) -> None:
        transport.write(b"dropped")
        transport.abort()

    assert _run(aborting) == [("abort", None)]


def test_everything_else_is_the_transports() -> None:
    async def steps(transport: CoalescingTransport) -> None:
        assert transport.get_extra_info("peername") == "info:peername"
        assert transport.is_closing() is False

    assert _run(steps) == []
