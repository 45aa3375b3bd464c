"""Keys, keyed pseudonyms, per-subject encryption, PII detection and scrubbing.

Imports no other domain package (only the `bus.Database` contract for its key tables).
"""

from anonymization._agent import generalize_user_agent
from anonymization._detect import PII_KINDS, PiiKind, find_pii, iban_valid, luhn_valid
from anonymization._kek import KekSet, UnwrapError, kek_id, pending_kek_path
from anonymization._keyfile import KeyFileError, load_or_create_key, load_or_create_master_key
from anonymization._keyring import Keyring, SourceKeys, rewrap_all
from anonymization._network import truncate_ip
from anonymization._pseudonym import IdentifierKind, Pseudonymizer, normalize_identifier
from anonymization._scrub import DEFAULT_PII_ACTIONS, RESERVED_PII_TRAITS, PiiAction, Scrubber
from anonymization._tables import metadata

__all__ = [
    "DEFAULT_PII_ACTIONS",
    "PII_KINDS",
    "RESERVED_PII_TRAITS",
    "IdentifierKind",
    "KekSet",
    "KeyFileError",
    "Keyring",
    "PiiAction",
    "PiiKind",
    "Pseudonymizer",
    "Scrubber",
    "SourceKeys",
    "UnwrapError",
    "find_pii",
    "generalize_user_agent",
    "iban_valid",
    "kek_id",
    "load_or_create_key",
    "load_or_create_master_key",
    "luhn_valid",
    "metadata",
    "normalize_identifier",
    "pending_kek_path",
    "rewrap_all",
    "truncate_ip",
]
