"""The streams of streams of `cancelable_rx.ops`: ``flatten``, ``concat``, ``switch`` and
``flatmap``, ``concatmap``, ``switchmap`` (``flatten``... of ``func(item)``).

The outer stream is read by a `Crew` producer (only while fewer than ``task_limit`` inner
streams are open); each inner stream is read by a `Pump`, one item per demand, as
aiostream reads them.  The generator never holds a cancel scope or a task group across
``yield``; whatever ends it, every producer has ended and every stream is closed before
the ending goes on.  ``concat`` keeps the order, errors included (an error is raised at its
place); ``flatten`` and ``switch`` raise an error at once; ``switch`` drops the items and
the error of an inner stream it has closed.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any, TypeVar

import anyio
from aiostream import pipable_operator, streamcontext

from .._checks import check_async_iterable, check_callable, check_task_limit
from ._concurrent import check_sources, run_smap
from ._crew import END, ITEM, Crew, Pump, close_shielded, open_source
from ._piping import in_ops, publish

__all__ = ("concat", "concatmap", "flatmap", "flatten", "switch", "switchmap")

T = TypeVar("T")
_START, _DONE = 3, 4  # an inner stream was read from the outer one; the outer one ended
_FLAT, _CONCAT, _SWITCH = 0, 1, 2


@publish
@pipable_operator
@in_ops
def flatten(source: AsyncIterable[AsyncIterable[T]], task_limit: int | None = None) -> AsyncIterator[T]:
    """Generate the items of the inner streams of ``source`` as they arrive (at most
    ``task_limit`` inner streams open at once; the source is read when one is free)."""
    check_async_iterable(source, "source")
    return _combine(source, check_task_limit(task_limit), _FLAT)


@publish
@pipable_operator
@in_ops
def concat(source: AsyncIterable[AsyncIterable[T]], task_limit: int | None = None) -> AsyncIterator[T]:
    """Generate the items of the inner streams of ``source`` in order, one stream after the
    other, while reading up to ``task_limit`` of them ahead (one item each)."""
    check_async_iterable(source, "source")
    return _combine(source, check_task_limit(task_limit), _CONCAT)


@publish
@pipable_operator
@in_ops
def switch(source: AsyncIterable[AsyncIterable[T]]) -> AsyncIterator[T]:
    """Generate the items of the most recent inner stream of ``source``: an inner stream is
    closed when the next one arrives; after the source ends, the last one runs to its end."""
    check_async_iterable(source, "source")
    return _combine(source, None, _SWITCH)


def _inner_streams(
    source: AsyncIterable[T], func: Callable[..., Any], more: tuple[AsyncIterable[T], ...]
) -> AsyncIterator[AsyncIterable[Any]]:
    if inspect.iscoroutinefunction(func):
        async def inner(*args: Any) -> AsyncIterator[Any]:
            async with streamcontext(await func(*args)) as streamer:
                async for item in streamer:
                    yield item

        return run_smap(source, inner, more, False)
    return run_smap(source, func, more, False)


def _check_map_args(source: object, func: object, more: tuple[object, ...]) -> None:
    check_async_iterable(source, "source")
    check_callable(func, "func", "func(item, *more_items) returning an async iterable (sync or async)")
    check_sources(more, "more_sources")


@publish
@pipable_operator
@in_ops
def flatmap(
    source: AsyncIterable[T], func: Callable[..., Any], *more_sources: AsyncIterable[T], task_limit: int | None = None
) -> AsyncIterator[Any]:
    """``flatten`` of ``func(item)`` (an async iterable, or an ``async def`` returning one)."""
    _check_map_args(source, func, more_sources)
    return _combine(_inner_streams(source, func, more_sources), check_task_limit(task_limit), _FLAT)


@publish
@pipable_operator
@in_ops
def concatmap(
    source: AsyncIterable[T], func: Callable[..., Any], *more_sources: AsyncIterable[T], task_limit: int | None = None
) -> AsyncIterator[Any]:
    """``concat`` of ``func(item)`` (an async iterable, or an ``async def`` returning one)."""
    _check_map_args(source, func, more_sources)
    return _combine(_inner_streams(source, func, more_sources), check_task_limit(task_limit), _CONCAT)


@publish
@pipable_operator
@in_ops
def switchmap(source: AsyncIterable[T], func: Callable[..., Any], *more_sources: AsyncIterable[T]) -> AsyncIterator[Any]:
    """``switch`` of ``func(item)`` (an async iterable, or an ``async def`` returning one)."""
    _check_map_args(source, func, more_sources)
    return _combine(_inner_streams(source, func, more_sources), None, _SWITCH)


async def _combine(source: AsyncIterable[AsyncIterable[T]], limit: int | None, mode: int) -> AsyncIterator[T]:
    crew = Crew()
    cancelled = anyio.get_cancelled_exc_class()
    put = crew.put
    slots_tx, slots_rx = crew.channel(math.inf)
    for _ in range(limit or 0):
        slots_tx.send_nowait(None)
    scoped = mode == _SWITCH

    async def feed() -> None:
        aclose = None
        k = 0
        try:
            anext, aclose = await open_source(source)
            while True:
                if limit is not None:
                    await slots_rx.receive()
                try:
                    inner = await anext()
                except StopAsyncIteration:
                    put((_DONE, k, None))
                    return
                except cancelled:
                    raise
                except BaseException as exc:
                    put((_DONE, k, exc))
                    return
                put((_START, k, inner))
                k += 1
        finally:
            await close_shielded(aclose)

    ending: BaseException | None = None
    try:
        crew.spawn(feed)
        get = crew.get
        pumps: dict[int, Pump] = {}
        release = slots_tx.send_nowait
        total = -1  # inner streams, once the outer one has ended
        if mode == _CONCAT:
            head = 0
            held: dict[int, tuple[int, Any]] = {}  # one message per inner stream ahead
            error: BaseException | None = None
            while True:
                entry = held.pop(head, None)
                if entry is None:
                    if head == total:
                        if error is not None:
                            raise error
                        return
                    kind, key, value = await get()
                    if kind == _START:
                        pumps[key] = crew.pump(key, value)
                        continue
                    if kind == _DONE:
                        total, error = key, value
                        continue
                    if key != head:
                        if key is None:
                            raise value
                        held[key] = (kind, value)
                        continue
                else:
                    kind, value = entry
                if kind == ITEM:
                    yield value
                    pumps[head].more()
                elif kind == END:
                    del pumps[head]
                    head += 1
                    release(None)
                else:
                    raise value
        else:
            while True:
                kind, key, value = await get()
                if kind == ITEM:
                    if key in pumps:
                        yield value
                        pumps[key].more()
                elif kind == _START:
                    if scoped:
                        for old in list(pumps):
                            await pumps.pop(old).stop()
                    pumps[key] = crew.pump(key, value, scoped)
                elif kind == END:
                    if pumps.pop(key, None) is not None:
                        release(None)
                        if total >= 0 and not pumps:
                            return
                elif kind == _DONE:
                    if value is not None:
                        raise value
                    total = key
                    if not pumps:
                        return
                elif key is None or key in pumps:  # a superseded inner stream's error is dropped
                    raise value
    except BaseException as exc:
        ending = exc
        raise
    finally:
        await crew.aclose(ending)
