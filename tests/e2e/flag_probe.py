"""A flag that reads a trait, and its evaluation through OFREP: what the e2e tests flip to see
that a gateway follows what a core in another process changed."""

from __future__ import annotations

import httpx

from tests.e2e.server import Gateway

PRO_FLAG = {
    "type": "boolean",
    "variants": {"on": True, "off": False},
    "default_variant": "off",
    "rules": [{"when": {"trait": "plan", "op": "eq", "value": "pro"}, "variant": "on"}],
}
PERSONAL = {"consent": {"categoryPreferences": {"analytics": True, "personalization": True}}}


def variant(gateway: Gateway, server_key: str, user_id: str) -> str:
    """The variant of `pro-onboarding` for `user_id`, evaluated with the server key."""
    answer = httpx.post(
        f"{gateway.url}/ofrep/v1/evaluate/flags/pro-onboarding",
        json={"context": {"targetingKey": user_id}},
        headers={"Authorization": f"Bearer {server_key}"},
    )
    assert answer.status_code == 200, answer.text
    found: str = answer.json()["variant"]
    return found
