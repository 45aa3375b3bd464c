"""Purposes, consent signals, records and the decision. Imports neither gateway nor profiles."""

from consent._decision import Action, Decision, Jurisdiction, also_allowed, decide
from consent._purposes import (
    DEFAULT_CONFIG,
    DEFAULT_PURPOSES,
    GPC_REFUSED,
    PURPOSES,
    ConsentConfig,
    ConsentConfigError,
    PurposeDefinition,
    PurposeResolver,
    load_consent_config,
    required_purposes,
)
from consent._records import (
    SIGNAL_SOURCES,
    SUPPRESSION,
    ConsentRecord,
    ConsentState,
    PurposeState,
    SignalSource,
    current_state,
    is_suppressed,
    merge_states,
    new_records,
    with_records,
)
from consent._signals import (
    GOOGLE_CONSENT_MODE,
    NO_SIGNALS,
    TCF_PURPOSES,
    Signals,
    parse_signals,
)
from consent._store import CONSENT_CACHE_LIMIT, ConsentStore
from consent._tables import metadata
from consent._tcf import IdSet, TCString, TCStringError, decode_tc_string

__all__ = [
    "CONSENT_CACHE_LIMIT",
    "DEFAULT_CONFIG",
    "DEFAULT_PURPOSES",
    "GOOGLE_CONSENT_MODE",
    "GPC_REFUSED",
    "NO_SIGNALS",
    "PURPOSES",
    "SIGNAL_SOURCES",
    "SUPPRESSION",
    "TCF_PURPOSES",
    "Action",
    "ConsentConfig",
    "ConsentConfigError",
    "ConsentRecord",
    "ConsentState",
    "ConsentStore",
    "Decision",
    "IdSet",
    "Jurisdiction",
    "PurposeDefinition",
    "PurposeResolver",
    "PurposeState",
    "SignalSource",
    "Signals",
    "TCString",
    "TCStringError",
    "also_allowed",
    "current_state",
    "decide",
    "decode_tc_string",
    "is_suppressed",
    "load_consent_config",
    "merge_states",
    "metadata",
    "new_records",
    "parse_signals",
    "required_purposes",
    "with_records",
]
