"""Cancelable lifecycle and the semantics of ARCHITECTURE.md section 4, on asyncio and trio."""

from __future__ import annotations

import contextvars
import math
import threading
from datetime import timedelta

import anyio
import pytest

from cancelable_rx import (
    Cancelable,
    CancelationError,
    CancelationReason,
    CancelationToken,
    ManualCancelation,
    OperationStatus,
    ParentCancelation,
    TimeoutCancelation,
    current_operation,
)

pytestmark = pytest.mark.anyio


async def test_bare_operation_completes() -> None:
    async with Cancelable(name="job", metadata={"k": 1}) as op:
        assert op.is_running and op.status is OperationStatus.RUNNING
        assert current_operation() is op
    assert current_operation() is None
    assert op.is_completed and not op.is_cancelled
    ctx = op.context
    assert ctx.status is OperationStatus.COMPLETED and ctx.name == "job" and ctx.metadata == {"k": 1}
    assert ctx.end_time is not None and ctx.end_time >= ctx.start_time
    assert ctx.cancel_reason is None


async def test_operation_id_given_or_generated() -> None:
    assert Cancelable(operation_id="abc").id == "abc"
    op = Cancelable()
    assert len(op.id) == 36 and op.id == op.context.id == op.operation_id


async def test_timeout_raises_typed_error_chained_from_backend_cancel() -> None:
    with pytest.raises(TimeoutCancelation) as info:
        async with Cancelable.with_timeout(0.05) as op:
            await anyio.sleep(5)
    err = info.value
    assert err.reason is CancelationReason.TIMEOUT and err.timeout_seconds == 0.05
    assert isinstance(err.__cause__, anyio.get_cancelled_exc_class())
    assert err.context is not None and err.context.id == op.id
    assert err.context.status is OperationStatus.CANCELLED
    assert op.status is OperationStatus.CANCELLED and op.cancel_reason is CancelationReason.TIMEOUT


async def test_suppress_cancelation_swallows_own_cancel() -> None:
    async with Cancelable.with_timeout(0.02, suppress_cancelation=True) as op:
        await anyio.sleep(5)
    assert op.is_cancelled and op.cancel_reason is CancelationReason.TIMEOUT
    assert op.context.cancel_message == "Operation timed out after 0.02s"


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


@pytest.mark.parametrize(
    ("value", "exc", "pattern"),
    [
        (-1, ValueError, r"`timeout` must be a number of seconds >= 0.*got -1"),
        (math.nan, ValueError, r"got nan"),
        ("5", TypeError, r"got '5'"),
        (True, TypeError, r"got True"),
    ],
)
def test_bad_timeouts_fail_at_the_call(value: object, exc: type[Exception], pattern: str) -> None:
    with pytest.raises(exc, match=pattern):
        Cancelable.with_timeout(value)  # type: ignore[arg-type]


async def test_enclosing_cancellation_propagates_untouched() -> None:
    with anyio.move_on_after(0.05) as outer:
        async with Cancelable.with_timeout(10) as op:
            await anyio.sleep(5)
    assert outer.cancelled_caught  # the backend exception reached the enclosing scope
    assert op.status is OperationStatus.CANCELLED
    assert op.cancel_reason is CancelationReason.PARENT  # not labelled as its own TIMEOUT


async def test_enclosing_cancellation_is_not_converted_even_with_suppress() -> None:
    with anyio.CancelScope() as outer:
        async with Cancelable(suppress_cancelation=True):
            outer.cancel()
            await anyio.sleep(5)
        pytest.fail("the enclosing cancellation must not be swallowed")  # pragma: no cover
    assert outer.cancelled_caught


async def test_first_source_wins() -> None:
    token = CancelationToken()
    with pytest.raises(ManualCancelation):
        async with Cancelable.with_timeout(0.05).combine(Cancelable.with_token(token)) as op:
            await token.cancel(message="first")
            await anyio.sleep(0.2)  # the deadline passes before exit; the token still wins
    assert op.cancel_reason is CancelationReason.MANUAL and op.cancel_message == "first"


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


async def test_cancel_inside_block_state_is_visible_at_once() -> None:
    with pytest.raises(ManualCancelation):
        async with Cancelable() as op:
            await op.cancel(message="now")
            assert op.is_cancelled
            assert op.status is OperationStatus.CANCELLED
            assert op.context.cancel_reason is CancelationReason.MANUAL
            assert op.context.end_time is None
            await anyio.sleep(1)
            pytest.fail("the next checkpoint must be cancelled")  # pragma: no cover
    assert op.is_cancelled and op.status is OperationStatus.CANCELLED
    assert op.context.end_time is not None


