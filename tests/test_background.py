"""The background loops end at shutdown, even a loop whose cancellation a driver turned into
an ordinary error (it would log it and go round again, holding the shutdown forever)."""

from __future__ import annotations

import asyncio

from gateway.background import _stop


def test_a_loop_that_loses_its_cancellation_is_cancelled_again_until_it_ends() -> None:
    rounds: list[int] = []

    async def loop_losing_one_cancellation() -> None:
        lost = False
        while True:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                if lost:
                    raise
                lost = True  # as a driver does when the cancellation lands inside its call
            rounds.append(1)

    async def scenario() -> float:
        task = asyncio.create_task(loop_losing_one_cancellation())
        await asyncio.sleep(0.12)
        started = asyncio.get_running_loop().time()
        await _stop([task])
        assert task.done()
        return asyncio.get_running_loop().time() - started

    took = asyncio.run(asyncio.wait_for(scenario(), 15))
    assert took < 2
    assert rounds  # the loop did go round after the lost cancellation
