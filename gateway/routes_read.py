"""Server-key reads: the pseudonymous profile, `GET /v1/profiles/{userId}` (or `?userId=`)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import get
from litestar.params import FromPath, FromQuery, QueryParameter

from anonymization import decrypt_fields
from gateway.callers import SERVER_KEY, ServerKey, access
from gateway.dependencies import DatabaseDep, KeyringDep
from gateway.errors import BadRequest, NotFound
from profiles import Profile, read_profile

_SERVER_KEY = access(SERVER_KEY)


@get("/v1/profiles/{user_id:str}", operation_id="get_profile", tags=["profiles"], **_SERVER_KEY)
async def get_profile(
    user_id: FromPath[str],
    caller: ServerKey,
    database: DatabaseDep,
    keyring: KeyringDep,
    decrypt: FromQuery[bool] = False,
) -> Profile:
    """The pseudonymous profile of `userId`, found by its pseudonym; no raw identifier.

    With `decrypt=true`, traits the source's policy encrypts are returned in clear (the
    source asked to keep them); a value whose subject key was shredded comes back as null.
    """
    return await _profile(user_id, caller, database, keyring, decrypt)


@get("/v1/profiles", operation_id="get_profile_by_query", tags=["profiles"], **_SERVER_KEY)
async def get_profile_by_query(
    caller: ServerKey,
    database: DatabaseDep,
    keyring: KeyringDep,
    user_id: Annotated[
        str | None, QueryParameter(name="userId", min_length=1, max_length=1024)
    ] = None,
    anonymous_id: Annotated[
        str | None, QueryParameter(name="anonymousId", min_length=1, max_length=1024)
    ] = None,
    decrypt: FromQuery[bool] = False,
) -> Profile:
    """The same, for any userId (one holding "/" too): `?userId=`; or the profile an
    anonymousId's events built: `?anonymousId=` (once identified, the user's merged profile)."""
    if (user_id is None) == (anonymous_id is None):
        raise BadRequest("give exactly one of userId and anonymousId", code="invalid_query")
    return await _profile(user_id or anonymous_id or "", caller, database, keyring, decrypt)


async def _profile(
    user_id: str, caller: ServerKey, database: DatabaseDep, keyring: KeyringDep, decrypt: bool
) -> Profile:
    source = caller.source
    # The newest epoch first: a profile built under an older pseudonym key is still found.
    for subject in source.pseudonyms(user_id):
        profile = await read_profile(database, source.source_id, subject)
        if profile is not None:
            if decrypt:
                key = await keyring.existing_subject_key(source.source_id, subject)
                traits = decrypt_fields(profile.traits, key, source.source_id, subject, "traits")
                return msgspec.structs.replace(profile, traits=traits)
            return profile
    raise NotFound("no profile for this identifier", code="profile_not_found")


READ_HANDLERS = [get_profile, get_profile_by_query]
