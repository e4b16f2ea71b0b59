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
    OperationRegistry,
    OperationStatus,
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


async def test_a_timeout_reaches_every_record_of_the_operation() -> None:
    # A plain timeout that passes with nothing recorded takes a short path out of the block:
    # everything attached must still hear of it, as for any other cancellation.
    registry = OperationRegistry()
    seen: list[CancelEvent] = []
    with pytest.raises(TimeoutCancelation) as info:
        async with Cancelable(name="parent") as parent:
            child = Cancelable.with_timeout(0.01, name="child", parent=parent)
            await registry.register(child)
            child.cancellation.subscribe(seen.append)
            async with child:
                assert child.context.status is OperationStatus.RUNNING  # a record built while it runs
                await anyio.sleep(5)
    err = info.value
    assert isinstance(err, TimeoutError) and err.timeout_seconds == 0.01
    assert err.reason is CancelationReason.TIMEOUT and err.message == "Operation timed out after 0.01s"
    assert err.args == (err.message,) and str(err) == err.message
    assert isinstance(err.__cause__, anyio.get_cancelled_exc_class())
    assert err.context is not None and err.context.id == child.id
    [event] = seen  # the cancellation observable, with the fired timeout as its source
    assert event.reason is CancelationReason.TIMEOUT and isinstance(event.source, TimeoutSource)
    assert event.source.triggered and event.source.timeout_seconds == 0.01
    assert child.token.is_cancelled and child.token.reason is CancelationReason.TIMEOUT  # its own token
    record = child.context
    assert record.status is OperationStatus.CANCELLED and record.end_time is not None
    assert record.cancel_reason is CancelationReason.TIMEOUT and record.cancel_message == err.message
    assert child.id in parent.context.child_ids
    stats = await registry.get_statistics()
    assert stats["total_cancelled"] == 1 and stats["cancelled_by_reason"] == {"timeout": 1}
