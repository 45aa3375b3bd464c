"""Fuzzing every endpoint with every credential kind. Whatever comes in, no answer is a 5xx.

Bodies are arbitrary bytes, arbitrary JSON, or, mostly, a valid body of the route's kind with
one to three places replaced by something else (deep nesting, times in year 1, lists where a
string belongs, …) and sometimes corrupted after encoding (invalid UTF-8, nesting past any
limit, truncation): a fuzzed body must get past the first check to reach the code behind it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator

from anonymization import KekSet
from gateway.app import create_app
from gateway.settings import Settings
from gateway.sources import CreatedSource
from tests.helpers import basic, bearer

Client = TestClient

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)
_TIMES = st.datetimes().map(lambda moment: moment.isoformat() + "Z") | st.sampled_from(
    ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1969-12-31T23:59:59Z", "not a time"]
)
_IDS = st.text(max_size=20) | st.integers(min_value=-(2**70), max_value=2**70)


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


_REPLACEMENTS = st.one_of(
    _JSON,
    _TIMES,
    _IDS,
    st.integers(0, 1200).map(_nested),
    st.sampled_from(
        ["", " ", "\u200b", "a" * 5000, "a@b.co", "COtybn4PA_zT4KjACBENAPCIAEBAAECAAI"]
    ),
)

_VALID_CALL: dict[str, Any] = {
    "type": "track",
    "userId": "u1",
    "anonymousId": "a1",
    "event": "Clicked",
    "properties": {"plan": "pro"},
    "context": {"consent": {"categoryPreferences": {"analytics": True}}, "ip": "10.1.2.3"},
}
_CALL_PLACES: list[tuple[Any, ...]] = [
    ("type",),
    ("userId",),
    ("anonymousId",),
    ("event",),
    ("timestamp",),
    ("sentAt",),
    ("originalTimestamp",),
    ("messageId",),
    ("properties",),
    ("properties", "plan"),
    ("traits",),
    ("groupId",),
    ("previousId",),
    ("writeKey",),
    ("integrations",),
    ("name",),
    ("context",),
    ("context", "consent"),
    ("context", "consent", "analytics_storage"),
    ("context", "consent", "ad_storage"),
    ("context", "consent", "categoryPreferences"),
    ("context", "consent", "tcf"),
    ("context", "consent", "gpc"),
    ("context", "gdpr_consent"),
    ("context", "consentManagement"),
    ("context", "gpc"),
    ("context", "ip"),
    ("context", "userAgent"),
    ("context", "traits"),
    ("context", "page"),
]
# kind -> (a valid body, the places a fuzzed one replaces)
_VALID: dict[str, tuple[Any, list[tuple[Any, ...]]]] = {
    "call": (_VALID_CALL, _CALL_PLACES),
    "batch": (
        {"batch": [_VALID_CALL, _VALID_CALL]},
        [("batch",), ("context",), ("sentAt",), ("integrations",), ("writeKey",)]
        + [("batch", 1, *place) for place in _CALL_PLACES],
    ),
    "consent": (
        {"purposes": {"analytics": True}, "policy_version": "v1"},
        [
            ("purposes",),
            ("purposes", "analytics"),
            ("purposes", "x"),
            ("policy_version",),
            ("source",),
            ("subject",),
        ],
    ),
    "privacy": (
        {"type": "erasure", "userId": "u1"},
        [("type",), ("userId",), ("anonymousId",), ("purposes",), ("x",)],
    ),
    "token": ({"userId": "u1", "ttl_seconds": 600}, [("userId",), ("ttl_seconds",), ("x",)]),
}


def _replaced(body: Any, place: tuple[Any, ...], value: Any) -> Any:
    """`body` with the value at `place` replaced (created where missing)."""
    if not place:
        return value
    head, rest = place[0], place[1:]
    if isinstance(body, list) and isinstance(head, int) and head < len(body):
        return [*body[:head], _replaced(body[head], rest, value), *body[head + 1 :]]
    base = dict(body) if isinstance(body, dict) else {}
    base[head] = _replaced(base.get(head), rest, value)
    return base


def _corrupt(body: bytes, how: int) -> bytes:
    """Valid JSON made invalid as careless clients manage: bad UTF-8, deep nesting, cut off."""
    if how == 1:
        return body.replace(b'"', b'"\xff', 1)
    if how == 2:
        return b'{"a":' * 1500 + body + b"}" * 1500
    if how == 3:
        return body[: len(body) // 2]
    return body


@st.composite
def _mutated(draw: st.DrawFn, kind: str) -> bytes:
    body, places = _VALID[kind]
    for _ in range(draw(st.integers(1, 3))):
        body = _replaced(body, draw(st.sampled_from(places)), draw(_REPLACEMENTS))
    return _corrupt(json.dumps(body).encode(), draw(st.integers(0, 6)))


_RANDOM_BODIES = st.binary(max_size=300) | _JSON.map(lambda value: json.dumps(value).encode())
_PATH_VALUES = st.text(
    alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=30
).map(lambda text: quote(text, safe=""))
_NUMBERS = st.sampled_from(["0", "-1", str(2**63), str(2**64), "1e9", "x"]) | st.integers().map(str)
_QUERY_NAMES = "userId source_id action reason limit cursor after from to format status old_size"
_QUERY = st.dictionaries(
    st.sampled_from([*_QUERY_NAMES.split(), "new_size", "decrypt", "kind"]),
    st.text(max_size=20) | _NUMBERS,
    max_size=4,
)


def _body_kind(template: str) -> str:
    if template in {"/v1/batch", "/v1/b"}:
        return "batch"
    if template.startswith(("/v1/consent", "/v1/me/consent")):
        return "consent"
    if template.startswith("/v1/privacy"):
        return "privacy"
    if template.startswith("/v1/tokens"):
        return "token"
    return "call"


def _credential_for(template: str) -> int:
    """The index (in `credentials`) of the credential this route takes."""
    if template.startswith(("/v1/audit", "/v1/decisions")):
        return 4
    if template.startswith("/v1/me"):
        return 3
    if template.startswith(("/v1/segments", "/v1/flags")):
        return 4
    if template.startswith(("/v1/consent", "/v1/profiles", "/v1/tokens", "/v1/privacy", "/ofrep/")):
        return 2
    return 1


def _route_list() -> list[tuple[str, str]]:
    """Every (method, path template) of the app (built only to list its routes)."""
    app = create_app(Settings(), keks=None)  # type: ignore[arg-type]
    found = []
    for route in app.routes:
        for method in sorted(getattr(route, "methods", ())):
            if method not in {"HEAD", "OPTIONS"}:
                found.append((method, route.path))
    return sorted(found)


ROUTES = _route_list()


class _UrandomIds(IdGenerator):
    """Span and trace ids from os.urandom. The SDK's default draws from the `random` module,
    which hypothesis forbids while it draws: the app's background tasks would trip it."""

    def generate_span_id(self) -> int:
        return int.from_bytes(os.urandom(8), "big") or 1

    def generate_trace_id(self) -> int:
        return int.from_bytes(os.urandom(16), "big") or 1


