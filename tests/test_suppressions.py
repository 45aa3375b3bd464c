"""The suppression list: auditors read it, an admin lifts one (audited), and what the erasure
shredded stays shredded."""

from __future__ import annotations

import json
from typing import Any

from litestar.testing import TestClient

from gateway.sources import CreatedSource
from tests.helpers import basic, bearer, completed_privacy_request

Client = TestClient


def _erase(client: Client, source: CreatedSource, user_id: str) -> dict[str, Any]:
    server = bearer(source.server_key)
    client.post(
        "/v1/track", headers=basic(source.write_key), json={"userId": user_id, "event": "E"}
    )
    submitted = client.post(
        "/v1/privacy/requests", headers=server, json={"type": "erasure", "userId": user_id}
    )
    assert submitted.status_code == 202
    return completed_privacy_request(client, server, submitted.json()["id"])


def test_erased_subjects_are_listed_and_an_admin_lifts_one(
    client: Client,
    source: CreatedSource,
    auditor: dict[str, str],
    admin: dict[str, str],
) -> None:
    """The erased subject is listed (pseudonym only); an auditor may not lift it; an admin
    does, the lift is audited, and the subject's events flow again under a new key."""
    erased = _erase(client, source, "gone-user")
    listed = client.get("/v1/suppressions", headers=auditor).json()["items"]
    assert [(s["subject"], s["suppressed"]) for s in listed] == [(erased["subject"], True)]
    assert listed[0]["by"] == erased["id"]
    path = f"/v1/suppressions/{source.source_id}/{erased['subject']}"
    assert client.delete(path, headers=auditor).status_code == 403
    keyring = client.app.state.runtime.keyring
    assert client.delete(path, headers=admin).status_code == 204
    with client.portal() as portal:  # lifting brings no key back
        assert (
            portal.call(keyring.existing_subject_key, source.source_id, erased["subject"]) is None
        )
    assert client.get("/v1/suppressions", headers=auditor).json()["items"] == []
    lifted = client.get("/v1/suppressions", params={"lifted": "true"}, headers=auditor).json()
    assert [s["suppressed"] for s in lifted["items"]] == [False]
    state = client.get("/v1/consent/gone-user", headers=bearer(source.server_key)).json()
    assert state["suppressed"] is False
    entries = client.get("/v1/audit", params={"kind": "suppression.lifted"}, headers=auditor)
    (entry,) = entries.json()["items"]
    assert erased["subject"] not in json.dumps(entry)  # its SHA-256 only
    assert client.delete(path, headers=admin).status_code == 404  # nothing left to lift


def test_unknown_sources_and_subjects_are_404(
    client: Client, source: CreatedSource, admin: dict[str, str]
) -> None:
    """Lifting what is not suppressed, or in no source, is a 404 and changes nothing."""
    assert (
        client.delete(f"/v1/suppressions/{source.source_id}/p1_nobody", headers=admin).status_code
        == 404
    )
    assert client.delete("/v1/suppressions/src_none/p1_nobody", headers=admin).status_code == 404
