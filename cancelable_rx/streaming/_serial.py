"""The sequential operators of `cancelable_rx.ops`: creation (``iterate``, ``range``,
``count``, ``repeat``, ``never``), time (``spaceout``, ``delay``, ``timeout``,
``chunks``) and ``cycle``.

Each one is a plain async generator in its consumer's task, built on anyio only (no
asyncio call, so it runs on trio).  None holds a cancel scope across ``yield``: the scope
of ``timeout`` surrounds each fetch, and ``chunks`` with a time window reads its source in
a `Crew` producer so that a window can end without interrupting a fetch.  Each closes its
source (aiostream's ``streamcontext``) whatever ends it.
"""

from __future__ import annotations

import builtins
import itertools
import math
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from datetime import timedelta
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
from aiostream import operator, pipable_operator, streamcontext

from .._checks import (
    check_async_iterable,
    check_non_negative_int,
    check_positive_int,
    check_timeout,
    fail_type,
)
from ._crew import END, FAIL, Crew
from ._piping import in_ops, publish

__all__ = (
    "chunks", "count", "cycle", "delay", "iterate", "never", "range", "repeat", "spaceout", "timeout",
)  # fmt: skip

T = TypeVar("T")
U = TypeVar("U")
_checkpoint = anyio.lowlevel.checkpoint


# -- creation ----------------------------------------------------------------------------


async def _from_iterable(it: Iterable[T]) -> AsyncIterator[T]:
    for item in it:
        await _checkpoint()  # as aiostream's asyncio.sleep(0): the loop runs between items
        yield item


async def _from_async(source: AsyncIterable[T]) -> AsyncIterator[T]:
    async with streamcontext(source) as streamer:
        async for item in streamer:
            yield item


def _spaced(agen: AsyncIterator[T], interval: float) -> AsyncIterator[T]:
    return _spaceout(agen, interval) if interval else agen


@publish
@operator
@in_ops
def iterate(it: AsyncIterable[T] | Iterable[T]) -> AsyncIterator[T]:
    """Generate the items of an async iterable (closed when the stream ends) or of a plain
    iterable (with a checkpoint before each item, so the loop runs between items)."""
    if isinstance(it, AsyncIterable):
        return _from_async(it)
    if isinstance(it, Iterable):
        return _from_iterable(it)
    fail_type("it", "an iterable or an async iterable", it, "e.g. ops.iterate([1, 2, 3])")


@publish
@operator
@in_ops
def range(*args: int, interval: float | timedelta = 0.0) -> AsyncIterator[int]:
    """Generate ``builtins.range(*args)``; ``interval`` seconds between items (optional)."""
    seconds = check_timeout(interval, "interval")
    return _spaced(_from_iterable(builtins.range(*args)), seconds)


@publish
@operator
@in_ops
def count(start: int = 0, step: int = 1, *, interval: float | timedelta = 0.0) -> AsyncIterator[int]:
    """Generate ``start``, ``start + step``... forever; ``interval`` seconds between items."""
    seconds = check_timeout(interval, "interval")
    return _spaced(_from_iterable(itertools.count(start, step)), seconds)


@publish
@operator
@in_ops
def repeat(value: T, times: int | None = None, *, interval: float | timedelta = 0.0) -> AsyncIterator[T]:
    """Generate ``value`` ``times`` times (forever if None); ``interval`` seconds between items."""
    seconds = check_timeout(interval, "interval")
    if times is None:
        return _spaced(_from_iterable(itertools.repeat(value)), seconds)
    check_non_negative_int(times, "times", "or None to repeat forever")
    return _spaced(_from_iterable(itertools.repeat(value, times)), seconds)


@publish
@operator
@in_ops
async def never() -> AsyncIterator[Any]:
    """Generate nothing and never end (until cancelled)."""
    await anyio.sleep_forever()
    yield  # pragma: no cover - unreachable, makes this an async generator


# -- transformation ------------------------------------------------------------------------


@publish
@pipable_operator
@in_ops
def cycle(source: AsyncIterable[T]) -> AsyncIterator[T]:
    """Iterate ``source`` again and again (it must be re-iterable, e.g. a stream; an async
    generator is exhausted after the first pass and the stream then only checkpoints)."""
    return _cycle(check_async_iterable(source, "source"))


async def _cycle(source: AsyncIterable[T]) -> AsyncIterator[T]:
    while True:
        async with streamcontext(source) as streamer:
            async for item in streamer:
                yield item
        await _checkpoint()  # an empty source must not block the loop


