"""Cancelable streams, progress, operators and bridges, on asyncio and trio."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import aclosing

import anyio
import pytest
import reactivex
from aiostream import pipe, stream
from reactivex.subject import Subject

from cancelable_rx import (
    Cancelable,
    CancelationError,
    CancelationReason,
    CancelationToken,
    ConditionCancelation,
    ManualCancelation,
    OperationStatus,
    PartialResult,
    ProgressEvent,
    TimeoutCancelation,
    TimeoutSource,
    cancelable_stream,
    idle_timeout,
    item_timeout,
    observe,
    progress,
    stop_when,
    to_observable,
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


async def test_stream_outside_block_is_a_clear_error() -> None:
    op = Cancelable()
    with pytest.raises(RuntimeError, match="inside `async with op:`"):
        async for _ in op.stream(Source(2).gen()):
            pass  # pragma: no cover
    await op.stream(Source(1).gen()).aclose()


async def test_sync_iterables_are_accepted() -> None:
    async with Cancelable() as op:
        assert [x async for x in op.stream(range(5), buffer_partial=False)] == [0, 1, 2, 3, 4]
    assert op.partial_result == PartialResult(5, True, None)


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"report_interval": 0}, ValueError, r"`report_interval` must be an int > 0.*got 0"),
        ({"report_interval": -5}, ValueError, r"got -5"),
        ({"report_interval": 2.5}, TypeError, r"`report_interval` must be an int.*got 2.5"),
        ({"report_interval": True}, TypeError, r"got True"),
        ({"buffer_size": 0}, ValueError, r"`buffer_size` must be an int > 0"),
    ],
)
async def test_bad_stream_arguments(kwargs: dict[str, object], exc: type[Exception], pattern: str) -> None:
    op = Cancelable()
    with pytest.raises(exc, match=pattern):
        op.stream(Source(1).gen(), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [42, None, "text", object()])
async def test_non_iterable_source_is_rejected(bad: object) -> None:
    with pytest.raises(TypeError, match="`async_iter` must be an async iterable"):
        Cancelable().stream(bad)


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
    async with op:
        op.progress.subscribe(events.append)
        started = anyio.current_time()
        async for _ in op.stream(Source(50).gen(), report_interval=10):
            pass
        assert anyio.current_time() - started < 0.15  # blocking even once would take >= 0.2 s
        with anyio.fail_after(5):
            await done.wait()
    assert [e.count for e in events] == [10, 20, 30, 40, 50]
    assert events[0].message == "Processed 10 items" and events[0].metadata == {"count": 10, "latest_item": 9}
    assert sync_calls == [10, 20, 30, 40, 50]
    assert 1 <= len(async_calls) < 5  # conflated: the newest pending event wins
    assert op.progress.latest is events[-1]


async def test_failing_progress_subscriber_is_isolated(caplog: pytest.LogCaptureFixture) -> None:
    def bad(event: object) -> None:
        raise RuntimeError("subscriber blew up")

    with caplog.at_level(logging.ERROR, logger="cancelable_rx"):
        async with Cancelable().on_progress(lambda *a: 1 / 0) as op:
            op.progress.subscribe(bad)
            got = [x async for x in op.stream(Source(20).gen(), report_interval=5)]
    assert got == list(range(20))
    assert "subscriber blew up" in caplog.text and "ZeroDivisionError" in caplog.text


async def test_progress_async_iterator_view() -> None:
    async with Cancelable() as op:
        view = op.progress.aiter(maxsize=2)
        async for _ in op.stream(Source(50).gen(), report_interval=10):
            pass
        await view.aclose()
        got = [e async for e in view]
    assert got == []  # closed view ends
    async with Cancelable() as op2:
        view2 = op2.progress.aiter(maxsize=2)
        async for _ in op2.stream(Source(50).gen(), report_interval=10):
            pass
        first = await view2.__anext__()
        second = await view2.__anext__()
        await view2.aclose()
    assert (first.count, second.count) == (40, 50) and view2.dropped == 3


async def test_cancelable_stream_helper_timeout() -> None:
    src = Source(1000, delay=0.01)
    s = cancelable_stream(src.gen(), timeout=0.1, buffer_partial=True)
    seen = 0
    with pytest.raises(TimeoutCancelation):
        async for _ in s:
            seen += 1
    op = s.operation
    assert op.status is OperationStatus.CANCELLED and op.cancel_reason is CancelationReason.TIMEOUT
    assert op.partial_result.count == seen
    assert src.closed  # the cancellation reached the generator and ended it
    await s.aclose()  # idempotent


async def test_cancelable_stream_helper_token_interrupts_pending_fetch() -> None:
    token = CancelationToken()
    counts: list[tuple[int, int]] = []

    async def cancel_soon() -> None:
        await anyio.sleep(0.05)
        await token.cancel(message="stop feed")

    async with anyio.create_task_group() as tg:
        tg.start_soon(cancel_soon)
        s = cancelable_stream(Source(10, delay=10).gen(), token=token, report_interval=1,
                              on_progress=lambda n, item: counts.append((n, item)))
        with anyio.fail_after(5), pytest.raises(ManualCancelation, match="stop feed"):
            async with aclosing(s):
                async for _ in s:
                    pass  # pragma: no cover
    assert counts == []


async def test_cancelable_stream_helper_completes_and_reports() -> None:
    counts: list[int] = []
    s = cancelable_stream(Source(6).gen(), report_interval=2, on_progress=lambda n, item: counts.append(n))
    assert [x async for x in s] == list(range(6))
    assert counts == [2, 4, 6] and s.operation.status is OperationStatus.COMPLETED


async def test_detached_stream_polls_conditions_in_the_background() -> None:
    from cancelable_rx.streaming import CancelableStream
    from cancelable_rx.streaming._iterator import FusedIterator

    stop = anyio.Event()
    op = Cancelable.with_condition(stop.is_set, 0.005)
    s = CancelableStream(FusedIterator(op, Source(10_000, 0.001).gen(), None, False, detached=True))
    with anyio.fail_after(5), pytest.raises(ConditionCancelation):
        async for i in s:
            if i == 3:
                stop.set()
    assert op.status is OperationStatus.CANCELLED and op.cancel_reason is CancelationReason.CONDITION


async def test_stop_when_ends_stream_on_source() -> None:
    subject: Subject[str] = Subject()

    def fire_later() -> None:
        subject.on_next("stop")

    xs = stream.iterate(Source(1000, delay=0.01).gen()) | stop_when.pipe(subject)
    got: list[int] = []
    with anyio.fail_after(5):
        async with xs.stream() as streamer:
            async for x in streamer:
                got.append(x)
                if x == 3:
                    threading.Thread(target=fire_later).start()
    assert 4 <= len(got) < 1000 and got[:4] == [0, 1, 2, 3]


async def test_stop_when_timeout_and_token() -> None:
    xs = stream.iterate(Source(1000, delay=0.01).gen()) | stop_when.pipe(TimeoutSource(0.05))
    async with xs.stream() as streamer:
        got = [x async for x in streamer]
    assert 0 < len(got) < 1000
    token = CancelationToken()
    await token.cancel()
    ys = stream.iterate(Source(10).gen()) | stop_when.pipe(token)
    async with ys.stream() as streamer:
        assert [x async for x in streamer] == []


async def test_stop_when_rejects_non_sources() -> None:
    with pytest.raises(TypeError, match="stop_when"):
        async with (stream.iterate(Source(1).gen()) | stop_when.pipe(42)).stream() as s:
            async for _ in s:
                pass  # pragma: no cover


async def test_item_timeout() -> None:
    xs = stream.iterate(Source(5, delay=0.2).gen()) | item_timeout.pipe(0.05)
    with pytest.raises(TimeoutCancelation, match="no item within 0.05s"):
        async with xs.stream() as s:
            async for _ in s:
                pass  # pragma: no cover
    fast = stream.iterate(Source(5).gen()) | item_timeout.pipe(1)
    async with fast.stream() as s:
        assert [x async for x in s] == [0, 1, 2, 3, 4]
    bad = stream.iterate(Source(1).gen()) | item_timeout.pipe(-1)
    with pytest.raises(ValueError, match="timeout"):
        async with bad.stream() as s:
            async for _ in s:
                pass  # pragma: no cover


async def test_idle_timeout_counts_consumer_time() -> None:
    xs = stream.iterate(Source(5).gen()) | idle_timeout.pipe(0.05)
    got: list[int] = []
    with pytest.raises(TimeoutCancelation, match="idle"):
        async with xs.stream() as s:
            async for x in s:
                got.append(x)
                await anyio.sleep(0.1)  # the consumer stalls
    assert got == [0]


async def test_progress_operator() -> None:
    calls: list[tuple[int, int]] = []
    xs = stream.iterate(Source(10).gen()) | progress.pipe(4, lambda n, item: calls.append((n, item)))
    async with xs.stream() as s:
        assert len([x async for x in s]) == 10
    assert calls == [(4, 3), (8, 7)]


async def test_observe_bridge_from_thread_and_errors() -> None:
    subject: Subject[int] = Subject()
    it = observe(subject, maxsize=10)

    def produce() -> None:
        for i in range(3):
            subject.on_next(i)
        subject.on_completed()

    threading.Thread(target=produce).start()
    with anyio.fail_after(5):
        assert [x async for x in it] == [0, 1, 2]
    failing = observe(reactivex.throw(ValueError("bad feed")))
    with pytest.raises(ValueError, match="bad feed"):
        await failing.__anext__()
    with pytest.raises(ValueError, match="maxsize"):
        observe(subject, maxsize=0)


async def test_to_observable_bridge() -> None:
    got: list[int] = []
    completed = anyio.Event()
    async with Cancelable() as op:
        obs = to_observable(op.stream(Source(4).gen()))
        obs.subscribe(got.append, on_completed=completed.set)
        with anyio.fail_after(5):
            await completed.wait()
    assert got == [0, 1, 2, 3]
    with pytest.raises(TypeError, match="async iterable"):
        to_observable([1, 2])  # type: ignore[arg-type]


async def test_to_observable_dispose_stops_iteration() -> None:
    src = Source(10_000, delay=0.001)
    got: list[int] = []
    sub = to_observable(src.gen()).subscribe(got.append)
    await anyio.sleep(0.05)
    sub.dispose()
    await anyio.sleep(0.02)
    n = len(got)
    await anyio.sleep(0.05)
    assert len(got) == n < 10_000


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
