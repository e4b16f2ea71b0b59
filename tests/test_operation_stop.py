"""Two-phase cancellation (the engine's stop requests): ask to stop, give a grace period,
then cancel; on asyncio and trio."""

from __future__ import annotations

import math
import os
import signal
import threading
from collections.abc import AsyncIterator

import anyio
import pytest

from cancelable_rx import (
    Cancelable,
    CancelationReason,
    CancelationToken,
    LifecycleEvent,
    LifecycleKind,
    ManualCancelation,
    OperationRegistry,
    OperationStatus,
    ParentCancelation,
    SignalCancelation,
    StopRequest,
    TimeoutCancelation,
    TimeoutSource,
)

pytestmark = pytest.mark.anyio


async def test_a_body_that_stops_in_time_completes_with_the_stop_recorded() -> None:
    async with Cancelable(name="batch") as op:
        assert await op.request_stop(5, message="deploy") is True
        assert op.stop_requested and op.status is OperationStatus.STOPPING and op.is_running
        assert not op.is_cancelled  # phase one interrupts nothing
        await anyio.sleep(0.01)  # an await in phase one is not cancelled
        # ...the body flushes its batch and returns
    assert op.status is OperationStatus.COMPLETED and not op.is_cancelled
    ctx = op.context
    assert ctx.stop_requested_at is not None and ctx.stop_reason is CancelationReason.MANUAL
    assert ctx.stop_message == "deploy" and ctx.stopped_gracefully is True


async def test_a_body_that_ignores_the_request_is_cancelled_when_the_grace_ends() -> None:
    start = anyio.current_time()
    with pytest.raises(ManualCancelation, match=r"deploy \(grace period of 0.05s ended\)"):
        async with Cancelable() as op:
            await op.request_stop(0.05, message="deploy")
            await anyio.sleep(5)  # ignores it
    assert 0.04 <= anyio.current_time() - start < 2
    assert op.status is OperationStatus.CANCELLED and op.cancel_reason is CancelationReason.MANUAL
    assert op.context.stopped_gracefully is False


async def test_a_second_request_shortens_but_never_extends_the_grace() -> None:
    async with Cancelable(suppress_cancelation=True) as op:
        assert await op.request_stop(10) is True
        assert await op.request_stop(60) is False  # would extend: ignored
        assert 9 < op.remaining() <= 10
        assert await op.request_stop(0.05) is True  # shortens
        start = anyio.current_time()
        await anyio.sleep(5)
    assert anyio.current_time() - start < 2 and op.status is OperationStatus.CANCELLED
    assert op.stop_request is not None and op.stop_request.grace == 10  # the first request is the record


async def test_a_stop_after_the_end_is_a_no_op_returning_false() -> None:
    async with Cancelable() as op:
        pass
    assert await op.request_stop(1) is False and op.request_stop_sync(1) is False
    assert op.status is OperationStatus.COMPLETED and not op.stop_requested


async def test_a_stop_from_another_thread_hops_to_the_loop() -> None:
    entered = threading.Event()
    accepted: list[bool] = []

    def stopper(op: Cancelable) -> None:
        entered.wait(5)
        accepted.append(op.request_stop_sync(5, message="from a thread"))

    op = Cancelable()
    thread = threading.Thread(target=stopper, args=(op,))
    thread.start()
    with anyio.fail_after(5):
        async with op:
            entered.set()
            request = await op.wait_for_stop()
    thread.join(5)
    assert accepted == [True] and request.message == "from a thread" and op.status is OperationStatus.COMPLETED


async def test_shielded_sections_are_not_interrupted_in_either_phase() -> None:
    done: list[str] = []
    with pytest.raises(ManualCancelation):
        async with Cancelable() as op:
            await op.request_stop(0.02)
            async with op.shield():
                await anyio.sleep(0.1)  # runs past the grace period: the hard cancel waits for it
                done.append("shielded section finished")
            await anyio.sleep(5)  # pragma: no cover - cancelled right after the shield
    assert done == ["shielded section finished"]


async def test_the_stop_is_observable_and_awaitable() -> None:
    seen: list[StopRequest] = []
    async with Cancelable() as op:
        op.stop_requests.subscribe(seen.append)
        async with anyio.create_task_group() as tg:

            async def stop_later() -> None:
                await anyio.lowlevel.checkpoint()
                await op.request_stop(5, CancelationReason.SIGNAL, "shutting down")

            tg.start_soon(stop_later)
            with anyio.fail_after(5):
                request = await op.wait_for_stop()
    assert seen == [request] and request.reason is CancelationReason.SIGNAL and request.grace == 5
    late: list[StopRequest] = []
    op.stop_requests.subscribe(late.append)
    assert late == [request]  # replayed


# -- streams ----------------------------------------------------------------------------


