"""The operation engine (``_operation.py``): entering and leaving, outcomes and typed errors,
first-source-wins, deadlines, parents and children, cancelling from threads, the record and
the cancellation observable; on asyncio and trio."""

from __future__ import annotations

import gc
import math
import threading
import time
from collections.abc import Awaitable, Callable

import anyio
import pytest

from cancelable_rx import (
    Cancelable,
    CancelationError,
    CancelationReason,
    CancelationToken,
    CancelEvent,
    DisconnectCancelation,
    ManualCancelation,
    OperationRegistry,
    OperationStatus,
    ParentCancelation,
    TimeoutCancelation,
    current_operation,
)
from cancelable_rx._loop import capture

pytestmark = pytest.mark.anyio


# -- entering, leaving and the record -------------------------------------------------------


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


async def test_cannot_enter_twice() -> None:
    op = Cancelable(name="once")
    async with op:
        pass
    with pytest.raises(RuntimeError, match="already been entered"):
        async with op:
            pass  # pragma: no cover


async def test_failure_is_recorded_and_propagates() -> None:
    with pytest.raises(ValueError, match="boom"):
        async with Cancelable() as op:
            raise ValueError("boom")
    assert op.status is OperationStatus.FAILED and op.context.error == "boom"


async def test_body_error_with_task_group_is_not_wrapped() -> None:
    polled = anyio.Event()

    def never() -> bool:
        polled.set()
        return False

    with anyio.fail_after(5), pytest.raises(ValueError, match="plain"):
        async with Cancelable.with_condition(never, 0.01):
            await polled.wait()  # the condition's poller runs in the operation's task group
            raise ValueError("plain")


# -- outcomes and typed errors --------------------------------------------------------------


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


# -- cancelling and is_cancelled --------------------------------------------------------------


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


async def test_a_block_already_queued_to_resume_stops_at_its_next_checkpoint_on_both_backends() -> None:
    # The canceller wakes the block, then cancels it in the same step.  Trio delivers a
    # cancel at the block's next checkpoint (it was already rescheduled), and so does
    # anyio on asyncio: the block runs to its next checkpoint and stops there.
    token = CancelationToken()
    woken = anyio.Event()
    steps: list[str] = []
    outcome: list[BaseException] = []

    async def block() -> None:
        try:
            async with Cancelable.with_token(token):
                await woken.wait()
                steps.append("resumed")
                await anyio.sleep(5)
                steps.append("slept")  # pragma: no cover - the checkpoint is cancelled
        except ManualCancelation as err:
            outcome.append(err)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(block)
            await anyio.wait_all_tasks_blocked()
            woken.set()
            await token.cancel(message="stop")
    assert steps == ["resumed"]
    assert [str(e) for e in outcome] == ["stop"]


async def test_a_block_cancelling_itself_is_seen_by_a_conditional_checkpoint() -> None:
    # checkpoint_if_cancelled() (also the fast path of anyio's Lock and Semaphore) yields
    # only if a scope is already cancelled: the cancel reaches the scope before the call
    # that requested it returns, so the block stops right there, on both backends.
    with pytest.raises(ManualCancelation):
        async with Cancelable() as op:
            await op.cancel()
            await anyio.lowlevel.checkpoint_if_cancelled()
            pytest.fail("the conditional checkpoint must be cancelled")  # pragma: no cover
    token = CancelationToken()
    with pytest.raises(ManualCancelation):
        async with Cancelable.with_token(token):
            token.cancel_sync()
            await anyio.lowlevel.checkpoint_if_cancelled()
            pytest.fail("the conditional checkpoint must be cancelled")  # pragma: no cover


async def _stops_at_a_conditional_checkpoint(log: list[str]) -> None:
    # its own cancel is seen by its next conditional checkpoint (not only by a real yield)
    await anyio.lowlevel.checkpoint_if_cancelled()
    log.append("passed the conditional checkpoint")  # pragma: no cover


