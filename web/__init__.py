"""Server-rendered pages: the privacy center for end users, the compliance console for
auditors, and the consent banner apps embed. Presentation only: templates, the stylesheet,
the banner's script, the chart's geometry, the page security headers, the session cookie and
CSRF tokens. The edge (`gateway.routes_pages`, `routes_console`) supplies the data and the
actions; this package imports none of the others.
"""

from web._chart import StackedBars, stacked_bars
from web._render import render, static_file
from web._security import (
    PAGE_HEADERS,
    SCRIPTED_PAGE_HEADERS,
    SESSION_SECONDS,
    Session,
    SessionCodec,
    SessionError,
)

__all__ = [
    "PAGE_HEADERS",
    "SCRIPTED_PAGE_HEADERS",
    "SESSION_SECONDS",
    "Session",
    "SessionCodec",
    "SessionError",
    "StackedBars",
    "render",
    "stacked_bars",
    "static_file",
]