async def test_a_stream_ends_cleanly_at_the_next_item_after_a_stop() -> None:
    closed: list[bool] = []
    producer_saw: list[bool] = []

    async def rows() -> AsyncIterator[int]:
        try:
            for i in range(1000):
                op = current()
                producer_saw.append(op.stop_requested)  # the producer can see it too
                await anyio.sleep(0)
                yield i
        finally:
            closed.append(True)

    from cancelable_rx import current_operation as current

    got = []
    async with Cancelable() as op:
        async for item in op.stream(rows()):
            got.append(item)
            if item == 5:
                await op.request_stop(5)
        # the consumer sees the stream end, not an exception; the block goes on
        after = "the block goes on"
    assert after and got == list(range(7))  # the item fetched when the stop was seen is the last
    assert op.partial_result == op.partial_result.__class__(7, False, list(range(7)))
    assert closed == [True] and producer_saw[-1] is True
    assert op.status is OperationStatus.COMPLETED and op.context.stopped_gracefully


async def test_a_detached_stream_ends_cleanly_too() -> None:
    from cancelable_rx import cancelable_stream

    token = CancelationToken()

    async def rows() -> AsyncIterator[int]:
        for i in range(1000):
            await anyio.sleep(0)
            yield i

    s = cancelable_stream(rows(), token=token)
    got = []
    async for item in s:
        got.append(item)
        if item == 3:
            token.request_stop_sync(5, message="stop the import")
    assert got[-1] >= 3 and len(got) <= 6
    assert s.operation.status is OperationStatus.COMPLETED and s.operation.context.stop_message == "stop the import"


# -- parents and children, tokens --------------------------------------------------------


async def test_a_stop_reaches_children_and_they_never_extend_the_parent() -> None:
    child_saw: list[StopRequest] = []
    child_ready = anyio.Event()

    async def child_task(parent: Cancelable) -> None:
        async with Cancelable(name="child", parent=parent) as child:
            child_ready.set()
            child_saw.append(await child.wait_for_stop())
        # the child finishes early: it changes nothing for the parent

    start = anyio.current_time()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            with pytest.raises(ManualCancelation):
                async with Cancelable(name="parent") as parent:
                    tg.start_soon(child_task, parent)
                    await child_ready.wait()
                    await parent.request_stop(0.1, message="drain")
                    await anyio.sleep(5)  # the parent ignores it: cancelled at its own deadline
            elapsed = anyio.current_time() - start
    assert 0.09 <= elapsed < 2
    assert len(child_saw) == 1 and child_saw[0].reason is CancelationReason.PARENT and child_saw[0].grace == 0.1


async def test_a_token_stop_reaches_every_operation_using_it_even_later_ones() -> None:
    token = CancelationToken()
    async with Cancelable.with_token(token) as first:
        assert await token.request_stop(5, message="rolling restart") is True
        await anyio.lowlevel.checkpoint()
        assert first.stop_requested and first.stop_request.message == "rolling restart"  # type: ignore[union-attr]
    async with Cancelable.with_token(token) as later:  # entered after the request
        assert later.stop_requested and 0 < later.remaining() <= 5
    assert not token.is_cancelled and token.stop_requested
    await token.cancel()
    assert await token.request_stop(1) is False


# -- soft sources --------------------------------------------------------------------------


async def test_a_soft_timeout_asks_then_cancels() -> None:
    start = anyio.current_time()
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.05, grace=0.1) as op:
            with anyio.fail_after(5):
                request = await op.wait_for_stop()
            asked = anyio.current_time() - start
            await anyio.sleep(5)  # ignores it
    total = anyio.current_time() - start
    assert request.reason is CancelationReason.TIMEOUT and 0.04 <= asked < 1
    assert 0.14 <= total < 2


async def test_a_soft_timeout_lets_the_work_finish_in_its_grace() -> None:
    async with Cancelable.with_timeout(0.02, grace=5) as op:
        await op.wait_for_stop()
    assert op.status is OperationStatus.COMPLETED and op.context.stop_reason is CancelationReason.TIMEOUT


async def test_any_of_over_soft_sources_is_soft_and_a_hard_one_still_cancels_at_once() -> None:
    token = CancelationToken()
    with pytest.raises(ManualCancelation, match="hard"):
        async with Cancelable().add_source(TimeoutSource(0.01, grace=60) | token) as op:
            await op.wait_for_stop()
            assert op.status is OperationStatus.STOPPING
            token.cancel_sync(message="hard")
            await anyio.sleep(5)
    assert op.cancel_reason is CancelationReason.MANUAL and op.context.stop_reason is CancelationReason.TIMEOUT


async def test_a_graceful_signal_asks_first_and_cancels_on_the_second() -> None:
    with pytest.raises(SignalCancelation):
        async with Cancelable.with_signal(signal.SIGUSR1, graceful=60) as op:
            os.kill(os.getpid(), signal.SIGUSR1)
            with anyio.fail_after(5):
                request = await op.wait_for_stop()
            assert request.reason is CancelationReason.SIGNAL and "SIGUSR1" in (request.message or "")
            assert op.status is OperationStatus.STOPPING and not op.is_cancelled
            os.kill(os.getpid(), signal.SIGUSR1)  # the second one: at once
            await anyio.sleep(5)
    assert op.context.stopped_gracefully is False


