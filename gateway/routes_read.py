"""Server-key reads: `GET /v1/profiles/{userId}`."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Request, get
from litestar.params import FromPath, FromQuery, QueryParameter

from anonymization import decrypt_fields
from gateway.auth import authenticate_server_key
from gateway.errors import NotFound
from gateway.route_helpers import runtime_of
from profiles import Profile, read_profile


@get("/v1/profiles/{user_id:str}", operation_id="get_profile", tags=["profiles"])
async def get_profile(
    request: Request,  # type: ignore[type-arg]
    user_id: FromPath[str],
    decrypt: FromQuery[bool] = False,
) -> Profile:
    """The pseudonymous profile of `userId`, found by its pseudonym; no raw identifier.

    With `decrypt=true`, traits the source's policy encrypts are returned in clear (the
    source asked to keep them); a value whose subject key was shredded comes back as null.
    """
    return await _profile(request, user_id, decrypt)


@get("/v1/profiles", operation_id="get_profile_by_query", tags=["profiles"])
async def get_profile_by_query(
    request: Request,  # type: ignore[type-arg]
    user_id: Annotated[str, QueryParameter(name="userId", min_length=1, max_length=1024)],
    decrypt: FromQuery[bool] = False,
) -> Profile:
    """The same, for any userId (one holding "/" too): `?userId=`."""
    return await _profile(request, user_id, decrypt)


async def _profile(request: Request, user_id: str, decrypt: bool) -> Profile:  # type: ignore[type-arg]
    runtime = runtime_of(request)
    source = await authenticate_server_key(runtime.sources, request.headers.get("authorization"))
    # The newest epoch first: a profile built under an older pseudonym key is still found.
    for pseudonymize in source.pseudonymizers or (source.pseudonymize,):
        subject = pseudonymize("subject", user_id)
        profile = await read_profile(runtime.database, source.source_id, subject)
        if profile is not None:
            if decrypt:
                key = await runtime.keyring.existing_subject_key(source.source_id, subject)
                traits = decrypt_fields(profile.traits, key, source.source_id, subject, "traits")
                return msgspec.structs.replace(profile, traits=traits)
            return profile
    raise NotFound("no profile for this user", code="profile_not_found")
