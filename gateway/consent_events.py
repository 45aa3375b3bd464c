"""Consent changes onto the bus: the core (and, scaled out, every replica) hears of each one."""

from __future__ import annotations

from collections.abc import Sequence

from bus import BusMessage, ConsentChanged, encode_control
from consent import ConsentRecord


def consent_change_messages(records: Sequence[ConsentRecord]) -> Sequence[BusMessage]:
    """The `consent_changed` message of a recorded change, committed with its records (the
    store's announcer): the change and its announcement are durable together or not at all.

    Privacy requests publish their own messages (`opt_out`, `erase`), so their withdrawals are
    left to them.
    """
    first = records[0]
    if first.source == "privacy_request":
        return ()
    change = ConsentChanged(
        source_id=first.source_id,
        subjects=(first.subject,),
        granted=tuple(r.purpose for r in records if r.granted),
        refused=tuple(r.purpose for r in records if not r.granted),
        at=first.recorded_at,
        change_id=first.record_id,
    )
    return (encode_control(change, f"consent:{first.record_id}"),)
