"""ParentSource (``sources/parent.py``): link an operation to another one without making
it a child; on asyncio and trio."""

from __future__ import annotations

import anyio
import pytest

from cancelable_rx import (
    Cancelable,
    CancelationError,
    CancelationReason,
    ParentCancelation,
    ParentSource,
    TimeoutSource,
)

pytestmark = pytest.mark.anyio


async def test_parent_source_links_operations_in_other_tasks() -> None:
    leader = Cancelable.with_timeout(0.05, name="leader", suppress_cancelation=True)
    follower_error: list[BaseException] = []
    ready = anyio.Event()

    async def follower() -> None:
        try:
            async with Cancelable(name="follower").add_source(ParentSource(leader) | TimeoutSource(5)):
                ready.set()
                await anyio.sleep_forever()
        except CancelationError as err:
            follower_error.append(err)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(follower)
            await ready.wait()
            async with leader:
                await anyio.sleep(1)
    [err] = follower_error
    assert isinstance(err, ParentCancelation)
    assert err.parent_id == leader.id and err.parent_reason is CancelationReason.TIMEOUT
    assert "leader" in err.message


async def test_a_leader_that_was_cancelled_already_cancels_the_follower_at_once() -> None:
    leader = Cancelable(name="leader")
    await leader.cancel(message="gone")
    with anyio.fail_after(5), pytest.raises(ParentCancelation) as info:
        async with Cancelable(name="follower").add_source(ParentSource(leader)):
            await anyio.sleep_forever()
    assert info.value.parent_id == leader.id and info.value.parent_reason is CancelationReason.MANUAL


async def test_a_leader_that_completes_leaves_the_follower_alone() -> None:
    leader = Cancelable(name="leader")
    source = ParentSource(leader)
    async with Cancelable(name="follower").add_source(source) as follower:
        async with leader:
            pass
        await anyio.lowlevel.checkpoint()
    assert leader.is_completed and follower.is_completed and not source.triggered
