"""What one client can cost the real server: header size and count, read timeouts, connections."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import Gateway


@pytest.fixture
def bounded(tmp_path: Path) -> Iterator[Gateway]:
    server = Gateway(
        tmp_path,
        CONSENTGATE_HEADER_TIMEOUT_SECONDS="1",
        CONSENTGATE_BODY_TIMEOUT_SECONDS="1",
        CONSENTGATE_MAX_CONNECTIONS="8",
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _connect(gateway: Gateway) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    connection.settimeout(10)
    return connection


def _answer(connection: socket.socket) -> bytes:
    """One whole response: its headers and a Content-Length body, however the bytes arrive."""
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while b"\r\n\r\n" not in received:
            chunk = connection.recv(4096)
            if not chunk:
                return received
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")[1:]
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        while len(body) < length:
            chunk = connection.recv(4096)
            if not chunk:
                break
            body += chunk
        return head + b"\r\n\r\n" + body
    return received


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_oversized_headers_get_431(bounded: Gateway) -> None:
    """Headers past the byte limit are refused with 431 before they end."""
    with _connect(bounded) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 64 * 1024)
        answer = _answer(connection)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b'"error":"headers_too_large"' in answer


def test_too_many_headers_get_431(bounded: Gateway) -> None:
    """More headers than the limit are refused with 431."""
    headers = b"".join(b"X-%d: 1\r\n" % i for i in range(150))
    with _connect(bounded) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        answer = _answer(connection)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b'"error":"too_many_headers"' in answer


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
        b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
    ],
    ids=["headers", "body"],
)
def test_slow_requests_get_408(bounded: Gateway, request_bytes: bytes) -> None:
    """Headers or a body that do not arrive in time get 408 and the connection closes."""
    with _connect(bounded) as connection:
        connection.sendall(request_bytes)
        started = time.monotonic()
        answer = _answer(connection)
        assert time.monotonic() - started < 5
        assert connection.recv(1) == b""  # closed
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert bounded.process is not None
    assert "unhandled_error" not in bounded.logs()


def test_unfinished_huge_headers_do_not_grow_memory(bounded: Gateway) -> None:
    """Ten clients each pushing a 16 MB header get cut off; the server's memory stays put."""
    assert bounded.process is not None
    before = _rss_kb(bounded.process.pid)
    chunk = b"a" * 256 * 1024
    connections = [_connect(bounded) for _ in range(10)]
    try:
        for connection in connections:
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        for connection in connections:
            with contextlib.suppress(OSError):
                for _ in range(64):  # up to 16 MB, until the server cuts us off
                    connection.sendall(chunk)
        growth_mb = (_rss_kb(bounded.process.pid) - before) / 1024
    finally:
        for connection in connections:
            connection.close()
    assert growth_mb < 30, f"RSS grew by {growth_mb:.0f} MB"


def test_connections_beyond_the_cap_get_503(bounded: Gateway) -> None:
    """With the connection cap reached, a further request is answered 503."""
    held = [_connect(bounded) for _ in range(8)]
    try:
        for connection in held:
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # unfinished
        with _connect(bounded) as extra:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = _answer(extra)
    finally:
        for connection in held:
            connection.close()
    assert answer.startswith(b"HTTP/1.1 503 ")


def test_a_kept_alive_connections_next_request_has_its_own_header_deadline(
    bounded: Gateway,
) -> None:
    """After a full request, a second one that never finishes its headers still gets 408."""
    with _connect(bounded) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _answer(connection).startswith(b"HTTP/1.1 200 ")
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        answer = _answer(connection)
        assert time.monotonic() - started < 5
    assert answer.startswith(b"HTTP/1.1 408 ")


def _responses(
    connection: socket.socket, count: int, head_only: frozenset[int] = frozenset()
) -> list[bytes]:
    """`count` whole responses read off one connection, however the bytes arrive (pipelined
    answers may come in one read); the `head_only` ones (answers to a HEAD) have no body."""
    received = b""
    answers: list[bytes] = []
    while len(answers) < count:
        head, found, rest = received.partition(b"\r\n\r\n")
        if found:
            length = 0
            if len(answers) not in head_only:
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")[1:]
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
            if len(rest) >= length:
                answers.append(head + b"\r\n\r\n" + rest[:length])
                received = rest[length:]
                continue
        chunk = connection.recv(4096)
        if not chunk:
            break
        received += chunk
    assert received == b"", received  # nothing beyond the answers
    return answers


def test_answers_on_one_connection_arrive_whole_and_in_order(bounded: Gateway) -> None:
    """The server writes each answer in one piece: pipelined requests, a HEAD and a closing
    request on one keep-alive connection get their answers whole, in order, then the close."""
    with _connect(bounded) as connection:
        connection.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: first\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: second\r\n\r\n"
            b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: last\r\nConnection: close\r\n\r\n"
        )
        first, second, head, last = _responses(connection, 4, head_only=frozenset({2}))
        for answer, request_id in ((first, b"first"), (second, b"second"), (last, b"last")):
            assert answer.startswith(b"HTTP/1.1 200")
            assert b"x-request-id: " + request_id in answer
            assert answer.endswith(b'{"status":"ok"}')
        assert head.startswith(b"HTTP/1.1 ")
        assert head.endswith(b"\r\n\r\n")
        assert connection.recv(4096) == b""  # then the server closed it
