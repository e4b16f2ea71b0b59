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