async def _still_finishes_a_shielded_section(log: list[str]) -> None:
    # ... but it is never interrupted while it runs: a shielded section it enters right
    # after is not cancelled (anyio's rule for the current task); the next checkpoint is
    with anyio.CancelScope(shield=True):
        await anyio.sleep(0.01)
        log.append("shielded section finished")


@pytest.mark.parametrize(
    ("then", "expected"),
    [(_stops_at_a_conditional_checkpoint, []), (_still_finishes_a_shielded_section, ["shielded section finished"])],
    ids=["conditional checkpoint", "shielded section"],
)
async def test_a_task_in_the_block_that_cancels_its_operation(
    then: Callable[[list[str]], Awaitable[None]], expected: list[str]
) -> None:
    # A child task of a task group inside the block is inside the operation's scope too: the
    # cancel reaches the scope at once ...
    log: list[str] = []
    with pytest.raises(ManualCancelation):
        async with Cancelable() as op:
            async with anyio.create_task_group() as tg:

                async def worker() -> None:
                    op.cancel_sync()
                    await then(log)
                    await anyio.sleep(5)
                    log.append("ran past the checkpoint")  # pragma: no cover

                tg.start_soon(worker)
    assert log == expected


async def test_a_cancel_that_arrives_during_a_shielded_section_woken_by_the_canceller_stops_right_after_it() -> None:
    # "takes effect at the checkpoint right after the section": also when the canceller
    # wakes the section and cancels in the same step (the block is already queued to resume).
    op = Cancelable()
    woken = anyio.Event()
    log: list[str] = []

    async def block() -> None:
        try:
            async with op:
                async with op.shield():
                    await woken.wait()
                    log.append("section done")
                log.append("ran past the checkpoint after the section")  # pragma: no cover
                await anyio.sleep(5)  # pragma: no cover
        except ManualCancelation:
            log.append("cancelled")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(block)
            await anyio.wait_all_tasks_blocked()
            woken.set()
            op.cancel_sync()  # on the loop thread, from another task
    assert log == ["section done", "cancelled"]


async def test_a_cancel_from_another_task_reaches_a_blocked_block_at_once() -> None:
    token = CancelationToken()
    entered = anyio.Event()
    ended: list[float] = []

    async def block() -> None:
        with pytest.raises(ManualCancelation):
            async with Cancelable.with_token(token):
                entered.set()
                await anyio.sleep(5)
        ended.append(anyio.current_time())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(block)
            await entered.wait()
            start = anyio.current_time()
            await token.cancel()
            assert ended == []  # not yet: the block runs when this task yields
            await anyio.lowlevel.checkpoint()
            await anyio.lowlevel.checkpoint()
    assert ended and ended[0] - start < 0.5


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


async def test_check_cancelation_outside_block_raises_typed() -> None:
    op = Cancelable()
    await op.cancel(CancelationReason.MANUAL, "x")
    with pytest.raises(ManualCancelation):
        await op.check_cancelation()


# -- cancelling from other threads ---------------------------------------------------------------


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


# -- parents and children -----------------------------------------------------------------------


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
    parent_entered, child_ready, parent_cancelled = anyio.Event(), anyio.Event(), anyio.Event()
    child_done: list[bool] = []

    async def parent_task() -> None:
        async with parent:
            parent_entered.set()
            await anyio.sleep_forever()

    async def child_task() -> None:
        await parent_entered.wait()
        async with Cancelable(parent=parent) as child:
            child_ready.set()
            await parent_cancelled.wait()  # still running when the parent has been cancelled
        child_done.append(child.is_completed)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(parent_task)
            tg.start_soon(child_task)
            await child_ready.wait()
            await parent.cancel(propagate_to_children=False)
            parent_cancelled.set()
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


# -- the cancellation observable ----------------------------------------------------------------