# -- the registry sees the stopping state ------------------------------------------------


async def test_the_registry_shows_stopping() -> None:
    registry = OperationRegistry.get_instance()
    events: list[LifecycleEvent] = []
    sub = registry.events.subscribe(events.append)
    try:
        async with Cancelable(name="svc", register_globally=True) as op:
            await op.request_stop(5, message="bye")
            (ctx,) = [c for c in await registry.list_operations(status=OperationStatus.STOPPING) if c.id == op.id]
            assert ctx.stop_message == "bye"
    finally:
        sub.dispose()
    kinds = [e.kind for e in events if e.operation_id == op.id]
    assert kinds == [LifecycleKind.REGISTERED, LifecycleKind.STARTED, LifecycleKind.STOPPING,
                     LifecycleKind.COMPLETED, LifecycleKind.UNREGISTERED]
    stopping = next(e for e in events if e.kind is LifecycleKind.STOPPING)
    assert stopping.reason is CancelationReason.MANUAL and stopping.message == "bye"


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grace", "exc", "pattern"),
    [(-1, ValueError, r"`grace` must be a number of seconds >= 0"), (math.nan, ValueError, r"`grace` must be"),
     ("5", TypeError, r"`grace` must be .* got '5'")],
)
async def test_bad_grace_is_a_clear_error(grace: object, exc: type[Exception], pattern: str) -> None:
    async with Cancelable() as op:
        with pytest.raises(exc, match=pattern):
            await op.request_stop(grace)  # type: ignore[arg-type]
        with pytest.raises(exc, match=pattern):
            op.request_stop_sync(grace)  # type: ignore[arg-type]
    with pytest.raises(exc, match=pattern):
        CancelationToken().request_stop_sync(grace)  # type: ignore[arg-type]


async def test_a_stop_before_entering_and_soft_options_elsewhere_are_clear_errors() -> None:
    with pytest.raises(RuntimeError, match=r"a stop needs a running operation"):
        await Cancelable().request_stop(5)
    with pytest.raises(TypeError, match=r"`graceful` must be an option of a source that can be soft"):
        Cancelable.with_token(CancelationToken(), graceful=5)
    with pytest.raises(TypeError, match=r"`grace` must be an option of a source that can be soft"):
        Cancelable.with_condition(bool, grace=5)
    with pytest.raises(ValueError, match=r"`graceful` must be"):
        Cancelable.with_signal(signal.SIGUSR1, graceful=-1)


async def test_parent_cancelation_of_a_child_after_the_parents_grace() -> None:
    ready = anyio.Event()
    errors: list[BaseException] = []

    async def child_task(parent: Cancelable) -> None:
        try:
            async with Cancelable(parent=parent):
                ready.set()
                await anyio.sleep(5)  # ignores the stop
        except ParentCancelation as err:
            errors.append(err)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            async with Cancelable(suppress_cancelation=True) as parent:
                tg.start_soon(child_task, parent)
                await ready.wait()
                await parent.request_stop(0.05)
                await anyio.sleep(5)
    assert len(errors) == 1


@pytest.mark.parametrize("factory", ["with_token", "with_token_and_timeout"])
async def test_a_stop_requested_by_a_thread_while_the_operation_starts_listening_is_seen(factory: str) -> None:
    """Forced interleaving: entering reads the token (no stop yet), then another thread
    requests a stop before the operation's listener is added (the request notifies the
    listeners it finds).  The operation must still see the stop."""
    import inspect
    import sys
    from types import FrameType
    from typing import Any

    from cancelable_rx import _operation as engine

    token = CancelationToken()
    op = Cancelable.with_token(token)
    if factory == "with_token_and_timeout":
        op = op.combine(Cancelable.with_timeout(30))  # a token merged by combine, armed with a deadline
    lines, first = inspect.getsourcelines(engine.Operation.__aenter__)
    inline = {first + i for i, text in enumerate(lines) if "tok._listeners[self] = None" in text}
    assert len(inline) == 1
    aenter, listen = engine.Operation.__aenter__.__code__, CancelationToken._listen.__code__
    fired = False

    def stop_from_a_thread() -> None:
        nonlocal fired
        fired = True
        thread = threading.Thread(target=token.request_stop_sync, args=(5.0,), kwargs={"message": "drain"})
        thread.start()
        thread.join()

    def at_the_inlined_listen(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line" and frame.f_lineno in inline and not fired:
            stop_from_a_thread()
        return at_the_inlined_listen

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code is aenter:
            return at_the_inlined_listen
        if frame.f_code is listen and event == "call" and not fired:  # before the listener is added
            stop_from_a_thread()
        return None

    sys.settrace(tracer)
    try:
        async with op:
            sys.settrace(None)
            assert fired
            with anyio.fail_after(5):
                request = await op.wait_for_stop()
            assert request.message == "drain" and op.stop_requested
    finally:
        sys.settrace(None)
    assert op.status is OperationStatus.COMPLETED
