"""The audit log: entries from real actions, proofs, and tampering detected every time."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Connection

from anonymization import KekSet
from gateway.app import create_app
from gateway.cli import main
from gateway.settings import Settings
from gateway.sources import CreatedSource
from observability._merkle import leaf_hash, verify_consistency, verify_inclusion
from tests.helpers import bearer, last_json_line, sqlite_rows, transact

Client = TestClient


@pytest.fixture
def migrated(shaped: Settings) -> Settings:
    """Every test here runs in both shapes (tests/conftest.py, `shaped`)."""
    return shaped


CHANGE = {"purposes": {"analytics": True}, "policy_version": "1"}


def _fill(client: Client, source: CreatedSource, count: int = 6) -> None:
    for n in range(count):
        client.put(f"/v1/consent/user-{n}", json=CHANGE, headers=bearer(source.server_key))


def _checkpoint(client: Client) -> int:
    with client.portal() as portal:
        size: int = portal.call(client.app.state.runtime.audit.checkpoint)
    return size


def _verify(client: Client, auditor: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/v1/audit/verify", headers=auditor).json()
    return body


def test_actions_are_audited_without_personal_data_in_clear(
    client: Client, source: CreatedSource, auditor: dict[str, str]
) -> None:
    """Consent changes, tokens and auditor queries are entries; subjects only as ciphertext."""
    _fill(client, source, 2)
    minted = client.post("/v1/tokens", json={"userId": "user-0"}, headers=bearer(source.server_key))
    client.delete(f"/v1/tokens/{minted.json()['token_id']}", headers=bearer(source.server_key))
    client.get(
        "/v1/decisions", params={"userId": "user-0", "source_id": source.source_id}, headers=auditor
    )
    entries = client.get("/v1/audit", headers=auditor).json()["items"]
    kinds = [e["entry"]["kind"] for e in entries]
    assert kinds[:2] == ["admin_token.created", "consent.changed"]
    assert {"token.minted", "token.revoked", "audit.query"} <= set(kinds)
    text = json.dumps(entries)
    assert "user-0" not in text
    assert "p1_" not in text  # the subject's pseudonym is encrypted too
    query = next(e for e in entries if e["entry"]["kind"] == "audit.query")
    details = query["entry"]["details"]
    assert details["filters"] == ["source_id", "userId"]
    assert details["values"] == {"source_id": source.source_id}
    assert details["subject_known"] is True  # the pseudonym, encrypted under its key
    assert details["personal"]
    assert _verify(client, auditor)["ok"] is True


def test_jsonl_export_carries_inclusion_proofs_and_consistency(
    client: Client, source: CreatedSource, migrated: Settings, auditor: dict[str, str]
) -> None:
    """Every exported entry's proof verifies against the signed checkpoint's root."""
    _fill(client, source, 3)
    first = _checkpoint(client)
    _fill(client, source, 4)
    second = _checkpoint(client)
    lines = client.get("/v1/audit", params={"format": "jsonl"}, headers=auditor).text.splitlines()
    checkpoint = json.loads(lines[0])["checkpoint"]
    assert checkpoint["tree_size"] == second
    root = bytes.fromhex(checkpoint["root"])
    for line in lines[1:]:
        item = json.loads(line)
        if item["proof"] is None:
            continue  # entries after the checkpoint (the export's own query)
        entry = json.dumps(item["entry"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        leaf = leaf_hash(entry.encode())
        proof = [bytes.fromhex(p) for p in item["proof"]]
        assert verify_inclusion(item["seq"] - 1, second, leaf, proof, root)
    consistency = client.get(
        "/v1/audit/consistency", params={"old_size": first, "new_size": second}, headers=auditor
    ).json()
    old_root = _root_at(migrated, first)
    proof = [bytes.fromhex(p) for p in consistency["proof"]]
    assert verify_consistency(first, second, old_root, root, proof)


def _root_at(settings: Settings, size: int) -> bytes:
    query = f"SELECT root FROM observability_audit_checkpoints WHERE tree_size = {int(size)}"
    return bytes(sqlite_rows(settings.database_url, query)[0][0])


_ENTRY = "SELECT entry FROM observability_audit_log WHERE seq = 3"


def _tamper_update(conn: Connection) -> None:
    entry = json.loads(conn.execute(text(_ENTRY)).scalar_one())
    entry["details"]["policy_version"] = "forged"
    conn.execute(
        text("UPDATE observability_audit_log SET entry = :entry WHERE seq = 3"),
        {"entry": json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()},
    )


def _tamper_update_with_hashes(conn: Connection) -> None:
    """A careful forger also rewrites the leaf hash (but cannot re-sign the checkpoint)."""
    entry = json.loads(conn.execute(text(_ENTRY)).scalar_one())
    entry["actor"] = "nobody"
    forged = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
    conn.execute(
        text("UPDATE observability_audit_log SET entry = :entry, leaf_hash = :leaf WHERE seq = 3"),
        {"entry": forged, "leaf": leaf_hash(forged)},
    )


def _tamper_delete(conn: Connection) -> None:
    conn.execute(text("DELETE FROM observability_audit_log WHERE seq = 3"))


def _tamper_reorder(conn: Connection) -> None:
    rows = conn.execute(
        text(
            "SELECT seq, entry, leaf_hash, chain FROM observability_audit_log"
            " WHERE seq IN (3, 4) ORDER BY seq"
        )
    ).all()
    (_, e3, l3, c3), (_, e4, l4, c4) = rows
    swap = text(
        "UPDATE observability_audit_log SET entry = :entry, leaf_hash = :leaf, chain = :chain"
        " WHERE seq = :seq"
    )
    conn.execute(swap, {"entry": e4, "leaf": l4, "chain": c4, "seq": 3})
    conn.execute(swap, {"entry": e3, "leaf": l3, "chain": c3, "seq": 4})


def _tamper_truncate(conn: Connection) -> None:
    last = conn.execute(
        text("SELECT max(tree_size) FROM observability_audit_checkpoints")
    ).scalar_one()
    conn.execute(text("DELETE FROM observability_audit_log WHERE seq >= :cut"), {"cut": last - 1})


@pytest.mark.parametrize(
    ("tamper", "first_bad"),
    [
        (_tamper_update, 3),
        (_tamper_update_with_hashes, 3),
        (_tamper_delete, 3),
        (_tamper_reorder, 3),
        (_tamper_truncate, None),
    ],
    ids=["update", "update-with-hashes", "delete", "reorder", "truncated-tail"],
)
def test_tampering_is_detected_and_named(
    client: Client,
    source: CreatedSource,
    migrated: Settings,
    capsys: pytest.CaptureFixture[str],
    tamper: Callable[[Connection], None],
    first_bad: int | None,
    auditor: dict[str, str],
) -> None:
    """UPDATE, DELETE, reordering or a truncated tail, straight in SQL: verify fails, names
    the first bad entry, and `consentgate audit verify` exits 1."""
    _fill(client, source, 6)
    size = _checkpoint(client)
    assert _verify(client, auditor)["ok"] is True
    transact(migrated.database_url, tamper)
    result = _verify(client, auditor)
    assert result["ok"] is False
    if first_bad is not None:
        assert result["first_bad"] == first_bad
    else:  # the first entry the checkpoint covers and the log no longer holds (the read of
        # verify is itself audited first, so the log may have grown again since the cut)
        query = "SELECT count(*) FROM observability_audit_log"
        held = sqlite_rows(migrated.database_url, query)[0][0]
        assert held < size
        assert result["first_bad"] == held + 1
    assert main(["audit", "verify"]) == 1
    printed = json.loads(capsys.readouterr().out)
    assert printed["ok"] is False
    assert printed["problem"]


def test_cli_verify_passes_on_an_intact_log(
    client: Client,
    source: CreatedSource,
    capsys: pytest.CaptureFixture[str],
    auditor: dict[str, str],
) -> None:
    """`consentgate audit verify` exits 0 and prints {"ok": true, ...}."""
    _fill(client, source, 3)
    _checkpoint(client)
    assert main(["audit", "verify"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_server_keys_and_subject_tokens_cannot_read_the_audit(
    client: Client, source: CreatedSource
) -> None:
    """Only auditors and admins read the audit log."""
    token = client.post(
        "/v1/tokens", json={"userId": "u"}, headers=bearer(source.server_key)
    ).json()["token"]
    for headers in ({}, bearer(source.server_key), bearer(token)):
        assert client.get("/v1/audit", headers=headers).status_code == 401
        assert client.get("/v1/audit/verify", headers=headers).status_code == 401


def test_auditor_queries_are_logged_by_shape_never_by_value(
    client: Client, source: CreatedSource, auditor: dict[str, str]
) -> None:
    """A searched userId, a free-text reason or cursor never reach the append-only log."""
    canary = "query-canary@example.com"
    client.get(
        "/v1/decisions",
        params={"userId": canary, "source_id": source.source_id, "reason": f"x {canary}"},
        headers=auditor,
    )
    client.get("/v1/privacy/requests", params={"status": "received"}, headers=auditor)
    entries = client.get("/v1/audit", params={"kind": "audit.query"}, headers=auditor).json()
    text = json.dumps(entries)
    assert "query-canary" not in text
    first = entries["items"][0]["entry"]["details"]
    assert first["filters"] == ["reason", "source_id", "userId"]
    assert first["values"] == {"source_id": source.source_id}  # the reason was free text
    assert first["subject_known"] is False
    assert "personal" not in first


def test_oversized_query_parameters_are_refused(
    client: Client, source: CreatedSource, auditor: dict[str, str]
) -> None:
    """Auditor query parameters are capped (userId at 1,024 characters, others at 256)."""
    long_reason = client.get("/v1/decisions", params={"reason": "r" * 300}, headers=auditor)
    assert long_reason.status_code == 400
    long_user = client.get(
        "/v1/decisions",
        params={"userId": "u" * 2000, "source_id": source.source_id},
        headers=auditor,
    )
    assert long_user.status_code == 400
    assert long_user.json()["error"] == "invalid_query"


def test_a_new_entry_is_covered_by_a_checkpoint_within_the_configured_delay(
    settings: Settings, migrated: Settings, source: CreatedSource
) -> None:
    """The unprotected tail is short: the server signs a checkpoint over a new entry within
    `audit_checkpoint_seconds` (0.2 s here), not on a fixed minute."""
    quick = msgspec.structs.replace(migrated, audit_checkpoint_seconds=0.2)
    with TestClient(create_app(quick, KekSet.load(quick.key_file))) as client:
        client.put("/v1/consent/user-1", json=CHANGE, headers=bearer(source.server_key))
        runtime = client.app.state.runtime
        with client.portal() as portal:
            size = portal.call(runtime.audit.verify).size
            deadline = time.monotonic() + 5
            latest = None
            while time.monotonic() < deadline:
                latest = portal.call(runtime.audit.latest_checkpoint)
                if latest and latest["tree_size"] >= size:
                    break
                portal.call(asyncio.sleep, 0.05)
    assert latest is not None
    assert latest["tree_size"] >= size


def test_verify_counts_the_entries_no_checkpoint_covers(
    client: Client,
    source: CreatedSource,
    capsys: pytest.CaptureFixture[str],
    auditor: dict[str, str],
) -> None:
    """`audit verify` says how much of the log a deletion could still hide; CLI entries are
    signed at once (no server need run to cover them)."""
    capsys.readouterr()
    assert main(["audit", "verify"]) == 0
    assert last_json_line(capsys.readouterr().out)["uncovered"] == 0  # the token's entry
    _fill(client, source, 3)
    assert main(["audit", "verify"]) == 0
    assert last_json_line(capsys.readouterr().out)["uncovered"] == 3
    _checkpoint(client)
    assert main(["audit", "verify"]) == 0
    assert last_json_line(capsys.readouterr().out)["uncovered"] == 0


def test_the_default_source_serve_creates_is_audited(
    migrated: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every source creation is an audit entry, the one `serve` makes on first start too."""
    from gateway.cli_serve import _create_default_source

    asyncio.run(_create_default_source(migrated))
    created = last_json_line(capsys.readouterr().out)
    rows = sqlite_rows(migrated.database_url, "SELECT entry FROM observability_audit_log")
    entries = [json.loads(bytes(row[0])) for row in rows]
    assert [e["kind"] for e in entries] == ["source.created"]
    assert entries[0]["details"] == {
        "source_id": created["source_id"],
        "name": "default",
        "jurisdiction": "gdpr",
    }
    assert created["write_key"] not in json.dumps(entries)


