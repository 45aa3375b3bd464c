"""An experiment's results: per variant, exposures, conversions (subjects that sent the flow's
goal event after their exposure), the rate, and a two-proportion z-test against the baseline."""

from __future__ import annotations

import math
from datetime import datetime

import msgspec

from bus import Database, as_utc
from personalization._flows import BASELINE, Flow, FlowStore
from profiles import last_event_times


class VariantResult(msgspec.Struct, frozen=True, kw_only=True):
    variant: str
    exposures: int
    conversions: int
    rate: float | None
    # two-sided, against the baseline (None for the baseline, or without data on a side)
    p_value: float | None = None


class FlowResults(msgspec.Struct, frozen=True, kw_only=True):
    flow: str
    version: int
    goal: str | None
    variants: list[VariantResult]


def two_proportion_p_value(
    conversions: int, exposures: int, base_conversions: int, base_exposures: int
) -> float | None:
    """The two-sided p-value of a pooled two-proportion z-test; None when it is undefined."""
    if not exposures or not base_exposures:
        return None
    pooled = (conversions + base_conversions) / (exposures + base_exposures)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / exposures + 1 / base_exposures))
    if spread == 0:
        return None
    z = (conversions / exposures - base_conversions / base_exposures) / spread
    return math.erfc(abs(z) / math.sqrt(2))


async def flow_results(store: FlowStore, database: Database, flow: Flow) -> FlowResults:
    exposures = await store.exposures(flow.key)
    goal = flow.definition.goal
    converted_at: dict[tuple[str, str], datetime] = {}
    if goal is not None and exposures:
        keys = [(row.source_id, row.subject) for row in exposures]
        converted_at = await last_event_times(database, keys, goal)
    names = [BASELINE, *(variant.name for variant in flow.definition.variants)]
    counts = {name: [0, 0] for name in names}
    for row in exposures:
        tally = counts.setdefault(row.variant, [0, 0])
        tally[0] += 1
        last_goal = converted_at.get((row.source_id, row.subject))
        if last_goal is not None and last_goal > as_utc(row.exposed_at):
            tally[1] += 1
    base_exposures, base_conversions = counts[BASELINE]
    return FlowResults(
        flow=flow.key,
        version=flow.version,
        goal=goal,
        variants=[
            VariantResult(
                variant=name,
                exposures=exposed,
                conversions=converted,
                rate=converted / exposed if exposed else None,
                p_value=None
                if name == BASELINE
                else two_proportion_p_value(converted, exposed, base_conversions, base_exposures),
            )
            for name, (exposed, converted) in counts.items()
        ],
    )