async def test_operation_cancellation_is_a_hot_observable() -> None:
    op = Cancelable.with_timeout(0.02, suppress_cancelation=True)
    early: list[CancelEvent] = []
    op.cancellation.subscribe(early.append)
    async with op:
        await anyio.sleep(1)
    late: list[CancelEvent] = []
    op.cancellation.subscribe(late.append)  # replayed to a late subscriber
    assert len(early) == 1 and early == late and early[0].reason is CancelationReason.TIMEOUT


# -- deadlines that pass without a checkpoint, remaining(), threads that see cancellation --


async def test_a_deadline_that_passed_before_leaving_is_a_timeout() -> None:
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.01) as op:
            time.sleep(0.03)  # blocking: no checkpoint sees the deadline
    assert op.status is OperationStatus.CANCELLED and op.cancel_reason is CancelationReason.TIMEOUT
    assert op.context.is_cancelled


async def test_remaining_counts_down_to_zero() -> None:
    assert Cancelable().remaining() == math.inf
    assert Cancelable.with_timeout(5).remaining() == 5
    async with Cancelable() as bare:
        assert bare.remaining() == math.inf
    async with Cancelable.with_timeout(5) as op:
        left = op.remaining()
        assert 4 < left <= 5
        async with Cancelable(parent=op) as child:
            assert 0 < child.remaining() <= left  # the parent's deadline is the child's
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.01) as late:
            time.sleep(0.02)
            assert late.remaining() == 0.0


async def test_a_worker_thread_sees_the_operations_deadline() -> None:
    polls: list[float] = []

    def work() -> str:
        op = current_operation()
        assert op is not None
        start = time.monotonic()
        while not op.is_cancelled:
            if time.monotonic() - start > 5:
                return "ran past the budget"  # pragma: no cover - the failure being tested
            time.sleep(0.002)
        polls.append(time.monotonic() - start)
        return "stopped"

    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.05) as op:
            assert await op.run_in_thread(work) == "stopped"
    assert polls and polls[0] < 2
    assert op.cancel_reason is CancelationReason.TIMEOUT and op.context.status is OperationStatus.CANCELLED


async def test_a_worker_thread_sees_an_enclosing_cancel() -> None:
    seen: list[bool] = []

    def work() -> None:
        op = current_operation()
        assert op is not None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if op.is_cancelled:
                seen.append(True)
                op.check_cancelation_sync()  # raises the backend's cancel exception (anyio's)
            time.sleep(0.002)

    with anyio.fail_after(5):
        with anyio.move_on_after(0.05) as outer:
            async with Cancelable() as op:
                await op.run_in_thread(work)
    assert outer.cancelled_caught and seen == [True]
    assert op.cancel_reason is CancelationReason.PARENT


async def test_check_cancelation_sync_raises_the_typed_error_for_its_own_cancel() -> None:
    started = threading.Event()
    op = Cancelable()

    def work() -> None:
        started.set()
        for _ in range(5000):
            op.check_cancelation_sync()
            time.sleep(0.001)

    async def stop() -> None:
        await anyio.to_thread.run_sync(started.wait, 5)
        op.cancel_sync(message="stop the thread")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(stop)
            with pytest.raises(ManualCancelation, match="stop the thread"):
                async with op:
                    await op.run_in_thread(work)
    assert op.status is OperationStatus.CANCELLED
    with pytest.raises(ManualCancelation):
        op.check_cancelation_sync()  # after the end too, like token.check()


async def test_disconnect_has_its_own_typed_error() -> None:
    with pytest.raises(DisconnectCancelation, match="client went away"):
        async with Cancelable() as op:
            await op.cancel(CancelationReason.DISCONNECT, "client went away")
            await anyio.sleep(1)
    assert op.cancel_reason is CancelationReason.DISCONNECT


