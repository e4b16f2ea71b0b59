"""TimeoutSource (``sources/timeout.py``): a deadline at the top level and inside any-of,
observers of the timeout, firing by hand; on asyncio and trio."""

from __future__ import annotations

import math
from datetime import timedelta

import anyio
import pytest

from cancelable_rx import (
    AnyOfSource,
    Cancelable,
    CancelationReason,
    CancelEvent,
    ConditionSource,
    TimeoutCancelation,
    TimeoutSource,
)

pytestmark = pytest.mark.anyio


async def test_any_of_timeout_via_add_source_fires_on_time() -> None:
    start = anyio.current_time()
    op = Cancelable().add_source(AnyOfSource([TimeoutSource(5), TimeoutSource(0.05), ConditionSource(lambda: False, 0.01)]))
    with pytest.raises(TimeoutCancelation) as info:
        async with op:
            await anyio.sleep(5)
    assert anyio.current_time() - start < 2
    assert info.value.timeout_seconds == 0.05


async def test_timeout_source_observers_see_the_deadline() -> None:
    src = TimeoutSource(0.02)
    seen: list[CancelEvent] = []
    src.subscribe(seen.append)
    with pytest.raises(TimeoutCancelation):
        async with Cancelable().add_source(src):
            await anyio.sleep(5)
    assert len(seen) == 1 and seen[0].reason is CancelationReason.TIMEOUT


async def test_firing_a_top_level_timeout_by_hand_cancels_at_once() -> None:
    src = TimeoutSource(timedelta(minutes=1))
    assert src.timeout_seconds == 60
    with anyio.fail_after(5), pytest.raises(TimeoutCancelation, match=r"Operation timed out after 60.0s") as info:
        async with Cancelable().add_source(src) as op:
            src.fire()
            await anyio.sleep(5)
    assert info.value.timeout_seconds == 60 and op.cancel_reason is CancelationReason.TIMEOUT


async def test_an_infinite_timeout_never_fires() -> None:
    src = TimeoutSource(math.inf)
    async with Cancelable().add_source(src) as op:
        assert op.deadline == math.inf
        await anyio.lowlevel.checkpoint()
    assert op.is_completed and not src.triggered


async def test_a_plain_timeout_reports_a_fired_timeout_source() -> None:
    """The event of a plain ``with_timeout`` names a `TimeoutSource` that says it fired,
    with the operation's timeout, whether it is read during the block or after it."""
    op = Cancelable.with_timeout(0.01)
    with pytest.raises(TimeoutCancelation, match=r"timed out after 0.01s"):
        async with op:
            await anyio.sleep(5)
    seen: list[CancelEvent] = []
    op.cancellation.subscribe(seen.append)
    [event] = seen
    src = event.source
    assert isinstance(src, TimeoutSource)
    assert src.triggered and src.timeout_seconds == 0.01
    assert event.reason is CancelationReason.TIMEOUT and event.message == "Operation timed out after 0.01s"
    replay: list[CancelEvent] = []
    src.subscribe(replay.append)  # a fired source replays its event to a late subscriber
    assert replay == [event]
