"""`GET /ofrep/v1/events?ticket=et_…`: the Server-Sent Events stream a bulk OFREP answer points
to (`eventStreams`). It sends `{"type": "refetchEvaluation"}` whenever the ticket's subject's
evaluation may have changed (a flag edit, a segment change, a consent change, an erasure), a
comment every 15 seconds to keep proxies from closing it, and ends when its ticket expires."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated

from litestar import get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from gateway.dependencies import EvaluationEventsDep, StreamTicketsDep
from gateway.errors import ErrorBody, Unauthorized, Unavailable
from gateway.evaluation_events import TICKET_SECONDS

KEEP_ALIVE_SECONDS = 15.0
REFETCH = '{"type":"refetchEvaluation"}'


@get(
    "/ofrep/v1/events",
    operation_id="ofrep_event_stream",
    summary="OFREP event stream (Server-Sent Events)",
    tags=["ofrep"],
    media_type="text/event-stream",
    responses={
        400: ResponseSpec(ErrorBody, description="no ticket"),
        401: ResponseSpec(ErrorBody, description="an invalid or expired ticket"),
        503: ResponseSpec(ErrorBody, description="too many open streams: retry later"),
    },
)
async def evaluation_stream(
    ticket: Annotated[
        str,
        QueryParameter(
            min_length=1,
            max_length=1024,
            description="the ticket from a bulk evaluation's eventStreams[].url",
        ),
    ],
    stream_tickets: StreamTicketsDep,
    evaluation_events: EvaluationEventsDep,
) -> ServerSentEvent:
    """Tells the subject's client when to refetch its evaluations."""
    claims = stream_tickets.verify(ticket)
    if claims is None:
        raise Unauthorized("the ticket is invalid or has expired", code="invalid_ticket")
    source_id, subject = claims
    event = evaluation_events.listen(source_id, subject)
    if event is None:
        raise Unavailable("too many open event streams; retry later", code="streams_full")

    async def messages() -> AsyncIterator[ServerSentEventMessage]:
        ends = time.monotonic() + TICKET_SECONDS
        try:
            yield ServerSentEventMessage(comment="connected", data=None)
            while time.monotonic() < ends:
                try:
                    await asyncio.wait_for(event.wait(), KEEP_ALIVE_SECONDS)
                except TimeoutError:
                    yield ServerSentEventMessage(comment="keep-alive", data=None)
                    continue
                if evaluation_events.closed:
                    return  # the server is stopping; EventSource reconnects elsewhere
                event.clear()
                yield ServerSentEventMessage(data=REFETCH)
        finally:
            evaluation_events.forget(source_id, subject, event)

    return ServerSentEvent(messages())


STREAM_HANDLERS = [evaluation_stream]
