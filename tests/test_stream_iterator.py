"""``op.stream(...)``: the fused stage (``streaming/_iterator.py``) and the Stream class
(``streaming/_stream.py``): partial results, closing, progress from streams, checkpoints;
on asyncio and trio."""

from __future__ import annotations

import gc
import threading
import warnings
from collections.abc import AsyncIterator
from contextlib import aclosing

import anyio
import pytest
from aiostream import pipe
from aiostream import stream as aiostream_stream

from cancelable_rx import (
    Cancelable,
    CancelationError,
    CancelationToken,
    ManualCancelation,
    OperationRegistry,
    OperationStatus,
    PartialResult,
    ProgressEvent,
    TimeoutCancelation,
    cancelable_stream,
    current_operation,
)

pytestmark = pytest.mark.anyio


class Source:
    """A real async generator source that records whether it was closed."""

    def __init__(self, n: int, delay: float = 0.0) -> None:
        self.n, self.delay, self.closed, self.produced = n, delay, False, 0

    async def gen(self) -> AsyncIterator[int]:
        try:
            for i in range(self.n):
                if self.delay:
                    await anyio.sleep(self.delay)
                self.produced += 1
                yield i
        finally:
            self.closed = True


# -- completing, partial results, closing ----------------------------------------------------


async def test_stream_completes_with_partial_result() -> None:
    src = Source(10)
    async with Cancelable() as op:
        got = [x async for x in op.stream(src.gen())]
    assert got == list(range(10))
    assert op.partial_result == PartialResult(10, True, list(range(10)))
    assert op.context.partial_result["count"] == 10  # dict-style access still works
    assert src.closed


async def test_stream_is_an_aiostream_stream_and_pipes() -> None:
    async with Cancelable() as op:
        xs = op.stream(Source(100).gen()) | pipe.map(lambda x: x * 10) | pipe.take(3)
        async with xs.stream() as streamer:
            got = [x async for x in streamer]
    assert got == [0, 10, 20]
    assert op.partial_result.count == 3 and not op.partial_result.completed


async def test_break_in_aclosing_records_at_once_and_closes_source() -> None:
    src = Source(100)
    async with Cancelable() as op:
        async with aclosing(op.stream(src.gen())) as s:
            async for x in s:
                if x == 2:
                    break
        assert src.closed
        assert op.partial_result == PartialResult(3, False, [0, 1, 2])


async def test_break_without_aclosing_is_closed_at_exit_without_warnings() -> None:
    src = Source(100)
    async with Cancelable() as op:
        async for x in op.stream(src.gen()):
            if x == 1:
                break
        assert op.partial_result.count == 2  # live view before the stream is closed
    assert src.closed and op.partial_result == PartialResult(2, False, [0, 1])
    gc.collect()


async def test_error_in_source_records_partial() -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        raise ValueError("source broke")

    with pytest.raises(ValueError, match="source broke"):
        async with Cancelable() as op:
            async for _ in op.stream(failing()):
                pass
    assert op.partial_result == PartialResult(1, False, [1]) and op.status is OperationStatus.FAILED


async def test_stream_iterates_once() -> None:
    async with Cancelable() as op:
        s = op.stream(Source(2).gen())
        assert [x async for x in s] == [0, 1]
        with pytest.raises(RuntimeError, match="iterated once"):
            async for _ in s:
                pass  # pragma: no cover


async def test_sync_iterables_are_accepted() -> None:
    async with Cancelable() as op:
        assert [x async for x in op.stream(range(5), buffer_partial=False)] == [0, 1, 2, 3, 4]
    assert op.partial_result == PartialResult(5, True, None)


# test_checks.py has report_interval 0 and "x", buffer_size 0, and the sources 5 and "abc";
# these are the values it does not cover.
@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"report_interval": -5}, ValueError, r"got -5"),
        ({"report_interval": 2.5}, TypeError, r"`report_interval` must be an int.*got 2.5"),
        ({"report_interval": True}, TypeError, r"got True"),
    ],
)
async def test_bad_stream_arguments(kwargs: dict[str, object], exc: type[Exception], pattern: str) -> None:
    op = Cancelable()
    with pytest.raises(exc, match=pattern):
        op.stream(Source(1).gen(), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [None, object()])
