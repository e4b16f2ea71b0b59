"""An operation that has not been entered yet already says whether entering it would cancel
it at once: its token (own or given) was cancelled, or its parent was."""

from __future__ import annotations

import sys
import threading
from types import FrameType
from typing import Any

import anyio
import pytest

from cancelable_rx import (
    Cancelable,
    CancelationReason,
    CancelationToken,
    ManualCancelation,
    OperationStatus,
    ParentCancelation,
)
from cancelable_rx import _operation as engine

pytestmark = pytest.mark.anyio


async def test_a_cancelled_own_token_cancels_the_operation_before_it_is_entered() -> None:
    op = Cancelable(name="pending")
    assert not op.is_cancelled
    await op.check_cancelation()  # not cancelled: returns
    await op.token.cancel(CancelationReason.MANUAL, "stop")
    assert op.is_cancelled and op.status is OperationStatus.PENDING
    assert op.cancel_reason is CancelationReason.MANUAL and op.cancel_message == "stop"
    with pytest.raises(ManualCancelation, match="stop"):
        await op.check_cancelation()
    with pytest.raises(ManualCancelation):
        op.check_cancelation_sync()
    with pytest.raises(ManualCancelation):
        async with op:
            await anyio.sleep(5)
    assert op.status is OperationStatus.CANCELLED


async def test_a_given_or_combined_token_cancelled_before_entering_is_seen_at_once() -> None:
    token = CancelationToken()
    op = Cancelable.with_token(token)
    await token.cancel(message="shared stop")
    assert op.is_cancelled and op.cancel_reason is CancelationReason.MANUAL
    assert "already cancelled before the operation started: shared stop" in (op.cancel_message or "")

    other = CancelationToken()
    combined = Cancelable.with_timeout(5).combine(Cancelable.with_token(other))
    assert not combined.is_cancelled
    other.cancel_sync(CancelationReason.CONDITION)
    assert combined.is_cancelled and combined.cancel_reason is CancelationReason.CONDITION


async def test_a_child_of_a_cancelled_parent_is_cancelled_before_it_is_entered() -> None:
    async with Cancelable(name="parent", suppress_cancelation=True) as parent:
        child = Cancelable(name="child", parent=parent)
        early = Cancelable(name="early", parent=parent)
        early_token = early.token  # made before the parent is cancelled
        grandchild = Cancelable(name="grandchild", parent=child)
        assert not child.is_cancelled
        await parent.cancel(message="parent stop")
        assert child.is_cancelled and child.cancel_reason is CancelationReason.PARENT
        assert child.token.is_cancelled and child.token.reason is CancelationReason.PARENT
        assert early.token is early_token and early_token.is_cancelled  # read again: updated
        assert grandchild.is_cancelled  # through the chain of pending parents
        with pytest.raises(ParentCancelation):
            async with child:
                await anyio.sleep(5)
    assert child.status is OperationStatus.CANCELLED


async def test_a_child_of_a_parent_that_completed_is_not_cancelled() -> None:
    async with Cancelable(name="parent") as parent:
        child = Cancelable(name="child", parent=parent)
    assert parent.status is OperationStatus.COMPLETED
    assert not child.is_cancelled and not child.token.is_cancelled
    async with child:
        await anyio.sleep(0)
    assert child.status is OperationStatus.COMPLETED


async def test_a_thread_reading_a_pending_child_while_it_is_entered_still_lets_the_parent_stop_it() -> None:
    """Forced interleaving: a thread reads ``child.is_cancelled`` while the child is pending
    and is paused right after that read; the loop enters the child; the parent is cancelled,
    and between its record and its propagation to the children the paused reader goes on and
    records the child's cancellation first.  The child's block must still be interrupted at
    once (the reader's check cancels the scope of the child it finds running)."""
    released, reader_done = threading.Event(), threading.Event()
    check_code = engine.Operation._check_pending.__code__
    seen: dict[str, Any] = {}

    def pause_on_entry(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is check_code:
            sys.settrace(None)
            released.wait(5)  # descheduled here, having read the state as pending

    def read() -> None:
        sys.settrace(pause_on_entry)
        try:
            seen["reader"] = child.is_cancelled
        finally:
            sys.settrace(None)
            reader_done.set()

    parent = Cancelable(name="parent")

    def between_record_and_propagation(event: object) -> None:  # runs in the cancelling thread
        released.set()
        reader_done.wait(5)

    parent.cancellation.subscribe(between_record_and_propagation)
    async with anyio.create_task_group() as tg:
        entered = anyio.Event()

        async def run_parent() -> None:
            with pytest.raises(ManualCancelation):
                async with parent:
                    entered.set()
                    await anyio.sleep(10)

        tg.start_soon(run_parent)
        await entered.wait()
        child = Cancelable(name="child", parent=parent)
        reader = threading.Thread(target=read)
        reader.start()
        await anyio.sleep(0.05)  # the reader is paused inside is_cancelled
        start = anyio.current_time()
        with pytest.raises(ParentCancelation):
            async with child:
                threading.Thread(target=parent.cancel_sync).start()
                await anyio.sleep(2)
        assert anyio.current_time() - start < 1
    reader.join(5)
    assert seen["reader"] is True
    assert child.status is OperationStatus.CANCELLED and child.cancel_reason is CancelationReason.PARENT
