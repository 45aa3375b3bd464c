"""PII detectors for free-form strings: one combined regex pass, then a validity check per kind.

Kinds: email, phone (E.164 and common national forms), card (only when Luhn-valid), IBAN
(only when mod-97-valid), IPv4/IPv6 (only real addresses), US SSN (only assignable numbers).
The checks are what keeps version strings, timestamps, order numbers, UUIDs and prices
untouched (`tests/test_detect.py` holds the false-positive corpus).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Literal

from anonymization._network import truncate_ip

try:
    from anonymization import _scan  # the native scanner, built at install
except ImportError:  # a source tree used without `pip install`: the regex path answers alone
    _scan = None  # type: ignore[assignment]

NATIVE_SCANNER = _scan is not None

PiiKind = Literal["email", "phone", "card", "iban", "ip", "ssn"]
PII_KINDS: tuple[PiiKind, ...] = ("email", "phone", "card", "iban", "ip", "ssn")

# Python's regex engine tries every alternative, lookbehinds first, at every position of a
# string: the precise patterns below cost ~0.2 µs a character when run over whole values. So
# each kind is first located by something the engine (or str) finds fast, and the precise
# pattern runs only there:
# - email: at each "@" (a literal search), the domain forward, the local part backwards;
# - numbers (IPv4, SSN, card, phone): inside runs of digits and separators at least 7 long
#   (the shortest, "1.2.3.4"); every precise match lies inside such a run;
# - IBAN: only in strings holding a country code and check digits;
# - IPv6: only in strings holding ":".
# tests/test_detect.py checks that this finds exactly what the precise patterns alone find.
_LOCAL_CHARS = r"A-Za-z0-9._%+\-"
_EMAIL_DOMAIN = re.compile(r"@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_LOCAL_PART_REVERSED = re.compile(rf"[{_LOCAL_CHARS}]+")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
_IBAN_START = re.compile(r"[A-Z]{2}\d{2}").search
_NUMERIC_RUN = re.compile(r"[\d+(][\d ().+\-]{5,}\d")
_NUMERIC = re.compile(
    # a product token ("Chrome/131.0.0.0") or a named version is not an address
    r"(?P<ipv4>(?<![\w.])(?<![A-Za-z]/)(?<!(?i:version) )(?<!(?i:build) )"
    r"(?:\d{1,3}\.){3}\d{1,3}(?![\w.]))"
    r"|(?P<ssn>(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-]))"
    r"|(?P<card>(?<![\w.,-])\d(?:[ -]?\d){12,18}(?![\w.,-]))"
    r"|(?P<phone>(?<![\w+.])"
    r"(?:\+[1-9]\d{0,2}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"
    r"|\(\d{2,4}\)[ .-]?\d{3,4}[ .-]?\d{3,4}"
    r"|0\d{2,4}[ .-]\d{3,4}[ .-]?\d{3,4}"
    r"|\d{3}[.-]\d{3}[.-]\d{4})(?![\w.])"
    r")"
)


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
    # the match holds digits and these separators only
    digits = len(text) - sum(map(text.count, " .-()+"))
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
    "ipv4": ("ip", _ip),
    "ssn": ("ssn", _ssn),
    "card": ("card", _card),
    "phone": ("phone", _phone),
}


CLEAN_TEXTS: dict[str, None] = {}  # strings known to hold no PII (only those: no PII is kept)
_CLEAN_LIMIT = 50_000
_CLEAN_MAX_LENGTH = 256


def find_pii(text: str) -> list[tuple[PiiKind, int, int]]:
    """(kind, start, end) of every valid PII match in `text`, left to right, not overlapping.

    Property values repeat a lot (enums, names, paths): strings found clean are remembered.
    """
    if text in CLEAN_TEXTS:
        return []
    found = _find(text)
    if not found and len(text) <= _CLEAN_MAX_LENGTH:
        if len(CLEAN_TEXTS) >= _CLEAN_LIMIT:
            CLEAN_TEXTS.clear()
        CLEAN_TEXTS[text] = None
    return found


def _find(text: str) -> list[tuple[PiiKind, int, int]]:
    found = _scan.find(text) if _scan is not None else None
    if found is None:  # not ASCII, or the native scanner is not built
        found = _candidates(text)
    return _leftmost(found) if found else []


def _find_regex(text: str) -> list[tuple[PiiKind, int, int]]:
    """What `_find` answers, from the regular expressions alone: the native scanner's oracle."""
    return _leftmost(_candidates(text))


def _leftmost(found: list[tuple[int, int, PiiKind]]) -> list[tuple[PiiKind, int, int]]:
    """Left to right, each match kept unless it overlaps one kept before it."""
    if len(found) > 1:
        found.sort()
    kept: list[tuple[PiiKind, int, int]] = []
    covered = 0
    for start, end, kind in found:
        if start >= covered:
            covered = end
            kept.append((kind, start, end))
    return kept


def _candidates(text: str) -> list[tuple[int, int, PiiKind]]:
    """(start, end, kind) of every match that passes its check, overlaps included."""
    found: list[tuple[int, int, PiiKind]] = []
    if "@" in text:
        _emails(text, found)
    if ":" in text:
        found.extend((m.start(), m.end(), "ip") for m in _IPV6.finditer(text) if _ip(m.group()))
    if _IBAN_START(text):
        found.extend(
            (m.start(), m.end(), "iban") for m in _IBAN.finditer(text) if iban_valid(m.group())
        )
    run = _NUMERIC_RUN.search(text)
    while run is not None:
        # endpos one past the run, so that the patterns' lookaheads see the next character
        for match in _NUMERIC.finditer(text, run.start(), run.end() + 1):
            kind, check = _CHECKS[match.lastgroup or ""]
            if check(match.group()):
                found.append((match.start(), match.end(), kind))
        run = _NUMERIC_RUN.search(text, run.end())
    return found


def _emails(text: str, found: list[tuple[int, int, PiiKind]]) -> None:
    """Each address: a domain after "@", and the whole run of local-part characters before it.

    As with the single regex this replaces, an address starts where such a run starts and
    not inside the previous address.
    """
    consumed = 0
    at = text.find("@", 1)  # an address has a local part before its "@"
    while at != -1:
        domain = _EMAIL_DOMAIN.match(text, at)
        if domain is not None:
            local = _LOCAL_PART_REVERSED.match(text[at - 1 :: -1])
            if local is not None and at - local.end() >= consumed:
                found.append((at - local.end(), domain.end(), "email"))
                consumed = at = domain.end()
        at = text.find("@", at + 1)
