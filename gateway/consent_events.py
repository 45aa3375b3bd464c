"""Consent changes onto the bus: the core (and, scaled out, every replica) hears of each one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import structlog

from bus import Bus, BusError, ConsentChanged, encode_control
from consent import ConsentRecord

log = structlog.get_logger("consentgate.consent")


def consent_change_publisher(bus: Bus) -> Callable[[Sequence[ConsentRecord]], Awaitable[None]]:
    """A ConsentStore listener publishing `consent_changed` for each recorded change.

    Privacy requests publish their own messages (`opt_out`, `erase`), so their withdrawals are
    left to them. The change is already committed when this runs: if the bus refuses it, the
    subject's next event carries the new consent to the core anyway, so it is logged, not raised.
    """

    async def publish(records: Sequence[ConsentRecord]) -> None:
        first = records[0]
        if first.source == "privacy_request":
            return
        change = ConsentChanged(
            source_id=first.source_id,
            subjects=(first.subject,),
            granted=tuple(r.purpose for r in records if r.granted),
            refused=tuple(r.purpose for r in records if not r.granted),
            at=first.recorded_at,
            change_id=first.record_id,
        )
        try:
            await bus.publish([encode_control(change, f"consent:{first.record_id}")])
        except BusError as error:
            log.warning("consent_change_not_published", error=type(error).__name__)

    return publish
