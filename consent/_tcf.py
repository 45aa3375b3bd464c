"""IAB TCF v2 (v2.2) TC string decoder: the core segment and the optional segments.

Written from the IAB's "Consent string and vendor list formats v2" specification; tested on
the IAB's own decoder test vectors (`../shared/testdata/tcf_vectors.json`). Any malformed
string raises `TCStringError`; callers turn that into a reason code, never into consent.

TC strings come from clients (write keys are public), so decoding costs time linear in the
string's length: bits are read from the bytes directly, and vendor ranges stay ranges (`IdSet`)
instead of being expanded, which let one 8 KB string name 268 million vendor ids.
"""

from __future__ import annotations

import base64
import binascii
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

import msgspec

_DECISECOND_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SEGMENT_DISCLOSED_VENDORS = 1
_SEGMENT_ALLOWED_VENDORS = 2
_SEGMENT_PUBLISHER_TC = 3
_MAX_STRING = 8192


class TCStringError(ValueError):
    """The TC string is not a valid TCF v2 string."""


class IdSet:
    """An immutable set of ids kept as sorted, disjoint, inclusive ranges.

    Membership is a binary search, so a range of 65,535 vendors costs one pair of ints, not
    65,535 set entries. Iterating yields every id (for display and tests, not hot paths).
    """

    __slots__ = ("_ends", "_starts")

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        starts: list[int] = []
        ends: list[int] = []
        for start, end in sorted(ranges):
            if ends and start <= ends[-1] + 1:
                ends[-1] = max(ends[-1], end)
            else:
                starts.append(start)
                ends.append(end)
        self._starts = tuple(starts)
        self._ends = tuple(ends)

    @property
    def ranges(self) -> tuple[tuple[int, int], ...]:
        return tuple(zip(self._starts, self._ends, strict=True))

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int):
            return False
        index = bisect_right(self._starts, value) - 1
        return index >= 0 and value <= self._ends[index]

    def __iter__(self) -> Iterator[int]:
        for start, end in zip(self._starts, self._ends, strict=True):
            yield from range(start, end + 1)

    def __len__(self) -> int:
        return sum(end - start + 1 for start, end in zip(self._starts, self._ends, strict=True))

    def __bool__(self) -> bool:
        return bool(self._starts)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, IdSet):
            return self._starts == other._starts and self._ends == other._ends
        if isinstance(other, set | frozenset):
            return len(self) == len(other) and all(i in self for i in other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self._starts, self._ends))

    def __repr__(self) -> str:
        return f"IdSet({list(self.ranges)!r})"


_EMPTY = IdSet()


class PublisherRestriction(msgspec.Struct, frozen=True):
    purpose: int
    restriction_type: int
    vendors: IdSet


