"""Pseudonyms (known answers), key file handling, IP truncation and scrubbing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anonymization import (
    DEFAULT_POLICY,
    FieldProtector,
    KeyFileError,
    Pseudonymizer,
    Scrubber,
    load_or_create_master_key,
    normalize_identifier,
    truncate_ip,
)

KEY = bytes(range(32))


def test_pseudonym_known_answer() -> None:
    """p1_ + base64url(HMAC-SHA256(key, "subject\\0" + id)[:16]), as an independent computation."""
    expected_digest = hmac.new(KEY, b"subject\x00alice", hashlib.sha256).digest()[:16]
    expected = "p1_" + base64.urlsafe_b64encode(expected_digest).rstrip(b"=").decode()
    assert Pseudonymizer(KEY)("subject", "alice") == expected
    assert (
        expected
        == "p1_"
        + base64.urlsafe_b64encode(
            bytes.fromhex(hmac.new(KEY, b"subject\x00alice", "sha256").hexdigest())[:16]
        )
        .rstrip(b"=")
        .decode()
    )


@given(key=st.binary(min_size=1, max_size=100), value=st.text(max_size=50))
def test_pseudonym_is_rfc2104_hmac_for_any_key(key: bytes, value: str) -> None:
    """The precomputed-pad HMAC equals the hmac module's over the normalized identifier, for
    any key length and identifier."""
    message = b"subject\x00" + normalize_identifier(value).encode()
    digest = hmac.digest(key, message, hashlib.sha256)[:16]
    expected = "p1_" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert Pseudonymizer(key)("subject", value) == expected


def test_pseudonyms_normalize_and_separate_domains() -> None:
    """Emails are case-folded and trimmed; group ids and subject ids never collide."""
    pseudonymize = Pseudonymizer(KEY)
    assert pseudonymize("subject", " Alice@Example.COM ") == pseudonymize(
        "subject", "alice@example.com"
    )
    assert pseudonymize("subject", "Bob") != pseudonymize("subject", "bob")
    assert pseudonymize("group", "acme") != pseudonymize("subject", "acme")
    assert "key" in repr(pseudonymize)
    assert KEY.hex() not in repr(pseudonymize)


def test_key_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    """The master key file is created once with mode 0600 and read back unchanged."""
    path = tmp_path / "keys" / "master.key"
    first = load_or_create_master_key(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert load_or_create_master_key(path) == first
    assert len(first) == 32


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    """A key file other users can read stops start-up, naming the setting."""
    path = tmp_path / "master.key"
    load_or_create_master_key(path)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="CONSENTGATE_KEY_FILE"):
        load_or_create_master_key(path)


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("2001:db8:1234:5678::1", "2001:db8:1234::"),
        ("::ffff:198.51.100.9", "198.51.100.0"),
        ("not an ip", None),
    ],
)
def test_ip_truncation(address: str, network: str | None) -> None:
    """IPv4 keeps its /24, IPv6 its /48; anything else is not an address."""
    assert truncate_ip(address) == network


_local = st.from_regex(r"[a-z][a-z0-9._]{0,15}", fullmatch=True)
_domain = st.from_regex(r"[a-z][a-z0-9]{0,10}\.(com|org|io|co\.uk)", fullmatch=True)
_emails = st.builds(lambda local, domain: f"{local}@{domain}", _local, _domain)
_text = st.text(alphabet=st.characters(blacklist_characters="@"), max_size=30)


@given(email=_emails, before=_text, after=_text)
def test_planted_emails_never_survive(email: str, before: str, after: str) -> None:
    """An email planted anywhere in nested properties is redacted."""
    scrubbed = Scrubber({}).value({"a": [f"{before} {email} {after}"], "b": {"c": email}})
    assert email not in repr(scrubbed)


@given(identifier=st.from_regex(r"[A-Za-z0-9_-]{6,40}", fullmatch=True), before=_text, after=_text)
def test_raw_identifier_inside_text_is_replaced(identifier: str, before: str, after: str) -> None:
    """A raw identifier inside a free-form value becomes its pseudonym."""
    scrubbed = Scrubber({identifier: "p1_x"}).text(f"{before}{identifier}{after}")
    assert identifier not in scrubbed


def test_reserved_traits_are_dropped_and_context_reduced() -> None:
    """Direct identifiers among traits are dropped by default; context keeps its allow-list."""
    scrub = Scrubber({})
    protector = FieldProtector(DEFAULT_POLICY, "src", bytes(32))
    traits = {"email": "a@b.co", "firstName": "A", "plan": "pro"}
    assert protector.apply("traits", traits, scrub.value, "p1_s", None) == {"plan": "pro"}
    context = scrub.context(
        {
            "ip": "203.0.113.77",
            "userAgent": "Mozilla/5.0",
            "device": {"id": "device-id", "advertisingId": "ad-id", "type": "ios"},
            "page": {"url": "https://x/?e=a@b.co", "path": "/signup"},
            "library": {"name": "analytics-python", "version": "2.4"},
            "traits": {"email": "a@b.co"},
        }
    )
    assert context == {
        "ip": "203.0.113.0",
        "device": {"type": "ios"},
        "page": {"path": "/signup"},
        "library": {"name": "analytics-python", "version": "2.4"},
    }


@given(st.ip_addresses(v=4))
def test_ipv4_fast_path_agrees_with_ipaddress(address: object) -> None:
    """The IPv4 fast path truncates exactly as the ipaddress module does."""
    import ipaddress

    expected = str(ipaddress.ip_network(f"{address}/24", strict=False).network_address)
    assert truncate_ip(str(address)) == expected


@pytest.mark.parametrize(
    "text", ["1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "a.b.c.d", "\u0661.2.3.4"]
)
def test_ipv4_fast_path_refuses_non_addresses(text: str) -> None:
    """Malformed dotted quads are not addresses."""
    assert truncate_ip(text) is None


@pytest.mark.parametrize(
    ("agent", "general"),
    [
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/131.0.6778.86 Safari/537.36",
            "Chrome 131 (macOS)",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.70",
            "Edge 131 (Windows)",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
            "Safari 17 (iOS)",
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "Firefox 133 (Linux)",
        ),
        ("Googlebot/2.1 (+http://www.google.com/bot.html)", "bot"),
        ("something else", None),
    ],
)
def test_user_agents_are_generalized(agent: str, general: str | None) -> None:
    """Browser family and major version, OS family; nothing finer survives."""
    from anonymization import generalize_user_agent

    assert generalize_user_agent(agent) == general
    context = Scrubber({}).context({"userAgent": agent})
    assert context == ({"userAgent": general} if general else {})


@pytest.mark.parametrize(
    ("variant", "canonical"),
    [
        ("ana\u200b", "ana"),  # zero-width space
        ("\u200fana", "ana"),  # right-to-left mark
        ("a\u200dna", "ana"),  # zero-width joiner
        ("jose\u0301", "jos\u00e9"),  # decomposed é (NFD) and composed (NFC)
        (" Ana@Example.COM\ufeff", "ana@example.com"),  # byte-order mark, e-mail case
    ],
)
def test_invisible_and_decomposed_forms_are_one_identity(variant: str, canonical: str) -> None:
    """Format characters are dropped and text is NFC before the HMAC: one person, one pseudonym."""
    pseudonymize = Pseudonymizer(b"k" * 32)
    assert normalize_identifier(variant) == normalize_identifier(canonical)
    assert pseudonymize("subject", variant) == pseudonymize("subject", canonical)


@given(st.text(max_size=40))
def test_normalizing_twice_changes_nothing(text: str) -> None:
    """Normalization is idempotent."""
    once = normalize_identifier(text)
    assert normalize_identifier(once) == once


def test_message_ids_are_keyed_without_normalization() -> None:
    """m1_ + base64url(HMAC(key, "message\\0" + id)[:16]); case is kept (two messages)."""
    digest = hmac.new(KEY, b"message\x00Order-1@x.io", hashlib.sha256).digest()[:16]
    expected = "m1_" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    keyed = Pseudonymizer(KEY).message_id("Order-1@x.io")
    assert keyed == expected
    assert keyed != Pseudonymizer(KEY).message_id("order-1@x.io")
