"""Server-key reads: `GET /v1/profiles/{userId}`."""

from __future__ import annotations

from litestar import Request, get
from litestar.params import FromPath

from gateway.auth import authenticate_server_key
from gateway.errors import NotFound
from gateway.runtime import Runtime
from profiles import Profile, read_profile


@get("/v1/profiles/{user_id:str}", operation_id="get_profile", tags=["profiles"])
async def get_profile(request: Request, user_id: FromPath[str]) -> Profile:  # type: ignore[type-arg]
    """The pseudonymous profile of `userId`, found by its pseudonym; no raw identifier."""
    runtime: Runtime = request.app.state.runtime
    source = await authenticate_server_key(runtime.sources, request.headers.get("authorization"))
    # The newest epoch first: a profile built under an older pseudonym key is still found.
    for pseudonymize in source.pseudonymizers or (source.pseudonymize,):
        subject = pseudonymize("subject", user_id)
        profile = await read_profile(runtime.database, source.source_id, subject)
        if profile is not None:
            return profile
    raise NotFound("no profile for this user", code="profile_not_found")