@pytest.fixture
def fuzz_client(migrated: Settings, keks: KekSet) -> Iterator[Client]:
    provider = TracerProvider(id_generator=_UrandomIds())
    app = create_app(migrated, keks, tracer_provider=provider)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def credentials(
    fuzz_client: Client, source: CreatedSource, auditor: dict[str, str], capsys: Any
) -> list[dict[str, str]]:
    """None, write key, server key, subject token, auditor, admin, and two malformed ones."""
    from gateway.cli import main

    assert main(["tokens", "create", "--role", "admin"]) == 0
    admin = json.loads(capsys.readouterr().out)["token"]
    minted = fuzz_client.post("/v1/tokens", headers=bearer(source.server_key), json={"userId": "u"})
    return [
        {},
        basic(source.write_key),
        bearer(source.server_key),
        bearer(minted.json()["token"]),
        auditor,
        bearer(admin),
        bearer("st_garbage.x"),
        {"Authorization": "Basic !!!"},
    ]


@pytest.mark.parametrize(("method", "template"), ROUTES)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_input_gets_a_5xx(
    fuzz_client: Client,
    credentials: list[dict[str, str]],
    method: str,
    template: str,
    data: st.DataObject,
) -> None:
    """Any body, path value, query and credential on this route answers below 500, and every
    JSON error has exactly `error` and `detail`."""
    path = re.sub(r"\{[^}]+\}", lambda _: data.draw(_PATH_VALUES, label="path value"), template)
    right = credentials[_credential_for(template)]
    headers = {**data.draw(st.just(right) | st.sampled_from(credentials), label="credential")}
    if data.draw(st.booleans(), label="gzip header"):
        headers["Content-Encoding"] = "gzip"
    body = None
    if method in {"POST", "PUT"}:
        body = data.draw(_mutated(_body_kind(template)) | _RANDOM_BODIES, label="body")
    response = fuzz_client.request(
        method, path, content=body, params=data.draw(_QUERY, label="query"), headers=headers
    )
    assert response.status_code < 500, (method, path, response.status_code, response.text[:200])
    if response.status_code >= 400 and response.headers.get("content-type", "").startswith(
        "application/json"
    ):
        shapes = [{"error", "detail"}]
        if path.startswith("/ofrep/v1/evaluate/") and response.status_code in (400, 404):
            # OFREP's own failures; a path no route matches is still the gateway's 404
            shapes += [{"key", "errorCode", "errorDetails"}, {"errorCode", "errorDetails"}]
        assert set(response.json()) in shapes, response.text[:200]