async def test_timeout_visible_in_block_before_checkpoint() -> None:
    async with Cancelable.with_timeout(0.01, suppress_cancelation=True) as op:
        import time

        time.sleep(0.03)  # no checkpoint: the deadline has passed unnoticed by the loop
        assert op.is_cancelled and op.cancel_reason is CancelationReason.TIMEOUT
        await anyio.lowlevel.checkpoint()


async def test_cancel_without_later_checkpoint_still_raises() -> None:
    with pytest.raises(ManualCancelation):
        async with Cancelable() as op:
            await op.cancel()
    assert op.status is OperationStatus.CANCELLED


async def test_cannot_enter_twice() -> None:
    op = Cancelable(name="once")
    async with op:
        pass
    with pytest.raises(RuntimeError, match="already been entered"):
        async with op:
            pass  # pragma: no cover


async def test_cancel_before_enter_cancels_at_once() -> None:
    op = Cancelable()
    await op.cancel(message="early")
    with pytest.raises(ManualCancelation, match="early"):
        async with op:
            await anyio.sleep(1)


async def test_already_cancelled_token_is_a_clear_error() -> None:
    token = CancelationToken()
    await token.cancel(message="done earlier")
    with pytest.raises(ManualCancelation, match=r"already cancelled before the operation started: done earlier"):
        async with Cancelable.with_token(token):
            await anyio.sleep(1)


async def test_cancel_sync_from_plain_thread() -> None:
    op = Cancelable()
    entered = threading.Event()

    def canceller() -> None:
        entered.wait(5)
        op.cancel_sync(message="thread says stop")

    thread = threading.Thread(target=canceller)
    thread.start()
    with anyio.fail_after(5), pytest.raises(ManualCancelation, match="thread says stop"):
        async with op:
            entered.set()
            await anyio.sleep_forever()
    thread.join(5)


async def test_token_cancel_sync_positional_from_thread() -> None:
    token = CancelationToken()
    entered = threading.Event()

    def canceller() -> None:
        entered.wait(5)
        token.cancel_sync(CancelationReason.MANUAL, "positional")

    thread = threading.Thread(target=canceller)
    thread.start()
    with anyio.fail_after(5), pytest.raises(ManualCancelation, match="positional"):
        async with Cancelable.with_token(token):
            entered.set()
            await anyio.sleep_forever()
    thread.join(5)


async def test_parent_cancel_reaches_child_in_other_task() -> None:
    parent = Cancelable(name="parent", suppress_cancelation=True)
    parent_entered, child_ready = anyio.Event(), anyio.Event()
    child_error: list[BaseException] = []

    async def parent_task() -> None:
        async with parent:
            parent_entered.set()
            await anyio.sleep_forever()

    async def child_task() -> None:
        # Runs in its own task, outside the parent's cancel scope: only the
        # parent -> child link can stop it.
        await parent_entered.wait()
        try:
            async with Cancelable(name="child", parent=parent):
                child_ready.set()
                await anyio.sleep_forever()
        except CancelationError as err:
            child_error.append(err)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(parent_task)
            tg.start_soon(child_task)
            await child_ready.wait()
            await parent.cancel(message="stop all")
    assert parent.is_cancelled
    assert len(child_error) == 1
    err = child_error[0]
    assert isinstance(err, ParentCancelation)
    assert err.parent_id == parent.id and err.parent_reason is CancelationReason.MANUAL


async def test_cancel_without_propagation_spares_other_task_children() -> None:
    parent = Cancelable(name="parent", suppress_cancelation=True)
    parent_entered, child_ready = anyio.Event(), anyio.Event()
    child_done: list[bool] = []

    async def parent_task() -> None:
        async with parent:
            parent_entered.set()
            await anyio.sleep_forever()

    async def child_task() -> None:
        await parent_entered.wait()
        async with Cancelable(parent=parent) as child:
            child_ready.set()
            await anyio.sleep(0.05)
        child_done.append(child.is_completed)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(parent_task)
            tg.start_soon(child_task)
            await child_ready.wait()
            await parent.cancel(propagate_to_children=False)
    assert child_done == [True]


