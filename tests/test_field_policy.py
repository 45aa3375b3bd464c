"""Field policies, per-subject encryption, blind indexes and crypto-shredding."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from anonymization import (
    DEFAULT_POLICY,
    DecryptError,
    FieldPolicy,
    FieldPolicyError,
    FieldProtector,
    KekSet,
    Pseudonymizer,
    Scrubber,
    UnwrapError,
    blind_index,
    decrypt_value,
    encrypt_value,
    load_field_policy,
)
from gateway import stages
from gateway.cli import main
from gateway.settings import Settings
from tests.helpers import MakeSource, basic, bearer, dump_database, wait_for
from tests.test_stages import _context

Client = TestClient
KEY = bytes(range(32))


def test_hmac_known_answer_rfc4231() -> None:
    """RFC 4231 test case 2: the precomputed-pad HMAC gives the published digest."""
    assert Pseudonymizer(b"Jefe").digest(b"what do ya want for nothing?").hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    assert (
        hmac.digest(b"Jefe", b"what do ya want for nothing?", hashlib.sha256)
        .hex()
        .startswith("5bdcc146")
    )


def test_aes_gcm_known_answer() -> None:
    """The GCM specification's test case 16 (AES-256, 96-bit IV, with associated data)."""
    key = bytes.fromhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
    nonce = bytes.fromhex("cafebabefacedbaddecaf888")
    plain = bytes.fromhex(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
        "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
    )
    aad = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
    sealed = AESGCM(key).encrypt(nonce, plain, aad)
    assert sealed.hex() == (
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
        "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
        "76fc6ece0f4e1768cddf8853bb2d551b"
    )


def test_ciphertext_is_bound_to_subject_and_field() -> None:
    """A value opens only for its own source, subject and field."""
    token = encrypt_value(KEY, "src", "p1_a", "traits.email", "a@b.io")
    assert decrypt_value(KEY, "src", "p1_a", "traits.email", token) == "a@b.io"
    for moved in (
        ("src", "p1_b", "traits.email"),
        ("src", "p1_a", "traits.phone"),
        ("other", "p1_a", "traits.email"),
    ):
        with pytest.raises(DecryptError):
            decrypt_value(KEY, *moved, token)
    with pytest.raises(DecryptError):
        decrypt_value(bytes(32), "src", "p1_a", "traits.email", token)


def test_blind_index_is_keyed_and_normalized() -> None:
    """The same email (any case) indexes alike under one key, differently under another."""
    assert blind_index(KEY, "traits.email", "A@B.io") == blind_index(KEY, "traits.email", "a@b.io")
    assert blind_index(KEY, "traits.email", "a@b.io") != blind_index(
        bytes(32), "traits.email", "a@b.io"
    )
    assert blind_index(KEY, "traits.email", "a@b.io") != blind_index(KEY, "traits.phone", "a@b.io")


def test_policy_actions() -> None:
    """keep, drop, hash, encrypt, truncate and redact each do what the policy table says."""
    policy = FieldPolicy(
        fields={
            "traits.email": "encrypt",
            "traits.company": "keep",
            "traits.zip": "truncate",
            "traits.birthday": "truncate",
            "traits.plan": "hash",
            "traits.notes": "redact",
            "traits.tmp": "drop",
        }
    )
    out = FieldProtector(policy, "src", KEY).apply(
        "traits",
        {
            "email": "a@b.io",
            "company": "Acme +14155552671",
            "zip": "SW1A 1AA",
            "birthday": "1990-05-17",
            "plan": "pro",
            "notes": "anything",
            "tmp": 1,
            "free": "call +14155552671",
            "name": "Ann",
        },
        Scrubber({}).value,
        "p1_a",
        KEY,
    )
    assert decrypt_value(KEY, "src", "p1_a", "traits.email", out["email"]["enc"]) == "a@b.io"
    assert out["email"]["bidx"].startswith("b1_")
    assert out["company"] == "Acme +14155552671"
    assert (out["zip"], out["birthday"]) == ("SW1", "1990")
    assert out["plan"].startswith("b1_")
    assert out["notes"] == "[redacted]"
    assert out["free"] == "call [phone]"
    assert "tmp" not in out
    assert "name" not in out  # a reserved trait, dropped by default


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"fields": {"email": "encrypt"}}, "fields['email']"),
        ({"fields": {"traits.email": "shred"}}, "traits.email"),
        ({"pii": {"fax": "drop"}}, "pii['fax']"),
        ({"fieldz": {}}, "fieldz"),
    ],
)
def test_invalid_policy_names_the_path(data: dict[str, Any], named: str) -> None:
    """A bad path, action, kind or key is refused at load, naming it."""
    with pytest.raises(FieldPolicyError, match=named.replace("[", r"\[").replace("]", r"\]")):
        load_field_policy(data)


