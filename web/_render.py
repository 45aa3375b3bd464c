"""Jinja templates, autoescaped; the stylesheet they link (no inline style or script: the
content security policy forbids both)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

_HERE = Path(__file__).parent


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(_HERE / "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,  # a missing value is a bug, not an empty string
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, **context: Any) -> str:
    return _environment().get_template(template).render(**context)


STATIC_FILES = frozenset({"pages.css", "privacy.js", "consent.js", "banner.css"})


@cache
def static_file(name: str) -> bytes:
    """One of the pages' static files (`STATIC_FILES`), read once."""
    if name not in STATIC_FILES:
        raise KeyError(name)
    return (_HERE / "static" / name).read_bytes()
