"""The public face (``_cancelable.py``): the constructor, the factories, ``combine``,
``add_source``, ``wrap``/``wrapping``, ``shield``, ``run_in_thread`` and binding a stream to
its operation; on asyncio and trio."""

from __future__ import annotations

import contextvars
import math
import signal
import threading
from collections.abc import AsyncIterator
from datetime import timedelta

import anyio
import pytest
import reactivex

from cancelable_rx import (
    Cancelable,
    CancelationReason,
    CancelationToken,
    ManualCancelation,
    OperationStatus,
    TimeoutCancelation,
    TimeoutSource,
    current_operation,
)

pytestmark = pytest.mark.anyio


async def _count(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


# -- constructor and factories ------------------------------------------------------------


async def test_operation_id_given_or_generated() -> None:
    assert Cancelable(operation_id="abc").id == "abc"
    op = Cancelable()
    assert len(op.id) == 36 and op.id == op.context.id == op.operation_id


async def test_factories_name_their_operations_and_pass_options_on() -> None:
    token = CancelationToken()
    made = {
        "timeout": Cancelable.with_timeout(5),
        "token_based": Cancelable.with_token(token),
        "signal_based": Cancelable.with_signal(signal.SIGINT),
        "condition_based": Cancelable.with_condition(bool),
        "observable_based": Cancelable.with_observable(reactivex.never()),
    }
    for default_name, op in made.items():
        assert op.name == default_name and op.status is OperationStatus.PENDING
    assert made["token_based"].token is token
    named = Cancelable.with_timeout(5, operation_id="t-1", name="fetch", metadata={"k": 1})
    assert (named.id, named.name, named.context.metadata) == ("t-1", "fetch", {"k": 1})
    with anyio.fail_after(5):
        async with Cancelable.with_condition(lambda: True, 0.01, suppress_cancelation=True) as quiet:
            await anyio.sleep(5)
    assert quiet.cancel_reason is CancelationReason.CONDITION


async def test_timedelta_zero_and_infinite_timeouts() -> None:
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(timedelta(milliseconds=20)):
            await anyio.sleep(5)
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0):
            await anyio.lowlevel.checkpoint()
    async with Cancelable.with_timeout(math.inf) as op:
        await anyio.sleep(0.01)
    assert op.is_completed and op.deadline == math.inf


# -- combine and add_source -----------------------------------------------------------------


async def test_combine_builds_a_new_operation_and_leaves_the_parts_alone() -> None:
    a = Cancelable.with_timeout(5, name="a")
    b = Cancelable.with_token(CancelationToken())
    combined = a.combine(b)
    assert combined is not a and combined.name == "combined_a"
    assert combined.context.metadata == {"combined": True, "preserve_reason": True}
    async with combined:
        assert a.status is OperationStatus.PENDING and b.status is OperationStatus.PENDING


async def test_combine_listens_to_each_token_object_even_when_two_share_an_id() -> None:
    first, twin = CancelationToken(id="job-1"), CancelationToken(id="job-1")  # equal by id
    combined = Cancelable.with_token(first).combine(Cancelable.with_token(twin))
    twin.cancel_sync(CancelationReason.MANUAL, "the twin")
    with pytest.raises(ManualCancelation, match="the twin"):
        async with combined:
            await anyio.sleep(5)
    assert not first.is_cancelled


async def test_combining_timeouts_takes_the_earliest() -> None:
    start = anyio.current_time()
    with pytest.raises(TimeoutCancelation) as info:
        async with Cancelable.with_timeout(5).combine(Cancelable.with_timeout(0.05)):
            await anyio.sleep(5)
    elapsed = anyio.current_time() - start
    assert 0.04 <= elapsed < 2
    assert info.value.timeout_seconds == 0.05


async def test_timeout_in_combine_with_condition_fires_on_time() -> None:
    start = anyio.current_time()
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.05).combine(Cancelable.with_condition(lambda: False, 0.01)):
            await anyio.sleep(5)
    assert anyio.current_time() - start < 2


async def test_add_source_after_enter_is_an_error() -> None:
    async with Cancelable() as op:
        with pytest.raises(RuntimeError, match="before the operation is entered"):
            op.add_source(TimeoutSource(1))


# -- wrap, wrapping, shield, threads ----------------------------------------------------------


async def test_check_cancelation_and_wrap() -> None:
    calls: list[int] = []

    async def work(x: int) -> int:
        calls.append(x)
        return x * 2

    with pytest.raises(ManualCancelation):
        async with Cancelable() as op:
            wrapped = op.wrap(work)
            assert wrapped.__name__ == "work"
            assert await wrapped(1) == 2
            await op.check_cancelation()
            async with op.wrapping() as wrap:
                assert await wrap(work, 2) == 4
                await op.cancel()
                await wrap(work, 3)
    assert calls == [1, 2]


async def test_shield_protects_and_appears_in_hierarchy() -> None:
    finished_shielded = False
    with pytest.raises(ManualCancelation):
        async with Cancelable(name="outer") as op:
            async with op.shield() as shielded:
                assert shielded.status is OperationStatus.SHIELDED
                assert current_operation() is shielded
                await op.cancel()
                await anyio.sleep(0.02)  # would be cancelled without the shield
                finished_shielded = True
            pytest.fail("cancellation must take effect right after the shield")  # pragma: no cover
    assert finished_shielded
    assert shielded.context.parent_id == op.id
    assert shielded.id in op.context.child_ids
    assert shielded.is_completed and shielded.context.metadata == {"shielded": True}


var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


async def test_run_in_thread_propagates_context() -> None:
    var.set("set-in-task")

    def in_thread(x: int) -> tuple[object, str, int, bool]:
        return current_operation(), var.get(), x, threading.current_thread() is threading.main_thread()

    async with Cancelable() as op:
        got_op, got_var, got_x, on_main = await op.run_in_thread(in_thread, 7)
    assert got_op is op and got_var == "set-in-task" and got_x == 7 and not on_main


# -- binding a stream to its operation ------------------------------------------------------


async def test_stream_outside_block_is_a_clear_error() -> None:
    op = Cancelable()
    with pytest.raises(RuntimeError, match="inside `async with op:`"):
        async for _ in op.stream(_count(2)):
            pass  # pragma: no cover
    await op.stream(_count(1)).aclose()


async def test_run_in_thread_can_abandon_a_thread_that_ignores_cancellation() -> None:
    import threading

    from cancelable_rx import TimeoutCancelation

    release, finished = threading.Event(), threading.Event()

    def stubborn() -> str:
        release.wait(5)  # ignores the operation entirely
        finished.set()
        return "late"

    start = anyio.current_time()
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.05) as op:
            await op.run_in_thread(stubborn, abandon_on_cancel=True)
    assert anyio.current_time() - start < 2  # did not wait for the thread
    assert not finished.is_set()  # the thread still runs in the background
    release.set()
    await anyio.to_thread.run_sync(finished.wait, 5)
    assert finished.is_set()
