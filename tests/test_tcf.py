"""The TCF v2 decoder on the IAB's published test strings, and on malformed strings."""

from __future__ import annotations

import contextlib
import json
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
