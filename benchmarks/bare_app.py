"""The bare framework baseline: litestar under the same server, decoding the body, nothing else."""

from __future__ import annotations

import argparse

import msgspec
import uvicorn
from litestar import Litestar, Request, Response, get, post, put

SUCCESS = b'{"success":true}'
_decoder = msgspec.json.Decoder()


@post(["/v1/track", "/v1/batch"], status_code=200)
async def decode_only(request: Request) -> Response[bytes]:  # type: ignore[type-arg]
    _decoder.decode(await request.body())
    return Response(SUCCESS, media_type="application/json")


EVALUATION = b'{"key":"flag-0","value":true,"variant":"on","reason":"TARGETING_MATCH"}'


@post("/ofrep/v1/evaluate/flags/{key:str}", status_code=200)
async def evaluate_constant(key: str, request: Request) -> Response[bytes]:  # type: ignore[type-arg]
    """The bare baseline of an OFREP evaluation: decode the body, answer a fixed success."""
    _decoder.decode(await request.body())
    return Response(EVALUATION, media_type="application/json")


RECEIPT = b'{"receipt":{"schema":"consentgate.receipt/1"},"signature":"x","key_id":"k"}'
CONSENT = b'{"subject":"p1_x","purposes":{"analytics":{"granted":true}},"suppressed":false}'


@put("/v1/consent/{user_id:str}", status_code=200)
async def put_consent_constant(user_id: str, request: Request) -> Response[bytes]:  # type: ignore[type-arg]
    """The bare baseline of a consent write: decode the body, answer a fixed receipt."""
    _decoder.decode(await request.body())
    return Response(RECEIPT, media_type="application/json")


@get("/v1/consent/{user_id:str}")
async def get_consent_constant(user_id: str) -> Response[bytes]:
    """The bare baseline of a consent read: a fixed answer."""
    return Response(CONSENT, media_type="application/json")


app = Litestar(
    route_handlers=[decode_only, evaluate_constant, put_consent_constant, get_consent_constant],
    openapi_config=None,
    logging_config=None,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
