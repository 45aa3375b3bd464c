"""Keys, keyed pseudonyms, scrubbing and IP truncation. Imports no other domain package."""

from anonymization._keyfile import KeyFileError, load_or_create_key, load_or_create_master_key
from anonymization._network import truncate_ip
from anonymization._pseudonym import (
    PSEUDONYM_VERSION,
    IdentifierKind,
    Pseudonymizer,
    derive_source_key,
    normalize_identifier,
)
from anonymization._scrub import EMAIL, EMAIL_REDACTION, RESERVED_PII_TRAITS, Scrubber

__all__ = [
    "EMAIL",
    "EMAIL_REDACTION",
    "PSEUDONYM_VERSION",
    "RESERVED_PII_TRAITS",
    "IdentifierKind",
    "KeyFileError",
    "Pseudonymizer",
    "Scrubber",
    "derive_source_key",
    "load_or_create_key",
    "load_or_create_master_key",
    "normalize_identifier",
    "truncate_ip",
]
