"""CORS for the ingestion paths only: analytics.js posts from the app's own origin.

Any origin may send events (write keys are public, and no cookie or credential is ever
allowed); a source can narrow that to its own origins (`EdgeConfig.allowed_origins`, checked by
the pipeline once the write key names the source: a preflight carries no write key). Every
other path sends no CORS header, so browsers keep it same-origin.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

ASGIApp = Any

# what a Segment or RudderStack browser SDK may send, and what a page may read back
_ALLOWED_HEADERS = b"authorization, content-type, content-encoding, traceparent, x-request-id"
_EXPOSED_HEADERS = b"retry-after, x-request-id"
PREFLIGHT_MAX_AGE_SECONDS = 86_400


def cors_for_ingestion(paths: Iterable[str]) -> Any:
    """An ASGI middleware factory answering preflights and labelling responses on `paths`."""
    ingestion = frozenset(paths)

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http" or scope["path"] not in ingestion:
                await app(scope, receive, send)
                return
            headers = dict(scope.get("headers", []))
            if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
                await _preflight(send)
                return

            async def send_with_cors(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    message = {
                        **message,
                        "headers": [
                            *message.get("headers", []),
                            (b"access-control-allow-origin", b"*"),
                            (b"access-control-expose-headers", _EXPOSED_HEADERS),
                        ],
                    }
                await send(message)

            await app(scope, receive, send_with_cors)

        return middleware

    return wrap


async def _preflight(send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 204,
            "headers": [
                (b"access-control-allow-origin", b"*"),
                (b"access-control-allow-methods", b"POST"),
                (b"access-control-allow-headers", _ALLOWED_HEADERS),
                (b"access-control-max-age", str(PREFLIGHT_MAX_AGE_SECONDS).encode()),
                (b"vary", b"origin, access-control-request-headers"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})