async def test_non_iterable_source_is_rejected(bad: object) -> None:
    with pytest.raises(TypeError, match="`async_iter` must be an async iterable"):
        Cancelable().stream(bad)


# -- cancellation mid-stream ---------------------------------------------------------------------


async def test_timeout_mid_stream_raises_typed_error_and_records_partial() -> None:
    src = Source(1000, delay=0.01)
    seen = 0
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.1) as op:
            async for _ in op.stream(src.gen(), buffer_size=3):
                seen += 1
    partial = op.partial_result
    assert partial.count == seen and 0 < seen < 1000 and not partial.completed
    assert partial.buffer == list(range(seen - 3, seen))
    assert src.closed


async def test_token_mid_stream_stops_at_next_item() -> None:
    token = CancelationToken()
    seen: list[int] = []
    with pytest.raises(ManualCancelation):
        async with Cancelable.with_token(token) as op:
            async for x in op.stream(Source(100).gen()):
                seen.append(x)
                if x == 4:
                    token.cancel_sync(message="enough")  # sync: no checkpoint in between
    assert seen == [0, 1, 2, 3, 4]
    assert op.partial_result.count == 5


async def test_consumer_awaits_are_not_cancelled_by_the_stream() -> None:
    async with Cancelable() as op:
        async for _x in op.stream(Source(3).gen()):
            await anyio.sleep(0.01)  # the consumer's own await runs undisturbed
            with anyio.move_on_after(0.001) as inner:
                await anyio.sleep(1)
            assert inner.cancelled_caught  # only its own scope cancels it
    assert op.partial_result.completed


async def test_cpu_bound_source_is_cancelled() -> None:
    class Busy:
        """An async iterator that never awaits."""

        def __init__(self) -> None:
            self.i = 0

        def __aiter__(self) -> Busy:
            return self

        async def __anext__(self) -> int:
            self.i += 1
            return self.i

    start = anyio.current_time()
    with anyio.fail_after(5), pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.05) as op:
            async for _ in op.stream(Busy()):
                pass
    assert anyio.current_time() - start < 2
    assert op.partial_result.count > 0


async def test_stream_cancel_from_thread_mid_stream() -> None:
    entered = threading.Event()
    op = Cancelable()

    def canceller() -> None:
        entered.wait(5)
        op.cancel_sync(message="thread stop")

    threading.Thread(target=canceller).start()
    with anyio.fail_after(5), pytest.raises(CancelationError, match="thread stop"):
        async with op:
            async for _ in op.stream(Source(10**6, delay=0.001).gen()):
                entered.set()
    assert 0 < op.partial_result.count < 10**6


# -- progress from streams ---------------------------------------------------------------------


async def test_progress_events_observable_and_callbacks() -> None:
    events: list[ProgressEvent] = []
    sync_calls: list[object] = []
    async_calls: list[object] = []
    done = anyio.Event()

    async def slow_async(op_id: str, message: object, meta: dict[str, object] | None) -> None:
        await anyio.sleep(0.2)  # far slower than the stream: must not block it
        async_calls.append(meta["count"] if meta else None)
        done.set()

    op = Cancelable().on_progress(lambda i, m, meta: sync_calls.append(meta["count"]))
    op.on_progress(slow_async)
    completed: list[bool] = []
    async with op:
        op.progress.subscribe(events.append, on_completed=lambda: completed.append(True))
        started = anyio.current_time()
        async for _ in op.stream(Source(50).gen(), report_interval=10):
            pass
        assert anyio.current_time() - started < 0.15  # blocking even once would take >= 0.2 s
        with anyio.fail_after(5):
            await done.wait()
    # every report, then the final event (exact count, outcome), then completion
    assert [e.count for e in events] == [10, 20, 30, 40, 50, 50]
    assert events[0].message == "Processed 10 items" and events[0].metadata == {"count": 10, "latest_item": 9}
    assert [e.final for e in events] == [False] * 5 + [True]
    assert events[-1].outcome is OperationStatus.COMPLETED and completed == [True]
    assert sync_calls == [10, 20, 30, 40, 50]  # callbacks get no final call
    assert 1 <= len(async_calls) < 5  # conflated: the newest pending event wins
    assert op.progress.latest is events[-1] and op.progress.completed


