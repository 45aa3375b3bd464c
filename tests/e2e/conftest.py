"""End-to-end fixtures: a real gateway process per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import Gateway


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    server = Gateway(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
