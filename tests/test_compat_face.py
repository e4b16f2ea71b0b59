"""The compatibility face (``cancelable_rx.compat``) as code written for hother-cancelable
sees it: decorators, helpers and standalone streams build its `Cancelable`, and a cancelled
one lets the backend's cancel exception out wherever the reference did."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import AsyncIterator, Iterator
from unittest.mock import patch

import anyio
import anyio.lowlevel
import pytest

import cancelable_rx
from cancelable_rx import CancelationReason, CancelationToken, OperationRegistry, OperationStatus, compat

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _quiet_compat_warning() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", compat.CompatWarning)
        yield


async def _numbers(delay: float = 0.01) -> AsyncIterator[int]:
    i = 0
    while True:
        yield i
        i += 1
        await anyio.sleep(delay)


# -- decorators and helpers build compat operations ------------------------------------------


async def test_decorators_inject_a_compat_operation_and_a_cancelled_call_raises_the_backend_exception() -> None:
    seen: list[object] = []

    @compat.cancelable(timeout=0.02, name="slow")
    async def slow(cancelable: compat.Cancelable | None = None) -> None:
        seen.append(cancelable)
        await anyio.sleep(5)

    with pytest.raises(anyio.get_cancelled_exc_class()):
        await slow()
    (op,) = seen
    assert isinstance(op, compat.Cancelable)
    assert op.status is OperationStatus.CANCELLED and op.cancel_reason is CancelationReason.TIMEOUT
    assert "cancelable" not in inspect.signature(slow).parameters

    token = CancelationToken()
    await token.cancel(message="stop")

    @compat.cancelable_with_token(token)
    async def tokened(cancelable: compat.Cancelable | None = None) -> None:
        seen.append(cancelable)
        await anyio.sleep(5)

    with pytest.raises(anyio.get_cancelled_exc_class()):
        await tokened()
    assert isinstance(seen[-1], compat.Cancelable) and seen[-1].cancel_reason is CancelationReason.MANUAL

    @compat.cancelable_with_condition(lambda: True, check_interval=0.01)
    async def conditioned(cancelable: compat.Cancelable | None = None) -> None:
        seen.append(cancelable)
        await anyio.sleep(5)

    with pytest.raises(anyio.get_cancelled_exc_class()):
        await conditioned()
    assert seen[-1].cancel_reason is CancelationReason.CONDITION  # type: ignore[union-attr]

    @compat.cancelable_combine(compat.Cancelable.with_timeout(0.02), compat.Cancelable.with_token(CancelationToken()))
    async def combined(cancelable: compat.Cancelable | None = None) -> None:
        seen.append(cancelable)
        await anyio.sleep(5)

    with pytest.raises(anyio.get_cancelled_exc_class()):
        await combined()
    assert isinstance(seen[-1], compat.Cancelable) and seen[-1].cancel_reason is CancelationReason.TIMEOUT

    # the main face's decorators keep building main operations and the typed error
    @cancelable_rx.cancelable(timeout=0.02)
    async def main_face(cancelable: cancelable_rx.Cancelable | None = None) -> None:
        seen.append(cancelable)
        await anyio.sleep(5)

    with pytest.raises(cancelable_rx.TimeoutCancelation):
        await main_face()
    assert type(seen[-1]) is cancelable_rx.Cancelable


async def test_method_timeout_and_ensure_operation_build_compat_operations() -> None:
    class Service:
        @compat.cancelable_method(timeout=0.02)
        async def work(self, cancelable: compat.Cancelable | None = None) -> compat.Cancelable | None:
            assert isinstance(cancelable, compat.Cancelable)
            assert cancelable.name == "Service.work"
            await anyio.sleep(5)
            return cancelable

    with pytest.raises(anyio.get_cancelled_exc_class()):
        await Service().work()

    with pytest.raises(anyio.get_cancelled_exc_class()):
        await compat.with_timeout(0.02, anyio.sleep(5))

    @compat.with_timeout(0.02)
    async def decorated() -> None:
        await anyio.sleep(5)

    with pytest.raises(anyio.get_cancelled_exc_class()):
        await decorated()

    @compat.ensure_operation
    async def ensured(cancelable: compat.Cancelable | None = None) -> str:
        return type(cancelable).__module__ + "." + type(cancelable).__qualname__

    assert await ensured() == "cancelable_rx._compat.Cancelable"


# -- cancelable_stream -------------------------------------------------------------------------


async def test_a_compat_stream_timeout_raises_the_backend_exception_and_records_the_reason() -> None:
    items: list[int] = []
    stream = compat.cancelable_stream(_numbers(), timeout=0.1, buffer_partial=True)
    with pytest.raises(anyio.get_cancelled_exc_class()):
        async for item in stream:
            items.append(item)
    op = stream.operation
    assert isinstance(op, compat.Cancelable)
    assert 2 <= len(items) and op.status is OperationStatus.CANCELLED and op.cancel_reason is CancelationReason.TIMEOUT
    assert op.partial_result is not None and op.partial_result["count"] == len(items)
    await anyio.sleep(0)  # the task is not left cancelled


async def test_a_compat_stream_cancelled_by_its_token_between_items_raises_the_backend_exception() -> None:
    token = CancelationToken()
    items: list[int] = []
    progress: list[int] = []
    async with anyio.create_task_group() as tg:  # the enclosing task group is not cancelled
        stream = compat.cancelable_stream(
            _numbers(0), token=token, report_interval=2, on_progress=lambda n, item: progress.append(n)
        )
        with pytest.raises(anyio.get_cancelled_exc_class()):
            async for item in stream:
                items.append(item)
                if item == 5:
                    await token.cancel(message="enough")  # between two fetches: no scope is open
        tg.start_soon(anyio.sleep, 0)
    assert items == [0, 1, 2, 3, 4, 5] and progress == [2, 4, 6]
    assert stream.operation.cancel_reason is CancelationReason.MANUAL


async def test_a_compat_stream_that_ends_or_fails_is_the_main_face_stream() -> None:
    async def three() -> AsyncIterator[int]:
        for i in range(3):
            yield i

    assert [x async for x in compat.cancelable_stream(three())] == [0, 1, 2]

    async def failing() -> AsyncIterator[int]:
        yield 1
        raise ValueError("broken source")

    with pytest.raises(ValueError, match="broken source"):
        async for _ in compat.cancelable_stream(failing()):
            pass
    # an operation of one's own, as on the main face (its checks included)
    mine = compat.Cancelable.with_timeout(0.05, name="mine")
    with pytest.raises(anyio.get_cancelled_exc_class()):
        async for _ in compat.cancelable_stream(_numbers(), operation=mine):
            pass
    assert mine.cancel_reason is CancelationReason.TIMEOUT
    with pytest.raises(ValueError, match="timeout"):
        compat.cancelable_stream(three(), timeout=1, operation=compat.Cancelable())
    # the main face's standalone stream keeps the typed error
    with pytest.raises(cancelable_rx.TimeoutCancelation):
        async for _ in cancelable_rx.cancelable_stream(_numbers(), timeout=0.05):
            pass


# -- the operation -----------------------------------------------------------------------------


async def test_check_cancelation_raises_the_backend_exception_inside_and_outside_the_block() -> None:
    op = compat.Cancelable(name="check")
    await op.check_cancelation()  # not cancelled: returns
    await op.token.cancel(CancelationReason.MANUAL, "stop")
    with pytest.raises(anyio.get_cancelled_exc_class()):
        await op.check_cancelation()  # before entering, as the reference's token.check_async()
    await anyio.sleep(0)
    inside = compat.Cancelable()
    with pytest.raises(anyio.get_cancelled_exc_class()):
        async with inside:
            await inside.cancel()
            await inside.check_cancelation()
    assert inside.status is OperationStatus.CANCELLED
    # the main face raises its typed error
    main = cancelable_rx.Cancelable()
    await main.token.cancel()
    with pytest.raises(cancelable_rx.ManualCancelation):
        await main.check_cancelation()


async def test_an_operation_has_its_token_from_the_start_as_in_the_reference() -> None:
    op = compat.Cancelable()
    assert op._token is op.token and not op.token.is_cancelled
    given = CancelationToken()
    shared = compat.Cancelable.with_token(given)
    assert shared._token is given and shared.token is given
    async with shared:
        pass
    await shared.cancel()  # ended: changes nothing, the caller's token included
    assert not given.is_cancelled
    running = compat.Cancelable.with_token(given)
    with pytest.raises(anyio.get_cancelled_exc_class()):
        async with running:
            await running.cancel()  # cancels the shared token, as with the main face
            await anyio.sleep(5)
    assert given.is_cancelled
    # a part's token is linked into the combined operation (as the reference links every part)
    part = compat.Cancelable.with_timeout(5)
    combined = part.combine(compat.Cancelable.with_timeout(10))
    await part.token.cancel(CancelationReason.CONDITION, "part stopped")
    with pytest.raises(anyio.get_cancelled_exc_class()):
        async with combined:
            await anyio.sleep(5)
    assert combined.cancel_reason is CancelationReason.CONDITION and combined._token.reason is CancelationReason.CONDITION


async def test_a_method_can_be_patched_on_one_compat_operation() -> None:
    registry = OperationRegistry()
    failing, other = compat.Cancelable(name="failing"), compat.Cancelable(name="other")
    await registry.register(failing)
    await registry.register(other)
    with patch.object(failing, "cancel", side_effect=RuntimeError("cancel failed")):
        assert await registry.cancel_all() == 1  # the failure is logged, the others are cancelled
    assert other.is_cancelled and not failing.is_cancelled
    with pytest.raises(AttributeError):
        cancelable_rx.Cancelable().cancel = None  # type: ignore[method-assign]  # the main face: slots only


# -- the reference's private attributes, live ---------------------------------------------------


async def test_children_added_by_hand_are_cancelled_with_their_parent() -> None:
    parent = compat.Cancelable(name="parent")
    built = compat.Cancelable(name="built", parent=parent)
    assert built in parent._children and built._parent_ref is not None and built._parent_ref() is parent
    by_hand, spared = compat.Cancelable(name="by hand"), compat.Cancelable(name="spared")
    parent._children.add(by_hand)
    quiet = compat.Cancelable(name="quiet")
    quiet._children.add(spared)
    await quiet.cancel(propagate_to_children=False)
    assert not spared.token.is_cancelled
    with pytest.raises(anyio.get_cancelled_exc_class()):
        async with parent:
            await parent.cancel(CancelationReason.MANUAL, "stop")
            assert by_hand.token.is_cancelled and built.is_cancelled
            await anyio.sleep(1)
    assert by_hand.token.reason is CancelationReason.PARENT
    # a weak set: a child nobody holds any more leaves it
    del by_hand, built
    import gc

    gc.collect()
    assert len(parent._children) == 0


async def test_a_parent_given_through_parent_ref_links_the_child() -> None:
    import weakref

    parent = compat.Cancelable(name="parent")
    child = compat.Cancelable(name="child")
    child._parent_ref = weakref.ref(parent)
    assert child.parent is parent
    with pytest.raises(anyio.get_cancelled_exc_class()):
        async with parent, child:
            await parent.cancel()
            await anyio.sleep(1)
    assert child.cancel_reason is CancelationReason.PARENT
    with pytest.raises(RuntimeError, match="before the operation is entered"):
        child._parent_ref = None


async def test_sources_appended_to_the_list_apply() -> None:
    op = compat.Cancelable.with_timeout(5)
    listed = op._sources
    op._sources.append(compat.ConditionSource(lambda: True, check_interval=0.01))
    op.add_source(CancelationToken())
    assert len(listed) == 2 and listed is op._sources
    with pytest.raises(anyio.get_cancelled_exc_class()):
        async with op:
            await anyio.sleep(1)
    assert op.cancel_reason is CancelationReason.CONDITION
    combined = compat.Cancelable(name="a").combine(op)  # a list of sources combines as a tuple does
    assert len(combined._sources) == 2 and combined._cancellables_to_link is not None


async def test_combining_leaves_the_sources_of_each_part_as_they_were() -> None:
    flag = {"b": False}
    a = compat.Cancelable.with_condition(lambda: False, check_interval=0.01, condition_name="a")
    b = compat.Cancelable.with_condition(lambda: flag["b"], check_interval=0.01, condition_name="b")
    a_sources = list(a._sources)
    combined = a.combine(b)
    assert list(a._sources) == a_sources and len(combined._sources) == 2
    flag["b"] = True  # b's condition holds: it cancels the combination, never `a` alone
    async with a:
        await anyio.sleep(0.1)
    assert a.status is OperationStatus.COMPLETED


async def test_a_source_that_says_it_triggered_names_the_reason_of_an_unexplained_cancel() -> None:
    class Flagged(compat.CancelationSource):
        async def start_monitoring(self, scope: object) -> None:
            pass

        async def stop_monitoring(self) -> None:
            pass

    op = compat.Cancelable(name="flagged")
    source = Flagged(CancelationReason.SIGNAL)
    op._sources.append(source)
    with pytest.raises(anyio.get_cancelled_exc_class()):
        async with op:
            source.triggered = True
            op._scope.cancel()  # the reference's tests cancel the scope by hand
            await anyio.sleep(1)
    assert op.cancel_reason is CancelationReason.SIGNAL


async def test_status_callbacks_written_into_the_dict_are_called() -> None:
    seen: list[str] = []
    op = compat.Cancelable(name="callbacks")
    op._status_callbacks["error"] = [lambda ctx, err: seen.append(f"error:{err}")]
    op._status_callbacks["start"].append(lambda ctx: seen.append("start"))
    with pytest.raises(ValueError, match="boom"):
        async with op:
            raise ValueError("boom")
    assert seen == ["start", "error:boom"]
    with pytest.raises(ValueError, match="unknown kinds"):
        op._status_callbacks = {"finish": []}


async def test_open_shields_are_listed_and_what_is_left_is_cancelled_at_exit() -> None:
    op = compat.Cancelable(name="shields")
    left = anyio.CancelScope()
    async with op:
        async with op.shield() as child:
            assert len(op._shields) == 1 and child.status is OperationStatus.SHIELDED
        assert op._shields == []
        op._shields.append(left)
    assert left.cancel_called and op.status is OperationStatus.COMPLETED


async def test_linked_operations_are_linked_when_entered() -> None:
    a, b, c = compat.Cancelable(name="a"), compat.Cancelable(name="b"), compat.Cancelable(name="c")
    c._cancellables_to_link = [b]
    b._cancellables_to_link = [a]
    tokens: list[CancelationToken] = []
    await c._collect_all_tokens([c], tokens)
    assert tokens == [c.token, b.token, a.token]
    await a.token.cancel(CancelationReason.MANUAL, "from a")
    with pytest.raises(anyio.get_cancelled_exc_class()):
        async with c:
            await c._safe_link_tokens()  # entered: nothing more to link
            await anyio.sleep(1)
    assert c.cancel_reason is CancelationReason.MANUAL


async def test_progress_reported_outside_the_block_reaches_the_callbacks() -> None:
    seen: list[object] = []
    op = compat.Cancelable(name="outside").on_progress(lambda op_id, msg, meta: seen.append(msg))
    await op.report_progress("before")
    async with op:
        await op.report_progress("inside")
    await op.report_progress("after")
    assert seen == ["before", "inside", "after"]
    with pytest.raises(RuntimeError, match="only a running operation reports progress"):
        await cancelable_rx.Cancelable().report_progress("main face")


async def test_the_compat_bridge_runs_callbacks_through_its_stream_and_worker() -> None:
    import threading

    bridge = compat.AnyioBridge(buffer_size=2)
    assert bridge._send_stream is None and not bridge.is_started
    ran: list[str] = []
    for name in ("a", "b", "c"):  # queued before start; the stream holds 2: the third is dropped
        bridge.call_soon_threadsafe(ran.append, name)
    assert len(bridge._pending_callbacks) == 3
    async with anyio.create_task_group() as tg:
        tg.start_soon(bridge.start)
        await anyio.sleep(0.05)
        assert ran == ["a", "b"] and bridge._pending_callbacks == deque_empty()
        done = anyio.Event()

        async def from_thread() -> None:
            ran.append("thread")
            done.set()

        threading.Thread(target=bridge.call_soon_threadsafe, args=(from_thread,)).start()
        with anyio.fail_after(5):
            await done.wait()
        await bridge.stop()  # the stream closes: the worker ends and start() returns
    assert ran == ["a", "b", "thread"] and not bridge.is_started and bridge._receive_stream is None
    assert compat.AnyioBridge.get_instance() is compat.AnyioBridge.get_instance()
    assert compat.AnyioBridge.get_instance() is not cancelable_rx.AnyioBridge.get_instance()


def deque_empty() -> object:
    from collections import deque

    return deque()


async def test_calling_the_finalizer_by_hand_only_leaves_the_parent() -> None:
    parent = compat.Cancelable(name="parent")
    child = compat.Cancelable(name="child", parent=parent)
    child.__del__()
    assert child not in parent._children and child.parent is parent
    async with child:  # still usable: nothing else was cleared
        pass
    assert child.status is OperationStatus.COMPLETED
