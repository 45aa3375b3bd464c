"""Keys, keyed pseudonyms, scrubbing and IP truncation. Imports no other domain package."""

from anonymization._agent import generalize_user_agent
from anonymization._detect import PII_KINDS, PiiKind, find_pii, iban_valid, luhn_valid
from anonymization._keyfile import KeyFileError, load_or_create_key, load_or_create_master_key
from anonymization._network import truncate_ip
from anonymization._pseudonym import (
    PSEUDONYM_VERSION,
    IdentifierKind,
    Pseudonymizer,
    derive_source_key,
    normalize_identifier,
)
from anonymization._scrub import DEFAULT_PII_ACTIONS, RESERVED_PII_TRAITS, PiiAction, Scrubber

__all__ = [
    "DEFAULT_PII_ACTIONS",
    "PII_KINDS",
    "PSEUDONYM_VERSION",
    "RESERVED_PII_TRAITS",
    "IdentifierKind",
    "KeyFileError",
    "PiiAction",
    "PiiKind",
    "Pseudonymizer",
    "Scrubber",
    "derive_source_key",
    "find_pii",
    "generalize_user_agent",
    "iban_valid",
    "load_or_create_key",
    "load_or_create_master_key",
    "luhn_valid",
    "normalize_identifier",
    "truncate_ip",
]
