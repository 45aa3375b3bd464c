"""OpenFeature's own Python SDK with its OFREP provider, unchanged, against the real server:
boolean, string, integer, float and object (remote config) flags, targeting on a live profile,
and the baseline once consent is withdrawn."""

from __future__ import annotations

from typing import Any

import httpx
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import Reason

from tests.e2e.server import Gateway
from tests.helpers import wait_for

FLAGS: dict[str, dict[str, Any]] = {
    "new-onboarding": {
        "type": "boolean",
        "variants": {"on": True, "off": False},
        "default_variant": "off",
        "rules": [{"when": {"trait": "plan", "op": "eq", "value": "pro"}, "variant": "on"}],
    },
    "welcome-title": {
        "type": "string",
        "variants": {"plain": "Welcome", "warm": "Welcome back!"},
        "default_variant": "plain",
        "rules": [{"when": {"event": "Signed Up"}, "split": {"plain": 50, "warm": 50}}],
    },
    "steps-shown": {
        "type": "number",
        "variants": {"few": 3, "many": 5},
        "default_variant": "few",
        "rules": [{"when": {"segment": "pros"}, "variant": "many"}],
    },
    "discount": {
        "type": "number",
        "variants": {"none": 0.0, "some": 0.15},
        "default_variant": "none",
        "rules": [{"when": {"trait": "plan", "op": "eq", "value": "pro"}, "variant": "some"}],
    },
    "checkout-config": {
        "type": "object",
        "variants": {"v1": {"layout": "compact", "max_items": 3}},
        "default_variant": "v1",
        "requires_consent": None,
    },
}


def test_openfeature_sdk_evaluates_every_flag_type(gateway: Gateway) -> None:
    source = gateway.cli("sources", "create", "of-app", "--jurisdiction", "none")
    admin = {
        "Authorization": f"Bearer {gateway.cli('tokens', 'create', '--role', 'admin')['token']}"
    }
    gateway.start()
    segment = {"name": "Pros", "rule": {"trait": "plan", "op": "eq", "value": "pro"}}
    assert httpx.put(f"{gateway.url}/v1/segments/pros", headers=admin, json=segment).is_success
    for key, definition in FLAGS.items():
        answer = httpx.put(f"{gateway.url}/v1/flags/{key}", headers=admin, json=definition)
        assert answer.status_code == 200, answer.text
    errors: list[Any] = []
    sdk = gateway.segment_sdk(source["write_key"], errors)
    sdk.identify("of-user", {"plan": "pro"})
    sdk.track("of-user", "Signed Up")
    server = {"Authorization": f"Bearer {source['server_key']}"}
    wait_for(
        lambda: (
            httpx.get(f"{gateway.url}/v1/profiles/of-user", headers=server).json().get("segments")
            == ["pros"]
            or None
        )
    )
    api.set_provider(OFREPProvider(gateway.url, headers_factory=lambda: server))
    client = api.get_client()
    context = EvaluationContext(targeting_key="of-user")

    onboarding = client.get_boolean_details("new-onboarding", False, context)
    assert (onboarding.value, onboarding.variant, onboarding.reason) == (
        True,
        "on",
        Reason.TARGETING_MATCH,
    )
    title = client.get_string_details("welcome-title", "?", context)
    assert title.reason == Reason.SPLIT
    assert title.value == FLAGS["welcome-title"]["variants"][title.variant]
    assert client.get_integer_value("steps-shown", 0, context) == 5
    assert client.get_float_value("discount", 0.0, context) == 0.15
    config = client.get_object_details("checkout-config", {}, context)
    assert (config.value, config.reason) == ({"layout": "compact", "max_items": 3}, Reason.STATIC)
    unknown = client.get_boolean_details("no-such-flag", False, context)
    assert (unknown.value, unknown.error_code.value if unknown.error_code else None) == (
        False,
        "FLAG_NOT_FOUND",
    )

    withdrawal = {"purposes": {"personalization": False}, "policy_version": "v2"}
    assert httpx.put(
        f"{gateway.url}/v1/consent/of-user", headers=server, json=withdrawal
    ).is_success
    baseline = client.get_boolean_details("new-onboarding", True, context)
    assert (baseline.value, baseline.reason, baseline.flag_metadata["fallback"]) == (
        False,
        Reason.DEFAULT,
        "consent_missing",
    )
    assert baseline.error_code is None  # the baseline is never an error the app must handle
    assert errors == []