class TCString(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    created: datetime
    last_updated: datetime
    cmp_id: int
    cmp_version: int
    consent_screen: int
    consent_language: str
    vendor_list_version: int
    policy_version: int
    is_service_specific: bool
    use_non_standard_stacks: bool
    special_feature_optins: frozenset[int]
    purpose_consents: frozenset[int]
    purpose_legitimate_interests: frozenset[int]
    purpose_one_treatment: bool
    publisher_country_code: str
    vendor_consents: IdSet
    vendor_legitimate_interests: IdSet
    publisher_restrictions: tuple[PublisherRestriction, ...] = ()
    vendors_disclosed: IdSet = _EMPTY
    vendors_allowed: IdSet = _EMPTY
    publisher_consents: frozenset[int] = frozenset()
    publisher_legitimate_interests: frozenset[int] = frozenset()
    custom_purpose_consents: frozenset[int] = frozenset()
    custom_purpose_legitimate_interests: frozenset[int] = frozenset()


class _Bits:
    """A big-endian bit reader over the bytes of one segment; each read costs O(width)."""

    __slots__ = ("_data", "_length", "_position")

    def __init__(self, segment: str) -> None:
        self._data = _base64url(segment)
        self._length = len(self._data) * 8
        self._position = 0

    def read(self, width: int) -> int:
        position = self._position
        if position + width > self._length:
            raise TCStringError("TC string is truncated")
        self._position = position + width
        first = position >> 3
        last = (position + width - 1) >> 3
        chunk = int.from_bytes(self._data[first : last + 1], "big")
        shift = (last + 1) * 8 - (position + width)
        return (chunk >> shift) & ((1 << width) - 1)

    def flag(self) -> bool:
        return self.read(1) == 1

    def bitfield(self, width: int) -> frozenset[int]:
        """Ids 1..width whose bit is set (small fields: purposes, features)."""
        bits = self.read(width)
        return frozenset(i + 1 for i in range(width) if bits >> (width - 1 - i) & 1)

    def bitfield_ranges(self, width: int) -> IdSet:
        """A vendor bitfield of `width` bits (as many as the string holds) as ranges."""
        ranges: list[tuple[int, int]] = []
        start = None
        for vendor in range(1, width + 1):
            if self.flag():
                if start is None:
                    start = vendor
            elif start is not None:
                ranges.append((start, vendor - 1))
                start = None
        if start is not None:
            ranges.append((start, width))
        return IdSet(ranges)

    def letters(self) -> str:
        return "".join(chr(ord("A") + self.read(6)) for _ in range(2))

    def deciseconds(self) -> datetime:
        return datetime.fromtimestamp(self.read(36) / 10, tz=UTC)

    def ranges(self) -> IdSet:
        """NumEntries, then single ids or [start, end] ranges; at most 4,095 of them."""
        found: list[tuple[int, int]] = []
        for _ in range(self.read(12)):
            is_range = self.flag()
            start = self.read(16)
            end = self.read(16) if is_range else start
            if end < start or start < 1:
                raise TCStringError("TC string has an invalid vendor range")
            found.append((start, end))
        return IdSet(found)

    def vendors(self) -> IdSet:
        """A vendor section: MaxVendorId, then a bitfield or ranges."""
        max_vendor = self.read(16)
        if self.flag():
            found = self.ranges()
            if found and found.ranges[-1][1] > max_vendor:
                raise TCStringError("TC string names a vendor above MaxVendorId")
            return found
        if max_vendor > self._length - self._position:
            raise TCStringError("TC string is truncated")
        return self.bitfield_ranges(max_vendor)


def _base64url(segment: str) -> bytes:
    padded = segment.rstrip("=") + "=" * (-len(segment.rstrip("=")) % 4)
    try:
        return base64.urlsafe_b64decode(padded.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise TCStringError("TC string is not base64url") from None


def decode_tc_string(text: str) -> TCString:
    """Decode a TCF v2 TC string; raise `TCStringError` on anything malformed."""
    if not isinstance(text, str) or not text or len(text) > _MAX_STRING:
        raise TCStringError("TC string is empty or too long")
    core, *segments = text.strip().split(".")
    bits = _Bits(core)
    version = bits.read(6)
    if version != 2:
        raise TCStringError(f"TC string version {version} is not supported (only 2)")
    fields = {
        "version": version,
        "created": bits.deciseconds(),
        "last_updated": bits.deciseconds(),
        "cmp_id": bits.read(12),
        "cmp_version": bits.read(12),
        "consent_screen": bits.read(6),
        "consent_language": bits.letters(),
        "vendor_list_version": bits.read(12),
        "policy_version": bits.read(6),
        "is_service_specific": bits.flag(),
        "use_non_standard_stacks": bits.flag(),
        "special_feature_optins": bits.bitfield(12),
        "purpose_consents": bits.bitfield(24),
        "purpose_legitimate_interests": bits.bitfield(24),
        "purpose_one_treatment": bits.flag(),
        "publisher_country_code": bits.letters(),
        "vendor_consents": bits.vendors(),
        "vendor_legitimate_interests": bits.vendors(),
        "publisher_restrictions": _restrictions(bits),
    }
    for segment in segments:
        if segment:
            fields.update(_optional_segment(segment))
    return TCString(**fields)  # type: ignore[arg-type]


def _restrictions(bits: _Bits) -> tuple[PublisherRestriction, ...]:
    restrictions = []
    for _ in range(bits.read(12)):
        purpose = bits.read(6)
        restriction_type = bits.read(2)
        restrictions.append(PublisherRestriction(purpose, restriction_type, bits.ranges()))
    return tuple(restrictions)


def _optional_segment(segment: str) -> dict[str, frozenset[int] | IdSet]:
    bits = _Bits(segment)
    kind = bits.read(3)
    if kind == _SEGMENT_DISCLOSED_VENDORS:
        return {"vendors_disclosed": bits.vendors()}
    if kind == _SEGMENT_ALLOWED_VENDORS:
        return {"vendors_allowed": bits.vendors()}
    if kind == _SEGMENT_PUBLISHER_TC:
        consents = bits.bitfield(24)
        interests = bits.bitfield(24)
        custom = bits.read(6)
        return {
            "publisher_consents": consents,
            "publisher_legitimate_interests": interests,
            "custom_purpose_consents": bits.bitfield(custom) if custom else frozenset(),
            "custom_purpose_legitimate_interests": bits.bitfield(custom) if custom else frozenset(),
        }
    raise TCStringError(f"TC string has an unknown segment type {kind}")
