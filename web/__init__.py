"""Server-rendered pages: the privacy center for end users (issue 16; the console and the
consent banner come next). Presentation only: templates, the stylesheet, the page security
headers, the session cookie and CSRF tokens. The edge (`gateway.routes_pages`) supplies the
data and the actions; this package imports none of the others.
"""

from web._render import render, stylesheet
from web._security import (
    PAGE_HEADERS,
    SESSION_SECONDS,
    Session,
    SessionCodec,
    SessionError,
)

__all__ = [
    "PAGE_HEADERS",
    "SESSION_SECONDS",
    "Session",
    "SessionCodec",
    "SessionError",
    "render",
    "stylesheet",
]
