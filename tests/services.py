"""External services for tests: skip when unreachable, fail when CONSENTGATE_REQUIRE_SERVICES=1."""

from __future__ import annotations

import os
import socket

import pytest

POSTGRES_ADMIN_URL = os.environ.get(
    "CONSENTGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


NATS_URL = os.environ.get("CONSENTGATE_TEST_NATS_URL", "nats://127.0.0.1:4222")


def services_required() -> bool:
    return os.environ.get("CONSENTGATE_REQUIRE_SERVICES") == "1"


def require_service(name: str, host: str, port: int) -> None:
    """Skip the test with a clear reason when `name` is unreachable (fail when required)."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return
    except OSError as exc:
        reason = f"{name} is not reachable at {host}:{port} ({exc})"
    if services_required():
        pytest.fail(f"{reason}; CONSENTGATE_REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(f"{reason}; start it or set CONSENTGATE_TEST_POSTGRES_URL / _NATS_URL")


def require_nats() -> str:
    """The test NATS server's URL (JetStream on), or a skip naming it."""
    from urllib.parse import urlsplit

    parts = urlsplit(NATS_URL)
    require_service("NATS", parts.hostname or "127.0.0.1", parts.port or 4222)
    return NATS_URL
