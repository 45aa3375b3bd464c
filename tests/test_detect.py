"""PII detectors: known positives, the false-positive corpus, generated valid numbers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anonymization import Scrubber, _detect, find_pii, iban_valid, luhn_valid

POSITIVES = [
    ("email", "jane.doe@example.co.uk"),
    ("phone", "+44 20 7946 0958"),
    ("phone", "+14155552671"),
    ("phone", "(415) 555-2671"),
    ("phone", "415-555-2671"),
    ("phone", "020 7946 0958"),
    ("card", "4111 1111 1111 1111"),
    ("card", "4111-1111-1111-1111"),
    ("card", "5500005555555559"),
    ("iban", "GB82 WEST 1234 5698 7654 32"),
    ("iban", "DE89370400440532013000"),
    ("ip", "203.0.113.77"),
    ("ip", "2001:db8::1"),
    ("ip", "fe80::1ff:fe23:4567:890a"),
    ("ssn", "123-45-6789"),
]

FALSE_POSITIVE_CORPUS = [
    "version 2.4.0",
    "v1.2.3-beta",
    "2026-11-26T10:00:00Z",
    "2026-11-26 10:00:00",
    "12:30:45",
    "order ORD-1234567",
    "order #100234",
    "550e8400-e29b-41d4-a716-446655440000",
    "$1,234.56",
    "1234.56",
    "€ 99.99",
    "4111 1111 1111 1112",  # fails Luhn
    "GB82 WEST 1234 5698 7654 33",  # fails mod-97
    "000-12-3456",  # not an assignable SSN
    "123-00-4567",
    "999.999.999.999",  # not an address
    "step 3 of 7",
    "build 20261126",
    "3.14159",
    "rgb(255, 255, 255)",
    "1,000,000",
    "SKU-88812-XL",
    "2026-11-26",
    "Mozilla/5.0 Chrome/131.0.0.0 Safari/537.36",  # four-part versions
    "version 1.2.3.4",
    "Build 10.0.19045.1",
]


@pytest.mark.parametrize(("kind", "value"), POSITIVES)
def test_detects_each_kind(kind: str, value: str) -> None:
    """Each kind is found, whole, inside surrounding text."""
    text = f"note: {value} thanks"
    found = [(k, text[a:b]) for k, a, b in find_pii(text)]
    assert found == [(kind, value)]
    assert value not in Scrubber({}).text(text)
    assert f"[{kind}]" in Scrubber({}).text(text)


def test_an_address_in_a_url_is_found_a_product_version_is_not() -> None:
    """An address in a URL ("http://10.0.0.1/") is found; a product version is not."""
    assert Scrubber({}).text("see http://10.0.0.1/admin") == "see http://[ip]/admin"
    assert Scrubber({}).text("Chrome/131.0.0.0 from 10.0.0.1") == "Chrome/131.0.0.0 from [ip]"


@pytest.mark.parametrize("text", FALSE_POSITIVE_CORPUS)
def test_false_positive_corpus_stays_untouched(text: str) -> None:
    """Versions, timestamps, order numbers, UUIDs, prices and invalid numbers are not PII."""
    assert list(find_pii(text)) == []
    assert Scrubber({}).text(text) == text


def _with_luhn(body: str) -> str:
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable")


def _iban(country: str, bban: str) -> str:
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


@given(st.from_regex(r"[3-6][0-9]{14}", fullmatch=True))
def test_every_luhn_valid_card_is_redacted(body: str) -> None:
    """Any 16-digit Luhn-valid number (not all one digit) is redacted."""
    card = _with_luhn(body)
    if len(set(card)) > 1:
        assert card not in Scrubber({}).text(f"paid with {card} today")


@given(
    st.sampled_from(["DE", "FR", "GB", "NL", "ES"]),
    st.from_regex(r"[A-Z0-9]{14,20}", fullmatch=True),
)
def test_every_mod97_valid_iban_is_redacted(country: str, bban: str) -> None:
    """Any IBAN whose check digits are right is redacted."""
    iban = _iban(country, bban)
    assert iban_valid(iban)
    assert iban not in Scrubber({}).text(f"iban {iban}.")


@given(st.from_regex(r"\+[1-9][0-9]{7,13}", fullmatch=True))
def test_e164_phones_are_redacted(phone: str) -> None:
    """E.164 numbers are redacted."""
    assert phone not in Scrubber({}).text(f"call {phone} now")


def test_actions_drop_and_pseudonymize() -> None:
    """A source may drop a kind or pseudonymize it instead of redacting."""
    scrub = Scrubber(
        {}, actions={"email": "pseudonymize", "phone": "drop"}, pseudonymize=lambda v: "p1_x"
    )
    assert scrub.text("a@b.io or +14155552671") == "[email:p1_x] or "


# The detectors' precise patterns run over whole strings, as a slow reference: the fast
# detector must find exactly what these find.
_REFERENCE_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
)


def _reference_find(text: str) -> list[tuple[str, int, int]]:
    found: list[tuple[int, int, str]] = [
        (m.start(), m.end(), "email") for m in _REFERENCE_EMAIL.finditer(text)
    ]
    found += [(m.start(), m.end(), "ip") for m in _detect._IPV6.finditer(text) if _detect._ip(m[0])]
    found += [
        (m.start(), m.end(), "iban") for m in _detect._IBAN.finditer(text) if iban_valid(m[0])
    ]
    for match in _detect._NUMERIC.finditer(text):
        kind, check = _detect._CHECKS[match.lastgroup or ""]
        if check(match[0]):
            found.append((match.start(), match.end(), kind))
    kept: list[tuple[str, int, int]] = []
    covered = 0
    for start, end, name in sorted(found):
        if start >= covered:
            covered = end
            kept.append((name, start, end))
    return kept


_FRAGMENTS = [value for _, value in POSITIVES] + FALSE_POSITIVE_CORPUS
_FRAGMENTS += ["1.2.3.4", "+4930123", "@", "x@", ".io", " ", "\n"]


@settings(max_examples=400)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(_FRAGMENTS),
            st.text(alphabet="0123456789 .-+()@:abXYZ_", max_size=14),
        ),
        max_size=8,
    ).map("".join)
)
def test_fast_detection_finds_what_the_precise_patterns_find(text: str) -> None:
    """Locating candidates first (at "@", in digit runs) changes nothing that is found."""
    assert _detect._find(text) == _reference_find(text)


def test_the_native_scanner_is_built() -> None:
    """`make` (pip install) compiles it; without it every string would take the regex path."""
    assert _detect.NATIVE_SCANNER


_ASCII_ALPHABETS = [
    "0123456789 .-+()",  # phones, cards, SSNs, IPv4
    "0123456789abcdefABCDEF:. x",  # IPv6 and what is close to it
    "GBDEFR0123456789 ",  # IBANs
    "ab.c-@xy.1%+_Z",  # addresses
    "0123456789./ vVersionBUILD",  # versions and builds beside addresses
    "".join(map(chr, range(128))),  # any ASCII, control characters included
]


# Each kind's pattern without its lookarounds: text that matches, or nearly, in every way the
# regex can parse it (the digits split differently, separators in or out, groups repeated).
_SHAPES = [
    r"\+[1-9]\d{0,2}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}",
    r"\(\d{2,4}\)[ .-]?\d{3,4}[ .-]?\d{3,4}",
    r"0\d{2,4}[ .-]\d{3,4}[ .-]?\d{3,4}",
    r"\d{3}[.-]\d{3}[.-]\d{4}",
    r"(?:\d{1,3}\.){3}\d{1,3}",
    r"\d{3}-\d{2}-\d{4}",
    r"\d(?:[ -]?\d){12,18}",
    r"[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}",
    r"(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}",
    r"[A-Za-z0-9._%+\-]{1,8}@[A-Za-z0-9\-]{1,6}(?:\.[A-Za-z0-9\-]{1,5}){0,3}\.[A-Za-z]{2,4}",
]
_VALID_PII = st.one_of(
    st.builds(
        _iban,
        st.sampled_from(["DE", "GB"]),
        st.from_regex(re.compile(r"[A-Z0-9]{9,32}", re.ASCII), fullmatch=True),
    ),
    st.from_regex(re.compile(r"[0-9]{12,18}", re.ASCII), fullmatch=True).map(_with_luhn),
)
_NEAR_PII = st.one_of(
    _VALID_PII,
    *(st.from_regex(re.compile(shape, re.ASCII), fullmatch=True) for shape in _SHAPES),
)


@settings(max_examples=1500)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(_FRAGMENTS),
            _NEAR_PII,
            st.sampled_from(_ASCII_ALPHABETS).flatmap(
                lambda alphabet: st.text(alphabet=alphabet, max_size=12)
            ),
        ),
        max_size=6,
    ).map("".join)
)
def test_native_scanner_finds_what_the_regex_finds(text: str) -> None:
    """The differential test: the regular expressions are the oracle of the native scanner."""
    assert _detect._find(text) == _detect._find_regex(text)


@settings(max_examples=300)
@given(st.text(max_size=60))
def test_text_beyond_ascii_is_found_as_the_regex_finds_it(text: str) -> None:
    assert _detect._find(text) == _detect._find_regex(text)


def test_beyond_ascii_the_regex_answers() -> None:
    """\\d and \\w are Unicode classes: the native scanner leaves such text to the regex."""
    from anonymization import _scan

    text = "café, écrivez à jane.doe@example.com ou au +44 20 7946 0958"
    assert _scan.find(text) is None
    assert [kind for kind, _, _ in find_pii(text)] == ["email", "phone"]


def test_the_fuzz_target_runs_clean_for_a_while() -> None:
    """atheris on arbitrary bytes, bounded: no crash, no hang, no finding unlike the oracle's."""
    target = Path(__file__).parent / "fuzz" / "fuzz_scan.py"
    finished = subprocess.run(
        [
            sys.executable,
            str(target),
            f"-dict={target.with_name('scan.dict')}",
            "-max_total_time=20",
            "-timeout=5",
            "-rss_limit_mb=1024",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent.parent,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "Done" in finished.stderr


def _limits_corpus() -> list[str]:
    """Valid IBANs and cards at and around every length limit, compact and spaced, in text."""
    texts = []
    for length in range(9, 34):
        iban = _iban("GB", ("WEST12345698765432" * 2)[:length])
        spaced = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
        texts += [iban, spaced, f"iban {iban}.", f"{spaced}x"]
    for length in range(11, 21):
        card = _with_luhn(("4111111111111111111111")[:length])
        texts += [
            card,
            f"card {card}, thanks",
            "-".join(card[i : i + 4] for i in range(0, length, 4)),
        ]
    return texts


@pytest.mark.parametrize("text", _limits_corpus())
def test_native_scanner_at_the_length_limits(text: str) -> None:
    assert _detect._find(text) == _detect._find_regex(text)
