"""Server-rendered pages: the privacy center for end users, the compliance console for
auditors, and the consent banner apps embed. Presentation only: templates, the stylesheet,
the banner's script, the chart's geometry, the page security headers, the session cookie and
CSRF tokens. The edge (`gateway.routes_pages`, `routes_console`) supplies the data and the
actions; this package imports none of the others.
"""

from web._chart import StackedBars, stacked_bars
from web._render import banner_script, banner_stylesheet, privacy_script, render, stylesheet
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
    "banner_script",
    "banner_stylesheet",
    "privacy_script",
    "render",
    "stacked_bars",
    "stylesheet",
]
