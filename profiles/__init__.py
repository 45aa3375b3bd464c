"""The profile/personalization core. Talks to the gateway only through `bus`."""

from profiles._apply import ProfileState, apply_event, count_key, subject_key
from profiles._consumer import ProfileConsumer
from profiles._read import Computed, Profile, read_profile
from profiles._tables import metadata

__all__ = [
    "Computed",
    "Profile",
    "ProfileConsumer",
    "ProfileState",
    "apply_event",
    "count_key",
    "metadata",
    "read_profile",
    "subject_key",
]
