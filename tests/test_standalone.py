"""``cancelable_stream`` (``_standalone.py``) and the detached streams behind it: no
``async with``, a scope around each fetch; on asyncio and trio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

import anyio
import pytest

from cancelable_rx import (
    Cancelable,
    CancelationReason,
    CancelationToken,
    ConditionCancelation,
    ManualCancelation,
    OperationStatus,
    TimeoutCancelation,
    cancelable_stream,
)
from cancelable_rx.streaming import CancelableStream
from cancelable_rx.streaming._iterator import FusedIterator

pytestmark = pytest.mark.anyio


class Source:
    """A real async generator source that records whether it was closed (and sets
    ``fetching``, if given, each time it starts producing an item)."""

    def __init__(self, n: int, delay: float = 0.0, fetching: anyio.Event | None = None) -> None:
        self.n, self.delay, self.closed, self.produced = n, delay, False, 0
        self.fetching = fetching

    async def gen(self) -> AsyncIterator[int]:
        try:
            for i in range(self.n):
                if self.fetching is not None:
                    self.fetching.set()
                if self.delay:
                    await anyio.sleep(self.delay)
                self.produced += 1
                yield i
        finally:
            self.closed = True


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
    fetching = anyio.Event()

    async def cancel_once_fetching() -> None:
        await fetching.wait()  # the consumer is waiting in the source's 10 s fetch
        await token.cancel(message="stop feed")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_once_fetching)
            s = cancelable_stream(Source(10, delay=10, fetching=fetching).gen(), token=token, report_interval=1,
                                  on_progress=lambda n, item: counts.append((n, item)))
            with pytest.raises(ManualCancelation, match="stop feed"):
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
    stop = anyio.Event()
    op = Cancelable.with_condition(stop.is_set, 0.005)
    s = CancelableStream(FusedIterator(op, Source(10_000, 0.001).gen(), None, False, detached=True))
    with anyio.fail_after(5), pytest.raises(ConditionCancelation):
        async for i in s:
            if i == 3:
                stop.set()
    assert op.status is OperationStatus.CANCELLED and op.cancel_reason is CancelationReason.CONDITION


# -- ending early and sources that never await ------------------------------------------


async def test_timeout_reaches_a_source_that_never_awaits() -> None:
    async def busy() -> AsyncIterator[int]:
        i = 0
        while True:  # never awaits: only the stream's periodic checkpoint lets the deadline in
            i += 1
            yield i

    start = anyio.current_time()
    with anyio.fail_after(5), pytest.raises(TimeoutCancelation):
        async for _ in cancelable_stream(busy(), timeout=0.05):
            pass
    assert anyio.current_time() - start < 1.5


async def test_a_plain_break_ends_the_operation_and_closes_the_source() -> None:
    token = CancelationToken()
    sources, streams = [], []
    for _ in range(1000):
        src = Source(100)
        s = cancelable_stream(src.gen(), token=token, buffer_partial=True)
        async for item in s:
            if item == 2:
                break  # no aclosing: leaving the loop must be enough
        sources.append(src)
        streams.append(s)
    with anyio.fail_after(5):
        while not all(src.closed for src in sources):  # closed in the background, on the loop
            await anyio.lowlevel.checkpoint()
    assert token.listener_count == 0  # no operation still listens to the shared token
    for s in streams:
        op = s.operation
        assert op.status is OperationStatus.COMPLETED
        assert op.partial_result.count == 3 and not op.partial_result.completed
        assert op.partial_result.buffer == [0, 1, 2]


async def test_a_break_inside_aclosing_closes_the_source_before_going_on() -> None:
    src = Source(100)
    s = cancelable_stream(src.gen())
    async with aclosing(s) as stream:
        async for item in stream:
            if item == 1:
                break
    assert src.closed and s.operation.status is OperationStatus.COMPLETED


# -- the cursor: finalizers, temporaries, failures between fetches -------------------------


async def test_dropping_the_cursor_inside_a_locked_section_does_not_deadlock() -> None:
    import gc

    from cancelable_rx import _operation

    class Holder:
        pass

    s = cancelable_stream(Source(10).gen())
    it = aiter(s)
    await anext(it)
    assert s.operation.context is not None  # a record exists: ending takes the engine's lock
    h = Holder()
    h.it, h.me = it, h  # a reference cycle: only a GC pass frees the cursor
    del it, h
    with _operation._LOCK:  # a GC pass can run inside any locked section of the engine
        gc.collect()
    with anyio.fail_after(5):
        while s.operation.status is OperationStatus.RUNNING:
            await anyio.lowlevel.checkpoint()
    assert s.operation.status is OperationStatus.COMPLETED


async def test_a_temporary_cursor_lives_while_it_fetches() -> None:
    token = CancelationToken()
    s = cancelable_stream(Source(3).gen(), token=token)
    assert await anext(aiter(s)) == 0  # the cursor is a temporary of this line
    with anyio.fail_after(5):
        while s.operation.status is OperationStatus.RUNNING:
            await anyio.lowlevel.checkpoint()
    assert s.operation.status is OperationStatus.COMPLETED and token.listener_count == 0


async def test_a_source_failure_between_fetches_reaches_the_consumer() -> None:
    calls = 0

    def broken() -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt("from the condition")
        return False

    s = cancelable_stream(Source(10_000, 0.001).gen())
    s.operation.add_source(Cancelable.with_condition(broken, 0.002)._sources[0])
    with anyio.fail_after(5), pytest.raises(KeyboardInterrupt, match="from the condition"):
        async for _ in s:
            pass
    assert s.operation.status is OperationStatus.FAILED
    assert s.operation.context.error == "from the condition"


async def test_a_cancel_recorded_during_the_last_fetch_is_never_a_silent_end() -> None:
    token = CancelationToken()

    async def last_item_then_cancel() -> AsyncIterator[int]:
        yield 1
        token.cancel_sync(message="during the last fetch")  # no checkpoint before it ends

    with pytest.raises(ManualCancelation, match="during the last fetch"):
        async for _ in cancelable_stream(last_item_then_cancel(), token=token):
            pass


async def test_a_body_error_wins_over_a_pending_cancel_in_a_detached_stream_too() -> None:
    token = CancelationToken()

    async def breaks() -> AsyncIterator[int]:
        yield 1
        token.cancel_sync(message="requested")
        raise ValueError("source broke")

    s = cancelable_stream(breaks(), token=token)
    with pytest.raises(ValueError, match="source broke"):
        async for _ in s:
            pass
    assert s.operation.status is OperationStatus.FAILED and s.operation.context.error == "source broke"


async def test_timeout_and_token_keep_the_callers_id_and_name() -> None:
    s = cancelable_stream(Source(1).gen(), timeout=5, token=CancelationToken(), operation_id="job-7", name="import")
    assert s.operation.id == "job-7" and s.operation.name == "import"
