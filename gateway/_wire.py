"""Ingress types: Segment's HTTP Tracking API calls, with their limits stated once.

Field names follow Segment's JSON (camelCase). Unknown fields are allowed, as Segment does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

MessageId = Annotated[str, msgspec.Meta(max_length=99)]
Identifier = Annotated[str, msgspec.Meta(max_length=1024)] | int
EventName = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
Label = Annotated[str, msgspec.Meta(max_length=512)]
FreeForm = dict[str, Any] | None


class _Call(msgspec.Struct, kw_only=True, tag_field="type"):
    userId: Identifier | None = None
    anonymousId: Identifier | None = None
    messageId: MessageId | None = None
    timestamp: datetime | None = None
    originalTimestamp: datetime | None = None
    sentAt: datetime | None = None
    context: FreeForm = None
    integrations: FreeForm = None
    writeKey: str | None = None


class Track(_Call, kw_only=True, tag="track"):
    event: EventName
    properties: FreeForm = None


class Identify(_Call, kw_only=True, tag="identify"):
    traits: FreeForm = None


class Page(_Call, kw_only=True, tag="page"):
    name: Label | None = None
    category: Label | None = None
    properties: FreeForm = None


class Screen(_Call, kw_only=True, tag="screen"):
    name: Label | None = None
    category: Label | None = None
    properties: FreeForm = None


class Group(_Call, kw_only=True, tag="group"):
    groupId: Identifier
    traits: FreeForm = None


class Alias(_Call, kw_only=True, tag="alias"):
    previousId: Identifier


Call = Track | Identify | Page | Screen | Group | Alias

CALL_TYPES: dict[str, type[Call]] = {
    "track": Track,
    "identify": Identify,
    "page": Page,
    "screen": Screen,
    "group": Group,
    "alias": Alias,
}


class Batch(msgspec.Struct, kw_only=True):
    batch: list[msgspec.Raw]
    sentAt: datetime | None = None
    context: FreeForm = None
    integrations: FreeForm = None
    writeKey: str | None = None


class WriteKeyOnly(msgspec.Struct):
    """Enough of a body to authenticate before validating the rest."""

    writeKey: str | None = None
