"""The single-flag evaluation served directly (`gateway.ofrep_direct`) answers exactly as the
routed handler does: status, headers, body and span, success and every failure alike."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from anonymization import KekSet
from gateway.app import create_app
from gateway.settings import Settings
from gateway.sources import CreatedSource
from observability import create_tracer_provider
from tests.helpers import basic, bearer
from tests.test_ofrep_http import _define, _known_user, _token

Client = TestClient
URL = "/ofrep/v1/evaluate/flags/"
_VARYING = {"date", "x-request-id"}


@pytest.fixture
def gateway(migrated: Settings, keks: KekSet, exported: InMemorySpanExporter) -> Iterator[Client]:
    provider = create_tracer_provider(service_version="test", exporter=exported)
    with TestClient(create_app(migrated, keks, tracer_provider=provider)) as client:
        yield client


def _answer(client: Client, direct: bool, path: str, **request: Any) -> tuple[Any, ...]:
    """One request by one path, and what a client and a trace see of it."""
    served = client.app.state.ofrep_direct
    served.enabled = direct
    before = served.served
    answer = client.post(path, **request)
    taken = served.served - before
    served.enabled = True
    headers = sorted((k, v) for k, v in answer.headers.items() if k not in _VARYING)
    return taken, answer.status_code, headers, answer.content


def _same(client: Client, path: str, exported: InMemorySpanExporter, **request: Any) -> int:
    """Both paths give the same answer and the same span; the status."""
    exported.clear()
    taken, *direct = _answer(client, True, path, **request)
    routed_taken, *routed = _answer(client, False, path, **request)
    assert (taken, routed_taken) == (1, 0)  # the first went directly, the second did not
    assert direct == routed
    spans = [
        (s.name, _stable(s.attributes), s.status.status_code) for s in exported.get_finished_spans()
    ]
    assert spans[0] == spans[1]
    status: int = direct[0]
    return status


def _stable(attributes: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(attributes).items() if k != "consentgate.request_id"}


def test_every_answer_is_the_routed_one(
    gateway: Client, source: CreatedSource, admin: dict[str, str], exported: InMemorySpanExporter
) -> None:
    _define(gateway, admin)
    _known_user(gateway, source)
    server = bearer(source.server_key)
    known = {"context": {"targetingKey": "ofrep-ana"}}
    cases: list[tuple[str, dict[str, Any], int]] = [
        ("tour", {"headers": server, "json": known}, 200),  # boolean, a rule
        ("hero", {"headers": server, "json": known}, 200),  # string, a split
        ("config", {"headers": server, "json": {}}, 200),  # object, for everyone
        ("config", {"headers": server, "content": b""}, 200),  # no body at all
        ("tour", {"headers": server, "json": {"context": {"targetingKey": "nobody"}}}, 200),
        ("tour", {"headers": _token(gateway, source, "ofrep-ana"), "json": {}}, 200),
        ("nope", {"headers": server, "json": known}, 404),
        ("tour", {"headers": server, "content": b"{not json"}, 400),
        ("tour", {"headers": server, "json": [1, 2]}, 400),
        ("tour", {"headers": server, "json": {"context": "ana"}}, 400),
        ("tour", {"headers": server, "json": {"context": {"targetingKey": 7}}}, 400),
        ("hero", {"headers": server, "json": {}}, 400),  # TARGETING_KEY_MISSING
        ("tour", {"headers": server, "content": b"[" * 100_000}, 413),  # over the app's limit
        ("config", {"headers": server, "content": b" " * 60_000 + b"{}"}, 200),
        ("tour", {"headers": basic(source.write_key), "json": known}, 401),
        ("tour", {"json": known}, 401),
        ("tour", {"headers": bearer("sk_unknown"), "json": known}, 401),
        ("tour", {"headers": bearer("st_forged.token"), "json": {}}, 401),
        ("tour", {"headers": server, "json": known, "params": {"userId": "ofrep-ana"}}, 200),
    ]
    for key, request, status in cases:
        assert _same(gateway, URL + key, exported, **request) == status, (key, request)


def test_a_rate_limited_caller_is_refused_alike(
    migrated: Settings, keks: KekSet, source: CreatedSource, admin: dict[str, str],
    exported: InMemorySpanExporter,
) -> None:  # fmt: skip
    limited = msgspec.structs.replace(
        migrated, ofrep_rate_limit_per_second=1.0, ofrep_rate_limit_burst=1
    )
    provider = create_tracer_provider(service_version="test", exporter=exported)
    with TestClient(create_app(limited, keks, tracer_provider=provider)) as client:
        _define(client, admin)
        request = {"headers": bearer(source.server_key), "json": {}}
        answers = []
        for direct in (True, False):
            time.sleep(1.1)  # a full bucket for each path
            answers.append([_answer(client, direct, URL + "config", **request)[1:] for _ in "ab"])
        assert answers[0] == answers[1]
        assert [status for status, _, _ in answers[0]] == [200, 429]
        assert ("retry-after", "1") in answers[0][1][1]


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        st.binary(max_size=40),
        _JSONISH.map(msgspec.json.encode),
        st.builds(lambda context: msgspec.json.encode({"context": context}), _JSONISH),
    ),
    key=st.sampled_from(["tour", "hero", "config", "missing"]),
)
def test_any_body_gets_the_routed_answer(
    gateway: Client, source: CreatedSource, body: bytes, key: str
) -> None:
    headers = {**bearer(source.server_key), "content-type": "application/json"}
    direct = _answer(gateway, True, URL + key, headers=headers, content=body)
    routed = _answer(gateway, False, URL + key, headers=headers, content=body)
    assert (direct[0], routed[0]) == (1, 0)
    assert direct[1:] == routed[1:]
