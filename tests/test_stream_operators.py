"""The pipeline operators (``streaming/operators.py``): stop_when, item_timeout,
idle_timeout and progress; on asyncio and trio."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

import anyio
import pytest
from aiostream import stream
from reactivex.subject import Subject

from cancelable_rx import (
    CancelationToken,
    TimeoutCancelation,
    TimeoutSource,
    idle_timeout,
    item_timeout,
    progress,
    stop_when,
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


# -- stop_when -----------------------------------------------------------------------------------


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


# -- item_timeout and idle_timeout ------------------------------------------------------------


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


# -- progress ------------------------------------------------------------------------------------


async def test_progress_operator() -> None:
    calls: list[tuple[int, int]] = []
    xs = stream.iterate(Source(10).gen()) | progress.pipe(4, lambda n, item: calls.append((n, item)))
    async with xs.stream() as s:
        assert len([x async for x in s]) == 10
    assert calls == [(4, 3), (8, 7)]