async def test_parent_timeout_reaches_child_in_other_task() -> None:
    child_error: list[BaseException] = []

    async def child_task(parent: Cancelable, ready: anyio.Event) -> None:
        try:
            async with Cancelable(name="child", parent=parent):
                ready.set()
                await anyio.sleep_forever()
        except CancelationError as err:
            child_error.append(err)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            ready = anyio.Event()
            with pytest.raises(TimeoutCancelation):
                async with Cancelable.with_timeout(0.05, name="parent") as parent:
                    tg.start_soon(child_task, parent, ready)
                    await ready.wait()
                    await anyio.sleep(5)
    assert len(child_error) == 1 and isinstance(child_error[0], ParentCancelation)
    assert child_error[0].parent_reason is CancelationReason.TIMEOUT


async def test_nested_child_in_same_task_lets_parent_raise() -> None:
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.05) as parent:
            async with Cancelable(parent=parent) as child:
                await anyio.sleep(5)
    assert child.status is OperationStatus.CANCELLED
    assert child.cancel_reason is CancelationReason.PARENT
    assert child.context.parent_id == parent.id and child.id in parent.context.child_ids


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


async def test_failure_is_recorded_and_propagates() -> None:
    with pytest.raises(ValueError, match="boom"):
        async with Cancelable() as op:
            raise ValueError("boom")
    assert op.status is OperationStatus.FAILED and op.context.error == "ValueError: boom"


async def test_body_error_with_task_group_is_not_wrapped() -> None:
    with pytest.raises(ValueError, match="plain"):
        async with Cancelable.with_condition(lambda: False, 0.01):
            await anyio.sleep(0.02)
            raise ValueError("plain")


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


async def test_check_cancelation_outside_block_raises_typed() -> None:
    op = Cancelable()
    await op.cancel(CancelationReason.MANUAL, "x")
    with pytest.raises(ManualCancelation):
        await op.check_cancelation()


var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


async def test_run_in_thread_propagates_context() -> None:
    var.set("set-in-task")

    def in_thread(x: int) -> tuple[object, str, int, bool]:
        return current_operation(), var.get(), x, threading.current_thread() is threading.main_thread()

    async with Cancelable() as op:
        got_op, got_var, got_x, on_main = await op.run_in_thread(in_thread, 7)
    assert got_op is op and got_var == "set-in-task" and got_x == 7 and not on_main


async def test_lifecycle_callbacks_sync_and_async() -> None:
    events: list[str] = []

    async def on_complete(ctx: object) -> None:
        events.append("complete")

    op = Cancelable(name="cb").on_start(lambda ctx: events.append(f"start:{ctx.status.value}"))
    op.on_complete(on_complete).on_cancel(lambda ctx: events.append("cancel"))
    async with op:
        pass
    assert events == ["start:running", "complete"]

    events.clear()
    errored = Cancelable().on_error(lambda ctx, err: events.append(f"error:{err}"))
    with pytest.raises(KeyError):
        async with errored:
            raise KeyError("k")
    assert events == ["error:'k'"]

    events.clear()
    cancelled = Cancelable.with_timeout(0.01).on_cancel(lambda ctx: events.append(ctx.cancel_reason.value))
    with pytest.raises(TimeoutCancelation):
        async with cancelled:
            await anyio.sleep(1)
    assert events == ["timeout"]


async def test_failing_callback_never_breaks_operation(caplog: pytest.LogCaptureFixture) -> None:
    def bad(ctx: object) -> None:
        raise RuntimeError("cb exploded")

    async with Cancelable().on_start(bad).on_complete(bad) as op:
        pass
    assert op.is_completed
    assert "cb exploded" in caplog.text


async def test_progress_callbacks_and_observable() -> None:
    got: list[tuple[str, object, object]] = []
    events: list[object] = []

    async def async_cb(op_id: str, message: object, meta: object) -> None:
        got.append((op_id, message, meta))

    async with Cancelable(operation_id="p1").on_progress(async_cb) as op:
        sub = op.progress.subscribe(events.append)
        await op.report_progress("half", {"pct": 50})
        sub.dispose()
        await op.report_progress("done")
    assert got == [("p1", "half", {"pct": 50}), ("p1", "done", None)]
    assert len(events) == 1 and events[0].message == "half"  # type: ignore[attr-defined]


@pytest.mark.parametrize("bad", [None, "x", 3])
def test_callbacks_must_be_callable(bad: object) -> None:
    op = Cancelable()
    for register in (op.on_start, op.on_complete, op.on_cancel, op.on_error, op.on_progress):
        with pytest.raises(TypeError, match="must be callable"):
            register(bad)  # type: ignore[arg-type]