# -- a source whose cleanup raises ---------------------------------------------------------


class _BadCleanup(Exception):
    pass


async def _cleanup_raises() -> AsyncIterator[int]:
    try:
        for i in range(100):
            yield i
    finally:
        raise _BadCleanup("cleanup failed")


async def test_a_source_whose_cleanup_raises_after_a_break_still_gets_the_whole_teardown() -> None:
    token = CancelationToken()
    registry_op_ids: list[str] = []
    with pytest.raises(_BadCleanup, match="cleanup failed"):
        async with Cancelable.with_token(token, register_globally=True) as op:
            registry_op_ids.append(op.id)
            async for item in op.stream(_cleanup_raises()):
                if item == 3:
                    break  # the stream is closed by the operation's exit, whose cleanup raises
    assert op.status is OperationStatus.FAILED and op.context.error == "cleanup failed"
    assert token.listener_count == 0 and current_operation() is None
    assert OperationRegistry.get_instance().get_operation_sync(registry_op_ids[0]) is None
    assert op.partial_result.count == 4


async def test_a_source_whose_cleanup_raises_is_reported_after_a_cancellation_too() -> None:
    with pytest.raises(_BadCleanup):
        async with Cancelable() as op:
            async for item in op.stream(_cleanup_raises()):
                if item == 2:
                    op.cancel_sync(message="stop")
                    break
    # the cleanup error comes out (it is what ended the operation); the cancel stays recorded
    assert op.status is OperationStatus.FAILED and not op.is_cancelled
    assert op.cancel_reason is not None and op.context.error == "cleanup failed"


async def test_a_base_exception_from_a_source_cleanup_still_gets_the_whole_teardown() -> None:
    token = CancelationToken()

    async def interrupts_on_close() -> AsyncIterator[int]:
        try:
            for i in range(10):
                yield i
        finally:
            raise KeyboardInterrupt("in cleanup")

    with pytest.raises(KeyboardInterrupt, match="in cleanup"):
        async with Cancelable.with_token(token) as op:
            async for item in op.stream(interrupts_on_close()):
                if item == 1:
                    break
    assert op.status is OperationStatus.FAILED and token.listener_count == 0 and current_operation() is None


async def test_a_stream_of_an_already_cancelled_operation_still_closes_its_source() -> None:
    source = Source(10).gen()
    with pytest.raises(ManualCancelation):
        async with Cancelable() as op:
            op.cancel_sync(message="before the first item")
            async for _ in op.stream(source):
                pytest.fail("no item after a cancel")  # pragma: no cover
    assert source.ag_frame is None  # closed (an async generator's frame is released when it closes)


async def test_an_aiostream_stream_is_iterated_inside_its_context_and_closed() -> None:
    """aiostream warns when a streamer is iterated outside its context: the stream enters
    it, and exits it (closing the source) when the consumer leaves early."""
    closed: list[str] = []

    async def numbers() -> AsyncIterator[int]:
        try:
            for i in range(100):
                yield i
                await anyio.lowlevel.checkpoint()
        finally:
            closed.append("closed")

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Streamer is iterated outside of its context" fails the test
        async with Cancelable() as op:
            async for x in op.stream(aiostream_stream.iterate(numbers())):
                if x == 3:
                    break
        assert closed == ["closed"]
        assert op.partial_result is not None and op.partial_result.count == 4
        closed.clear()
        seen = [x async for x in cancelable_stream(aiostream_stream.iterate(numbers()), timeout=5)]
    assert seen == list(range(100)) and closed == ["closed"]
