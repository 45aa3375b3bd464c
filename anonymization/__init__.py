"""Keys, keyed pseudonyms, per-subject encryption, PII detection and scrubbing.

Imports no other domain package (only the `bus.Database` contract for its key tables).
"""

from typing import TYPE_CHECKING

from anonymization._agent import generalize_user_agent
from anonymization._detect import PII_KINDS, PiiKind, find_pii, iban_valid, luhn_valid
from anonymization._fieldcrypt import (
    DecryptError,
    blind_index,
    decrypt_fields,
    decrypt_value,
    encrypt_value,
)
from anonymization._kek import KekSet, UnwrapError, kek_id, pending_kek_path
from anonymization._keyfile import KeyFileError, load_or_create_key, load_or_create_master_key
from anonymization._keyring import Keyring, SourceKeys, rewrap_all
from anonymization._network import truncate_ip
from anonymization._policy import (
    DEFAULT_FIELDS,
    DEFAULT_POLICY,
    FIELD_ACTIONS,
    FieldAction,
    FieldPolicy,
    FieldPolicyError,
    FieldProtector,
    PiiAction,
    load_field_policy,
    truncate_value,
)
from anonymization._pseudonym import IdentifierKind, Pseudonymizer, normalize_identifier
from anonymization._scrub import DEFAULT_PII_ACTIONS
from anonymization._scrub import Scrubber as PythonScrubber

if TYPE_CHECKING:
    Scrubber = PythonScrubber
else:
    try:  # the same class compiled (anonymization/_scrub_native.pyx), built at install
        from anonymization._scrub_native import Scrubber
    except ImportError:  # a source tree used without `pip install`
        Scrubber = PythonScrubber
from anonymization._tables import metadata

__all__ = [
    "DEFAULT_FIELDS",
    "DEFAULT_PII_ACTIONS",
    "DEFAULT_POLICY",
    "FIELD_ACTIONS",
    "PII_KINDS",
    "DecryptError",
    "FieldAction",
    "FieldPolicy",
    "FieldPolicyError",
    "FieldProtector",
    "IdentifierKind",
    "KekSet",
    "KeyFileError",
    "Keyring",
    "PiiAction",
    "PiiKind",
    "Pseudonymizer",
    "PythonScrubber",
    "Scrubber",
    "SourceKeys",
    "UnwrapError",
    "blind_index",
    "decrypt_fields",
    "decrypt_value",
    "encrypt_value",
    "find_pii",
    "generalize_user_agent",
    "iban_valid",
    "kek_id",
    "load_field_policy",
    "load_or_create_key",
    "load_or_create_master_key",
    "luhn_valid",
    "metadata",
    "normalize_identifier",
    "pending_kek_path",
    "rewrap_all",
    "truncate_ip",
    "truncate_value",
]
