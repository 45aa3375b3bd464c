"""User agents generalized to browser family, major version and OS: "Chrome 131 (macOS)".

Full user agents are fingerprints; this keeps what analytics needs and nothing finer.
"""

from __future__ import annotations

import re

# Order matters: Edge and Opera announce Chrome too, Chrome announces Safari.
_BROWSERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Edge", re.compile(r"Edg(?:e|A|iOS)?/(\d+)")),
    ("Opera", re.compile(r"(?:OPR|Opera)/(\d+)")),
    ("Samsung Internet", re.compile(r"SamsungBrowser/(\d+)")),
    ("Firefox", re.compile(r"(?:Firefox|FxiOS)/(\d+)")),
    ("Chrome", re.compile(r"(?:Chrome|CriOS)/(\d+)")),
    ("Safari", re.compile(r"Version/(\d+)[\d.]* (?:Mobile/\w+ )?Safari/")),
)
_SYSTEMS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("iOS", re.compile(r"iPhone|iPad|iPod")),
    ("Android", re.compile(r"Android")),
    ("Windows", re.compile(r"Windows")),
    ("macOS", re.compile(r"Macintosh|Mac OS X")),
    ("ChromeOS", re.compile(r"CrOS")),
    ("Linux", re.compile(r"Linux")),
)
_BOT = re.compile(r"bot|crawler|spider|curl|wget|python-requests|httpx", re.IGNORECASE)


_MEMO: dict[str, str | None] = {}  # few distinct agents, each seen many times
_MEMO_LIMIT = 10_000


def generalize_user_agent(user_agent: str) -> str | None:
    """The agent as "Family major (OS)", "bot", or None when nothing is recognised."""
    text = user_agent[:512]
    if text in _MEMO:
        return _MEMO[text]
    general = _generalize(text)
    if len(_MEMO) >= _MEMO_LIMIT:
        _MEMO.clear()
    _MEMO[text] = general
    return general


def _generalize(text: str) -> str | None:
    if _BOT.search(text):
        return "bot"
    browser = next(
        (f"{name} {m.group(1)}" for name, pattern in _BROWSERS if (m := pattern.search(text))),
        None,
    )
    system = next((name for name, pattern in _SYSTEMS if pattern.search(text)), None)
    if browser and system:
        return f"{browser} ({system})"
    return browser or system