# -- time ------------------------------------------------------------------------------------


@publish
@pipable_operator
@in_ops
def spaceout(source: AsyncIterable[T], interval: float | timedelta) -> AsyncIterator[T]:
    """Delay items so that at least ``interval`` seconds separate two of them (counted from
    when the consumer asks for the next one)."""
    check_async_iterable(source, "source")
    return _spaceout(source, check_timeout(interval, "interval"))


async def _spaceout(source: AsyncIterable[T], interval: float) -> AsyncIterator[T]:
    current_time = anyio.current_time
    next_at = -math.inf
    async with streamcontext(source) as streamer:
        async for item in streamer:
            wait = next_at - current_time()
            await anyio.sleep(wait if wait > 0 else 0)
            yield item
            next_at = current_time() + interval


@publish
@pipable_operator
@in_ops
def delay(source: AsyncIterable[T], delay: float | timedelta) -> AsyncIterator[T]:
    """Wait ``delay`` seconds, then generate the items of ``source``."""
    check_async_iterable(source, "source")
    return _delay(source, check_timeout(delay, "delay"))


async def _delay(source: AsyncIterable[T], seconds: float) -> AsyncIterator[T]:
    await anyio.sleep(seconds)
    async with streamcontext(source) as streamer:
        async for item in streamer:
            yield item


@publish
@pipable_operator
@in_ops
def timeout(source: AsyncIterable[T], timeout: float | timedelta) -> AsyncIterator[T]:
    """Raise ``TimeoutError`` when the source takes more than ``timeout`` seconds to produce
    an item (per item; the consumer's time does not count).  The interrupted fetch is
    cancelled, which ends the source.

    Cancellation: a cancel scope with the deadline surrounds each fetch, never a ``yield``.
    """
    check_async_iterable(source, "source")
    return _timeout(source, check_timeout(timeout, "timeout"))


async def _timeout(source: AsyncIterable[T], seconds: float) -> AsyncIterator[T]:
    async with streamcontext(source) as streamer:
        anext = streamer.__anext__
        while True:
            with anyio.fail_after(seconds):
                try:
                    item = await anext()
                except StopAsyncIteration:
                    return
            yield item


@publish
@pipable_operator
@in_ops
def chunks(source: AsyncIterable[T], n: int, interval: float | timedelta | None = None) -> AsyncIterator[list[T]]:
    """Generate lists of ``n`` items (the last one may be shorter).

    With ``interval`` (seconds), a chunk is also sent when ``interval`` seconds have passed
    since its first item arrived, however few items it has (a time window; never an empty
    chunk).  The source is then read by a producer task, one item ahead at most, so the
    window can close while a fetch is pending without interrupting it.

    As in aiostream, an error of the source is raised at once (the items of the chunk being
    filled are dropped).
    """
    check_async_iterable(source, "source")
    check_positive_int(n, "n", "e.g. chunks(xs, 100)")
    if interval is None:
        return _chunks(source, n)
    return _timed_chunks(source, n, check_timeout(interval, "interval", allow_zero=False))


async def _chunks(source: AsyncIterable[T], n: int) -> AsyncIterator[list[T]]:
    async with streamcontext(source) as streamer:
        anext = streamer.__anext__
        while True:
            chunk: list[T] = []
            try:
                while len(chunk) < n:
                    chunk.append(await anext())
            except StopAsyncIteration:
                if chunk:
                    yield chunk
                return
            yield chunk


async def _timed_chunks(source: AsyncIterable[T], n: int, interval: float) -> AsyncIterator[list[T]]:
    crew = Crew()
    ending: BaseException | None = None
    try:
        pump = crew.pump(0, source)
        get = crew.get
        chunk: list[T] = []
        done = False
        while not done:
            with anyio.CancelScope(deadline=math.inf) as window:
                while True:
                    kind, _, value = await get()
                    if kind == END:
                        done = True
                        break
                    if kind == FAIL:
                        raise value
                    chunk.append(value)
                    if len(chunk) == n:
                        break
                    if len(chunk) == 1:
                        window.deadline = anyio.current_time() + interval
                    pump.more()
            if chunk:
                full = len(chunk) == n
                out, chunk = chunk, []
                yield out
                if full and not done:
                    pump.more()
    except BaseException as exc:
        ending = exc
        raise
    finally:
        await crew.aclose(ending)