async def test_a_long_lived_parent_remembers_a_bounded_set_of_children() -> None:
    from cancelable_rx._operation import RECENT_CHILDREN

    async with Cancelable(name="parent") as parent:
        live = Cancelable(name="live", parent=parent)
        async with live:
            for _ in range(3 * RECENT_CHILDREN):
                async with Cancelable(parent=parent):
                    pass
            ids = parent.context.child_ids
            assert live.id in ids  # live children are always there
            assert len(ids) == RECENT_CHILDREN + 1  # plus the last RECENT_CHILDREN that ended
            async with Cancelable(parent=parent) as newest:
                assert newest.id in parent.context.child_ids
            assert len(parent.context.child_ids) == RECENT_CHILDREN + 1


async def test_an_ended_operation_keeps_no_cancel_scope_and_so_no_task() -> None:
    """An exited anyio scope keeps its host task; an ended operation (which a copied
    context, a keep-alive timer or a history may keep for a while) must not keep it."""
    scope_class = capture().scope_cls  # the backend's class the operations use
    op = Cancelable()
    async with op:
        assert any(isinstance(r, scope_class) for r in gc.get_referents(op))
    assert not any(isinstance(r, scope_class) for r in gc.get_referents(op))
    with pytest.raises(RuntimeError, match="was not entered"):  # leaving twice is still an error
        await op.__aexit__(None, None, None)


@pytest.mark.parametrize("unlisten_raises", [False, True])
@pytest.mark.parametrize("merged", [False, True])
async def test_a_token_whose_listen_hook_raises_fails_the_entry_and_leaves_nothing_behind(
    merged: bool, unlisten_raises: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A token subclass with a listen hook of its own that raises (given to with_token, or
    merged by combine): entering fails with that error, as when a source cannot be armed:
    the operation ends FAILED, no listener stays on any token, and its cancel scope is left
    (the scopes entered after it behave).  An unlisten hook that raises too is logged: the
    teardown still runs to its end."""

    class Refuses(CancelationToken):
        def _listen(self, fn: object, key: object = None) -> None:  # type: ignore[override]
            raise RuntimeError("cannot listen")

        def _unlisten(self, key: object) -> None:
            if unlisten_raises:
                raise RuntimeError("cannot unlisten")
            super()._unlisten(key)

    plain, refusing = CancelationToken(), Refuses()
    if merged:
        op = Cancelable.with_token(plain).combine(Cancelable.with_token(refusing))
    else:
        op = Cancelable.with_token(refusing)
    with pytest.raises(RuntimeError, match="cannot listen"):
        async with op:
            pytest.fail("the body ran")
    assert op.status is OperationStatus.FAILED and "cannot listen" in (op.context.error or "")
    assert plain.listener_count == 0 and refusing.listener_count == 0
    assert current_operation() is None
    with anyio.move_on_after(0.01) as scope:  # a later scope of this task works as usual
        await anyio.sleep(1)
    assert scope.cancelled_caught
    assert ("a token's unlisten hook failed" in caplog.text) is unlisten_raises


@pytest.mark.parametrize("step", ["_ended", "_finish"])
async def test_a_subclass_overriding_a_step_of_leaving_keeps_every_call(step: str) -> None:
    # Leaving a cancelled block takes a short way that skips some of the engine's steps (or
    # calls them only when they have work); a subclass that overrides one of them must still
    # see it called on every cancelled exit, as on the full path.
    calls: list[str] = []

    def audited(self: Cancelable, *args: object) -> None:
        calls.append(step)
        getattr(Cancelable, step)(self, *args)

    Audited = type("Audited", (Cancelable,), {step: audited})
    token = CancelationToken()
    with pytest.raises(ManualCancelation):
        async with Audited.with_token(token):
            await token.cancel()
            await anyio.sleep(5)
    with pytest.raises(TimeoutCancelation):
        async with Audited.with_timeout(0.01):
            await anyio.sleep(5)
    assert calls == [step, step]
    if step == "_ended":  # completing calls it whenever it has work: here, a registry to tell
        async with Audited(register_globally=True) as op:
            pass
        assert calls == [step] * 3
        assert op.id not in [c.id for c in await OperationRegistry.get_instance().list_operations()]
