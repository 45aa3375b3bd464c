"""The TCF v2 decoder on the IAB's published test strings, and on malformed strings."""

from __future__ import annotations

import base64
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent import TCStringError, decode_tc_string, parse_signals

# A copy of ../shared/testdata/tcf_vectors.json (the IAB's iabtcf-java decoder test strings),
# kept in the repository so that the suite needs nothing beside it.
VECTORS = json.loads((Path(__file__).parent / "data" / "tcf_vectors.json").read_text())["vectors"]


def _as_model(tc: Any) -> dict[str, Any]:
    """The decoded string in @iabtcf/core's field names, as the vectors state them."""
    return {
        "version": tc.version,
        "created": tc.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lastUpdated": tc.last_updated.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cmpId": tc.cmp_id,
        "cmpVersion": tc.cmp_version,
        "consentScreen": tc.consent_screen,
        "vendorListVersion": tc.vendor_list_version,
        "policyVersion": tc.policy_version,
        "consentLanguage": tc.consent_language,
        "publisherCountryCode": tc.publisher_country_code,
        "isServiceSpecific": tc.is_service_specific,
        "purposeOneTreatment": tc.purpose_one_treatment,
        "useNonStandardStacks": tc.use_non_standard_stacks,
        "specialFeatureOptins": sorted(tc.special_feature_optins),
        "purposeConsents": sorted(tc.purpose_consents),
        "purposeLegitimateInterests": sorted(tc.purpose_legitimate_interests),
        "vendorConsents": sorted(tc.vendor_consents),
        "vendorLegitimateInterests": sorted(tc.vendor_legitimate_interests),
        "vendorsAllowed": sorted(tc.vendors_allowed),
        "vendorsDisclosed": sorted(tc.vendors_disclosed),
        "publisherConsents_count": len(tc.publisher_consents),
    }


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_iab_vectors(vector: dict[str, Any]) -> None:
    """Every field the IAB's decoder tests assert decodes to the same value."""
    model = _as_model(decode_tc_string(vector["tc_string"]))
    for field, expected in vector["expected"].items():
        if field == "purposeConsents_contains":
            assert set(expected) <= set(model["purposeConsents"])
        else:
            assert model[field] == expected, field


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a tc string!",
        "BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA",  # TCF v1
        "COtybn4PA_zT4KjACBENAPCIAEBAAECAAI",  # truncated
        "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA.zzzz",  # unknown segment type
    ],
)
def test_malformed_strings_raise(text: str) -> None:
    """Malformed, truncated, v1 and unknown-segment strings raise TCStringError."""
    with pytest.raises(TCStringError):
        decode_tc_string(text)


@given(
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=", max_size=120
    )
)
def test_decoder_only_raises_tcstringerror(text: str) -> None:
    """Any base64url-ish text decodes or raises TCStringError; nothing else escapes."""
    with contextlib.suppress(TCStringError):
        decode_tc_string(text)


def test_tcf_signal_maps_purposes_and_malformed_is_a_reason() -> None:
    """A TC string with consent for purposes 1 and 2 only grants none of ours; junk is a reason."""
    only_1_2 = next(v["tc_string"] for v in VECTORS if v["id"] == "java-purposes-1-2")
    signals = parse_signals({"consent": {"tcf": only_1_2}}, None)
    assert signals.choices == {"analytics": False, "personalization": False, "marketing": False}
    broken = parse_signals({"gdpr_consent": "####"}, None)
    assert broken.choices == {}
    assert broken.malformed == ("malformed_tcf",)


def _tc_string(vendor_ranges: list[tuple[int, int]], bitfield_vendors: int = 0) -> str:
    """A valid core TC string (spec field order) whose vendor consents are the given ranges,
    or, with `bitfield_vendors`, a bitfield of that many vendors all set."""
    fields = [
        (2, 6),  # Version
        (16_000_000_000, 36),  # Created
        (16_000_000_000, 36),  # LastUpdated
        (1, 12),  # CmpId
        (1, 12),  # CmpVersion
        (1, 6),  # ConsentScreen
        (4 * 64 + 13, 12),  # ConsentLanguage "EN"
        (1, 12),  # VendorListVersion
        (2, 6),  # TcfPolicyVersion
        (0, 1),  # IsServiceSpecific
        (0, 1),  # UseNonStandardTexts
        (0, 12),  # SpecialFeatureOptIns
        ((1 << 24) - 1, 24),  # PurposesConsent: all 24
        (0, 24),  # PurposesLITransparency
        (0, 1),  # PurposeOneTreatment
        (0, 12),  # PublisherCC "AA"
    ]
    if bitfield_vendors:
        fields += [(bitfield_vendors, 16), (0, 1), ((1 << bitfield_vendors) - 1, bitfield_vendors)]
    else:
        fields += [(65535, 16), (1, 1), (len(vendor_ranges), 12)]
        for start, end in vendor_ranges:
            fields += [(1, 1), (start, 16), (end, 16)]
    fields += [(0, 16), (1, 1), (0, 12), (0, 12)]  # no LI vendors, no restrictions
    value = width = 0
    for field, bits in fields:
        value, width = (value << bits) | field, width + bits
    value <<= -width % 8
    raw = value.to_bytes((width + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_worst_case_string_decodes_in_linear_time() -> None:
    """The costliest string under the length limit (every range entry spans all 65,535
    vendors) decodes as ranges, far inside a second; expanding them took seconds."""
    low, high = 1, 4095  # the most entries that fit in 8,192 characters
    while low < high:
        middle = (low + high + 1) // 2
        fits = len(_tc_string([(1, 65535)] * middle)) <= 8192
        low, high = (middle, high) if fits else (low, middle - 1)
    entries = low
    text = _tc_string([(1, 65535)] * entries)
    assert entries > 1400
    started = time.perf_counter()
    tc = decode_tc_string(text)
    assert time.perf_counter() - started < 0.5
    assert tc.vendor_consents.ranges == ((1, 65535),)
    assert 65535 in tc.vendor_consents
    assert 65536 not in tc.vendor_consents
    assert len(tc.vendor_consents) == 65535


def test_vendor_bitfields_and_ranges_agree() -> None:
    """A bitfield and the same vendors as ranges decode to equal sets."""
    as_bits = decode_tc_string(_tc_string([], bitfield_vendors=40)).vendor_consents
    as_ranges = decode_tc_string(_tc_string([(1, 20), (21, 40)])).vendor_consents
    assert as_bits == as_ranges == frozenset(range(1, 41))
    assert as_bits.ranges == ((1, 40),)


def test_a_batch_decodes_a_repeated_string_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same TC string in many events is decoded once."""
    calls = []
    original = decode_tc_string

    def counting(text: str) -> Any:
        calls.append(text)
        return original(text)

    monkeypatch.setattr("consent._signals.decode_tc_string", counting)
    text = _tc_string([(7, 9), (100, 300)])
    for _ in range(50):
        assert parse_signals({"consent": {"tcf": text}}, None).choices["analytics"] is True
    assert len(calls) <= 1