def test_the_event_stream_says_refetch_when_an_evaluation_may_change(gateway: Gateway) -> None:
    """The bulk answer's eventStreams URL streams refetchEvaluation after a flag edit, a
    segment change and a consent change of its subject, and refuses a forged ticket."""
    import contextlib
    import queue
    import threading

    source = gateway.cli("sources", "create", "sse-app", "--jurisdiction", "none")
    admin = {
        "Authorization": f"Bearer {gateway.cli('tokens', 'create', '--role', 'admin')['token']}"
    }
    gateway.start()
    flag = FLAGS["new-onboarding"]
    assert httpx.put(f"{gateway.url}/v1/flags/new-onboarding", headers=admin, json=flag).is_success
    server = {"Authorization": f"Bearer {source['server_key']}"}
    bulk = httpx.post(
        f"{gateway.url}/ofrep/v1/evaluate/flags",
        headers=server,
        json={"context": {"targetingKey": "sse-user"}},
    ).json()
    (stream,) = bulk["eventStreams"]
    assert stream["type"] == "sse"
    forged = stream["url"][:-3] + "abc"
    assert httpx.get(forged).status_code == 401

    lines: queue.Queue[str] = queue.Queue()

    def pump(answer: httpx.Response) -> None:
        with contextlib.suppress(httpx.HTTPError):  # ends when the test closes the stream
            for line in answer.iter_lines():
                lines.put(line)

    def next_refetch() -> None:
        while True:
            line = lines.get(timeout=10)
            if line.startswith("data:"):
                assert line == 'data: {"type":"refetchEvaluation"}'
                return

    errors: list[Any] = []
    with httpx.stream("GET", stream["url"], timeout=30) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        threading.Thread(target=pump, args=(answer,), daemon=True).start()
        assert lines.get(timeout=10) == ": connected"
        assert httpx.put(
            f"{gateway.url}/v1/flags/new-onboarding", headers=admin, json=flag
        ).is_success
        next_refetch()  # a flag edit
        segment = {"name": "Signed up", "rule": {"event": "Signed Up"}}
        assert httpx.put(
            f"{gateway.url}/v1/segments/signed", headers=admin, json=segment
        ).is_success
        gateway.segment_sdk(source["write_key"], errors).track("sse-user", "Signed Up")
        next_refetch()  # the subject joined a segment
        withdrawal = {"purposes": {"personalization": False}, "policy_version": "v1"}
        assert httpx.put(
            f"{gateway.url}/v1/consent/sse-user", headers=server, json=withdrawal
        ).is_success
        next_refetch()  # a consent change
    assert errors == []


def test_open_event_streams_do_not_hold_up_a_stop(gateway: Gateway) -> None:
    """SIGTERM ends the open streams first (they never end on their own): the gateway stops
    in seconds, not at the end of a grace period."""
    import time

    source = gateway.cli("sources", "create", "stop-app", "--jurisdiction", "none")
    gateway.start()
    bulk = httpx.post(
        f"{gateway.url}/ofrep/v1/evaluate/flags",
        headers={"Authorization": f"Bearer {source['server_key']}"},
        json={"context": {"targetingKey": "held"}},
    ).json()
    with httpx.stream("GET", bulk["eventStreams"][0]["url"], timeout=30) as answer:
        assert next(answer.iter_lines()) == ": connected"
        started = time.monotonic()
        gateway.stop()
        assert time.monotonic() - started < 5
