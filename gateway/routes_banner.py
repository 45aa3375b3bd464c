"""The consent banner: the script apps embed (`/consent.js`), what it asks (`GET
/v1/banner`), and where it records the visitor's choice (`POST /v1/consent/banner`).

The banner holds only the page's write key, which is public. So it reads the source's
purposes and records choices for an `anonymousId` only, never for a userId: anyone can read a
write key off a page, and a write key must not be able to speak for a known user. The choice
then travels on every event as Segment's `categoryPreferences` (identified events included),
and the anonymous record applies to the visitor's events until it has choices of its own.
Both routes take the source's allowed origins and its rate limit, as ingestion does.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import JSONBody

from gateway.callers import ERROR_RESPONSES
from gateway.errors import BadRequest
from gateway.route_helpers import runtime_of
from gateway.routes_consent import ConsentChange, PolicyVersion, SignedReceipt, record_consent
from gateway.sources import Source
from observability import remember_raw_identifiers
from web import static_file

BANNER_PATHS = ("/v1/banner", "/v1/consent/banner")  # called cross-origin, as ingestion is
DEFAULT_POLICY_VERSION = "consent-banner"
_STATIC_HEADERS = {
    "cache-control": "public, max-age=300",
    "x-content-type-options": "nosniff",
    # embedded by the app's pages, which are of another origin
    "cross-origin-resource-policy": "cross-origin",
    "access-control-allow-origin": "*",
}


class BannerPurpose(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    name: str
    description: str
    legal_basis: str
    asks_consent: bool  # False: the service needs it (contract); shown, not offered


class BannerConfig(msgspec.Struct, frozen=True, kw_only=True):
    source: str
    jurisdiction: str
    policy_version: str
    purposes: list[BannerPurpose]
    # refused by a Global Privacy Control signal, and by CCPA's "Do not sell or share" link
    do_not_sell: list[str]


class BannerChoice(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    anonymousId: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    purposes: dict[str, bool]
    policy_version: PolicyVersion = DEFAULT_POLICY_VERSION
    writeKey: str | None = None  # the write key may come in the body, as with events


DO_NOT_SELL = ("sale_sharing", "marketing")


async def _source(request: Request[Any, Any, Any], body: bytes = b"") -> Source:
    """The write key's source, once its origin and rate allow the request."""
    runtime = runtime_of(request)
    source = await runtime.write_keys(request.headers.get("authorization"), body)
    source.edge.check_origin(request.headers.get("origin"))
    runtime.banner_limiter.admit(source.source_id, source.edge)
    return source


@get("/consent.js", include_in_schema=False)
async def consent_script() -> Response[bytes]:
    return Response(
        static_file("consent.js"),
        media_type="text/javascript",
        headers=_STATIC_HEADERS,
    )


@get("/pages/banner.css", include_in_schema=False)
async def consent_stylesheet() -> Response[bytes]:
    return Response(static_file("banner.css"), media_type="text/css", headers=_STATIC_HEADERS)


_WRITE_KEY: dict[str, Any] = {"security": [{"writeKey": []}], "responses": ERROR_RESPONSES}


@get("/v1/banner", operation_id="get_banner", tags=["consent"], **_WRITE_KEY)
async def get_banner(request: Request[Any, Any, Any]) -> BannerConfig:
    """What the consent banner asks: the source's purposes (write key, as HTTP Basic)."""
    source = await _source(request)
    known = source.consent.known_purposes()
    return BannerConfig(
        source=source.name,
        jurisdiction=source.jurisdiction,
        policy_version=DEFAULT_POLICY_VERSION,
        purposes=[
            BannerPurpose(
                key=key,
                name=key.replace("_", " ").capitalize(),
                description=definition.description,
                legal_basis=definition.legal_basis,
                asks_consent=definition.legal_basis == "consent",
            )
            for key, definition in known.items()
        ],
        do_not_sell=[p for p in DO_NOT_SELL if p in known],
    )


@post(
    "/v1/consent/banner",
    operation_id="record_banner_choice",
    tags=["consent"],
    status_code=200,
    **_WRITE_KEY,
)
async def record_banner_choice(
    request: Request[Any, Any, Any], data: JSONBody[BannerChoice]
) -> SignedReceipt:
    """Record a visitor's choice from the banner for its anonymousId (write key; method
    `banner`), and return the signed receipt."""
    source = await _source(request, await request.body())
    remember_raw_identifiers((data.anonymousId,))
    asked = {k for k, d in source.consent.known_purposes().items() if d.legal_basis == "consent"}
    offered = sorted(set(data.purposes) - asked)
    if offered and set(offered) <= set(source.consent.known_purposes()):
        raise BadRequest(
            f"purposes: {offered[0]!r} is not the visitor's to choose (legal basis is not consent)",
            code="invalid_body",
        )
    change = ConsentChange(purposes=data.purposes, policy_version=data.policy_version)
    subject = source.pseudonymize("subject", data.anonymousId)
    runtime = runtime_of(request)
    services = (runtime.consent, runtime.trail, runtime.receipts)
    return await record_consent(request, change, source, subject, "write_key", services, "banner")


BANNER_HANDLERS = [consent_script, consent_stylesheet, get_banner, record_banner_choice]
