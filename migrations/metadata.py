"""Every package's MetaData: what migrations create and autogenerate compares."""

from __future__ import annotations

import anonymization
import bus
import consent
import gateway
import observability
import personalization
import privacy
import profiles

TARGET_METADATA = [
    gateway.metadata,
    bus.metadata,
    consent.metadata,
    anonymization.metadata,
    observability.metadata,
    profiles.metadata,
    personalization.metadata,
    privacy.metadata,
]
