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
