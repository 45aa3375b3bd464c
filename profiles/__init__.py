"""The profile/personalization core. Talks to the gateway only through `bus`."""

from profiles._apply import (
    ApplyOptions,
    apply_event,
    count_key,
    interaction_key,
    merge_states,
    subject_key,
)
from profiles._compiled import Predicate, compile_rule
from profiles._computed import ComputedView
from profiles._consumer import ProfileConsumer
from profiles._custom import TraitConfigError, TraitDefinition, load_trait_config
from profiles._maintenance import SegmentMaintenance
from profiles._read import (
    Computed,
    ErasureReceipt,
    Profile,
    erasure_receipts,
    interaction_sets,
    last_event_times,
    read_profile,
    subject_view,
)
from profiles._rules import (
    ProfileView,
    RuleError,
    evaluate,
    evaluation_order,
    segment_references,
    validate_rule,
)
from profiles._segment_store import (
    MAX_SEGMENTS,
    Backfill,
    Change,
    Member,
    Segment,
    SegmentStore,
)
from profiles._state import DEFAULT_MAX_KEYS, OTHER_EVENTS, PERSONALIZATION, ProfileState
from profiles._tables import metadata
from profiles._traits import put_source_traits

__all__ = [
    "DEFAULT_MAX_KEYS",
    "MAX_SEGMENTS",
    "OTHER_EVENTS",
    "PERSONALIZATION",
    "ApplyOptions",
    "Backfill",
    "Change",
    "Computed",
    "ComputedView",
    "ErasureReceipt",
    "Member",
    "Predicate",
    "Profile",
    "ProfileConsumer",
    "ProfileState",
    "ProfileView",
    "RuleError",
    "Segment",
    "SegmentMaintenance",
    "SegmentStore",
    "TraitConfigError",
    "TraitDefinition",
    "apply_event",
    "compile_rule",
    "count_key",
    "erasure_receipts",
    "evaluate",
    "evaluation_order",
    "interaction_key",
    "interaction_sets",
    "last_event_times",
    "load_trait_config",
    "merge_states",
    "metadata",
    "put_source_traits",
    "read_profile",
    "segment_references",
    "subject_key",
    "subject_view",
    "validate_rule",
]