_canaries = st.sampled_from(
    [
        "canary.mail@example.org",
        "+14155550123",
        "4111 1111 1111 1111",
        "GB82 WEST 1234 5698 7654 32",
        "123-45-6789",
        "raw-user-canary-42",
    ]
)
_places = st.sampled_from(["property", "nested", "trait_name", "page_path", "page_title", "event"])


@settings(max_examples=60, deadline=None)
@given(canary=_canaries, place=_places, padding=st.text(alphabet="abc xyz/", max_size=8))
def test_planted_canaries_never_reach_the_envelope(canary: str, place: str, padding: str) -> None:
    """Wherever a canary is planted, the envelope the gateway would forward holds none."""
    planted = f"{padding} {canary} {padding}"
    event: dict[str, Any] = {"type": "track", "userId": "raw-user-canary-42", "event": "Clicked"}
    if place == "property":
        event["properties"] = {"note": planted}
    elif place == "nested":
        event["properties"] = {"a": [{"b": planted}]}
    elif place == "trait_name":
        event = {"type": "identify", "userId": "raw-user-canary-42", "traits": {"name": planted}}
    elif place == "page_path":
        event["context"] = {"page": {"path": f"/u/{planted}"}}
    elif place == "page_title":
        event["context"] = {"page": {"title": planted}}
    else:
        event["event"] = f"Clicked {planted}"
    context = stages.anonymize(stages.consent(_context(event)))
    assert context.envelope is not None
    forwarded = json.dumps(
        {
            "e": context.envelope.event,
            "p": context.envelope.properties,
            "t": context.envelope.traits,
            "c": context.envelope.context,
        }
    )
    assert canary not in forwarded
    assert "raw-user-canary-42" not in forwarded


def test_encrypted_trait_round_trip_and_crypto_shredding(
    client: Client,
    make_source: MakeSource,
    migrated: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An encrypted email is stored as ciphertext, read back with decrypt=true, and after the
    subject key is shredded no copy (profile row, backup) opens any more."""
    source = make_source("mail", "none", policy={"fields": {"traits.email": "encrypt"}})
    identify = {"userId": "mia", "traits": {"email": "mia@example.com", "plan": "pro"}}
    client.post("/v1/identify", json=identify, headers=basic(source.write_key))
    server = bearer(source.server_key)

    def profile(decrypt: bool = False) -> dict[str, Any] | None:
        url = "/v1/profiles/mia" + ("?decrypt=true" if decrypt else "")
        response = client.get(url, headers=server)
        return response.json() if response.status_code == 200 else None

    stored = wait_for(profile)
    assert stored["traits"]["email"]["enc"].startswith("e1.")
    assert "mia@example.com" not in dump_database(migrated.database_url)
    assert profile(decrypt=True)["traits"] == {"email": "mia@example.com", "plan": "pro"}

    path = migrated.database_url.removeprefix("sqlite:///")
    backup = path + ".backup"
    with sqlite3.connect(path) as live, sqlite3.connect(backup) as copy:
        live.backup(copy)

    keyring = client.app.state.runtime.keyring
    subject = stored["subject"]
    with client.portal() as portal:
        assert portal.call(keyring.shred, source.source_id, subject)
        assert portal.call(keyring.existing_subject_key, source.source_id, subject) is None
    assert profile(decrypt=True)["traits"] == {"email": None, "plan": "pro"}
    # A backup taken before the erasure still holds the ciphertext and the wrapped key; the
    # next KEK rotation destroys the only KEK that unwraps it.
    monkeypatch.setenv("CONSENTGATE_DATABASE_URL", migrated.database_url)
    monkeypatch.setenv("CONSENTGATE_KEY_FILE", migrated.key_file)
    assert main(["keys", "rotate"]) == 2  # refused while this gateway holds the keys
    client.__exit__(None, None, None)  # stop it (the fixture's exit is then a no-op)
    assert main(["keys", "rotate"]) == 0
    with sqlite3.connect(backup) as copy:
        traits = copy.execute(
            "SELECT traits FROM profiles WHERE subject = ?", (subject,)
        ).fetchone()
        wrapped = copy.execute(
            "SELECT kek_id, wrapped FROM anonymization_subject_keys WHERE subject = ?", (subject,)
        ).fetchone()
    assert json.loads(traits[0])["email"]["enc"] == stored["traits"]["email"]["enc"]
    with pytest.raises(UnwrapError):
        KekSet.load(migrated.key_file).unwrap(
            wrapped[0], wrapped[1], f"subject-key:{source.source_id}:{subject}"
        )


def test_default_policy_is_the_default() -> None:
    """Sources without a policy drop reserved traits and redact every PII kind."""
    assert load_field_policy(None) is DEFAULT_POLICY
    assert set(DEFAULT_POLICY.pii_actions().values()) == {"redact"}
