"""PII detectors for free-form strings: one combined regex pass, then a validity check per kind.

Kinds: email, phone (E.164 and common national forms), card (only when Luhn-valid), IBAN
(only when mod-97-valid), IPv4/IPv6 (only real addresses), US SSN (only assignable numbers).
The checks are what keeps version strings, timestamps, order numbers, UUIDs and prices
untouched (`tests/test_detect.py` holds the false-positive corpus).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from typing import Literal

from anonymization._network import truncate_ip

PiiKind = Literal["email", "phone", "card", "iban", "ip", "ssn"]
PII_KINDS: tuple[PiiKind, ...] = ("email", "phone", "card", "iban", "ip", "ssn")

# Three patterns, each tried only on strings that hold its trigger character: one combined
# pattern tried every alternative at every position (about 0.5 µs a character).
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
)
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_NUMERIC = re.compile(
    r"(?P<iban>\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b)"
    r"|(?P<ipv4>(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]))"
    r"|(?P<ssn>(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-]))"
    r"|(?P<card>(?<![\w.,-])\d(?:[ -]?\d){12,18}(?![\w.,-]))"
    r"|(?P<phone>(?<![\w+.])"
    r"(?:\+[1-9]\d{0,2}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"
    r"|\(\d{2,4}\)[ .-]?\d{3,4}[ .-]?\d{3,4}"
    r"|0\d{2,4}[ .-]\d{3,4}[ .-]?\d{3,4}"
    r"|\d{3}[.-]\d{3}[.-]\d{4})(?![\w.])"
    r")"
)
# Every numeric kind but IBAN holds at least four digits (the shortest is an IPv4 address);
# an IBAN starts with a country code and two check digits.
_FOUR_DIGITS = re.compile(r"\d\D*\d\D*\d\D*\d").search
_IBAN_START = re.compile(r"[A-Z]{2}\d{2}").search


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


def _card(text: str) -> bool:
    digits = text.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and luhn_valid(digits) and len(set(digits)) > 1


def _phone(text: str) -> bool:
    digits = sum(c.isdigit() for c in text)
    return 8 <= digits <= 15


def _ssn(text: str) -> bool:
    area, group, serial = text.split("-")
    return area not in {"000", "666"} and area[0] != "9" and group != "00" and serial != "0000"


def _ip(text: str) -> bool:
    if ":" not in text:
        return truncate_ip(text) is not None  # the IPv4 fast path
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


_CHECKS: dict[str, tuple[PiiKind, Callable[[str], bool]]] = {
    "iban": ("iban", iban_valid),
    "ipv4": ("ip", _ip),
    "ssn": ("ssn", _ssn),
    "card": ("card", _card),
    "phone": ("phone", _phone),
}


_CLEAN: dict[str, None] = {}  # strings known to hold no PII (only those: no PII is kept)
_CLEAN_LIMIT = 50_000
_CLEAN_MAX_LENGTH = 256


def find_pii(text: str) -> list[tuple[PiiKind, int, int]]:
    """(kind, start, end) of every valid PII match in `text`, left to right, not overlapping.

    Property values repeat a lot (enums, names, paths): strings found clean are remembered.
    """
    if text in _CLEAN:
        return []
    found = list(_find(text))
    if not found and len(text) <= _CLEAN_MAX_LENGTH:
        if len(_CLEAN) >= _CLEAN_LIMIT:
            _CLEAN.clear()
        _CLEAN[text] = None
    return found


def _find(text: str) -> Iterator[tuple[PiiKind, int, int]]:
    found: list[tuple[int, int, PiiKind]] = []
    if "@" in text:
        found.extend((m.start(), m.end(), "email") for m in _EMAIL.finditer(text))
    if ":" in text:
        found.extend((m.start(), m.end(), "ip") for m in _IPV6.finditer(text) if _ip(m.group()))
    if _FOUR_DIGITS(text) or _IBAN_START(text):
        for match in _NUMERIC.finditer(text):
            kind, check = _CHECKS[match.lastgroup or ""]
            if check(match.group()):
                found.append((match.start(), match.end(), kind))
    if len(found) > 1:
        found.sort()
    covered = 0
    for start, end, kind in found:
        if start >= covered:
            covered = end
            yield kind, start, end
