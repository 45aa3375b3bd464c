"""The profile/personalization core. Talks to the gateway only through `bus`."""

from profiles._apply import (
    DEFAULT_MAX_KEYS,
    OTHER_EVENTS,
    ProfileState,
    apply_event,
    count_key,
    subject_key,
)
from profiles._consumer import ProfileConsumer
from profiles._read import Computed, ErasureReceipt, Profile, erasure_receipts, read_profile
from profiles._rules import (
    ProfileView,
    RuleError,
    evaluate,
    evaluation_order,
    segment_references,
    validate_rule,
)
from profiles._segments import MAX_SEGMENTS, Segment, SegmentStore
from profiles._tables import metadata

__all__ = [
    "DEFAULT_MAX_KEYS",
    "MAX_SEGMENTS",
    "OTHER_EVENTS",
    "Computed",
    "ErasureReceipt",
    "Profile",
    "ProfileConsumer",
    "ProfileState",
    "ProfileView",
    "RuleError",
    "Segment",
    "SegmentStore",
    "apply_event",
    "count_key",
    "erasure_receipts",
    "evaluate",
    "evaluation_order",
    "metadata",
    "read_profile",
    "segment_references",
    "subject_key",
    "validate_rule",
]