def test_receipts_and_checkpoints_verify_offline_and_tampering_fails(
    client: Client,
    source: CreatedSource,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    auditor: dict[str, str],
) -> None:
    """`consentgate verify receipt|checkpoint` check what the API gave against the published
    keys, with no database: 0 when intact, 1 naming the problem when anything changed."""
    keys = tmp_path / "keys.json"
    keys.write_text(client.get("/v1/receipts/keys").text)
    signed = client.put("/v1/consent/user-9", json=CHANGE, headers=bearer(source.server_key))
    receipt = tmp_path / "receipt.json"
    receipt.write_text(signed.text)
    _fill(client, source, 3)
    _checkpoint(client)
    export = client.get("/v1/audit", params={"format": "jsonl"}, headers=auditor).text
    checkpoint = tmp_path / "checkpoint.json"
    checkpoint.write_text(export.splitlines()[0])
    entries = tmp_path / "entries.jsonl"
    entries.write_text(export)

    def verify(*argv: str | Path) -> tuple[int, dict[str, Any]]:
        capsys.readouterr()
        code = main(["verify", *map(str, argv), "--keys", str(keys)])
        return code, last_json_line(capsys.readouterr().out)

    assert verify("receipt", receipt)[0] == 0
    code, shown = verify("checkpoint", checkpoint, "--entries", entries)
    assert code == 0
    assert shown["entries_proved"] >= 4  # the token's, three consent changes, …
    assert shown["entries_proved"] + shown["entries_after_checkpoint"] == len(
        export.splitlines()[1:]
    )

    forged = json.loads(signed.text)
    forged["receipt"]["records"][0]["granted"] = not forged["receipt"]["records"][0]["granted"]
    receipt.write_text(json.dumps(forged))
    code, shown = verify("receipt", receipt)
    assert code == 1
    assert "does not verify" in shown["problem"]

    lines = export.splitlines()
    changed = json.loads(lines[2])
    changed["entry"]["actor"] = "nobody"
    entries.write_text("\n".join([*lines[:2], json.dumps(changed), *lines[3:]]))
    code, shown = verify("checkpoint", checkpoint, "--entries", entries)
    assert code == 1
    assert shown["problem"].startswith(f"entry {changed['seq']} ")
