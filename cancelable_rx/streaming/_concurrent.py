"""The concurrent operators of `cancelable_rx.ops`: ``merge``, ``zip``, ``ziplatest``,
``smap``, ``map``/``amap``/``starmap`` (``task_limit``, ``ordered``); the streams of
streams (``flatten``, ``flatmap``...) are in ``_advanced``.

Each one is an async generator in its consumer's task whose producers run in a `Crew`
(a task group owned by a background task, see ``_crew``): the generator only awaits
`Crew.get` between its yields and never holds a cancel scope or a task group across
``yield``.  Sources are read on demand, as aiostream reads them: one item per source at a
time (``merge``, ``zip``, the inner streams of ``flatten``...), at most ``task_limit``
items in flight for ``map`` (read, being mapped, or mapped and waiting for the
consumer).  Whatever ends the stream, the crew is torn down before the ending goes on: every
producer has ended and every source is closed.

Errors come unwrapped, in the consumer's task.  Ordered operators (``map(ordered=True)``,
``concat``, ``concatmap``) raise an error at its place in the order (the items before it
are delivered first); the others raise it as soon as it happens, as aiostream does.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
from aiostream import pipable_operator, sources_operator, streamcontext

from .._checks import check_async_iterable, check_callable, check_task_limit, fail_value
from ._crew import END, FAIL, ITEM, Crew, close_shielded, open_source
from ._piping import in_ops, publish

__all__ = ("amap", "check_sources", "map", "merge", "run_smap", "smap", "starmap", "zip", "ziplatest")

T = TypeVar("T")
U = TypeVar("U")


def check_sources(sources: tuple[object, ...], param: str = "sources") -> None:
    for i, source in enumerate(sources):
        check_async_iterable(source, f"{param}[{i}]")


# -- merge, zip, ziplatest --------------------------------------------------------------------


@publish
@sources_operator
@in_ops
def merge(*sources: AsyncIterable[T]) -> AsyncIterator[T]:
    """Generate the items of all ``sources`` as they arrive; end when all have ended.

    Each source is read one item at a time: its next item is asked for when the consumer
    has taken the last one.  An error of a source is raised at once and the others are
    closed.

    Cancellation: the sources are read by producer tasks outside the consumer's scopes; a
    cancellation of the consumer reaches the stream while it waits for an item, and every
    producer has ended and every source is closed before it propagates.  (The same holds
    for every concurrent operator of `cancelable_rx.ops`.)
    Thread-safety: one event loop thread.
    """
    check_sources(sources)
    return _merge(sources)


async def _merge(sources: tuple[AsyncIterable[T], ...]) -> AsyncIterator[T]:
    if not sources:
        return
    crew = Crew()
    ending: BaseException | None = None
    try:
        pumps = [crew.pump(i, source) for i, source in enumerate(sources)]
        live = len(pumps)
        get = crew.get
        while True:
            kind, key, value = await get()
            if kind == ITEM:
                yield value
                pumps[key].more()
            elif kind == END:
                live -= 1
                if not live:
                    return
            else:
                raise value
    except BaseException as exc:
        ending = exc
        raise
    finally:
        await crew.aclose(ending)


@publish
@sources_operator
@in_ops
def zip(*sources: AsyncIterable[T], strict: bool = False) -> AsyncIterator[tuple[T, ...]]:
    """Generate tuples of one item of each source (read concurrently, so their waits do
    not add up); end with the shortest source.  ``strict=True``: a ``ValueError`` when the
    sources have different lengths."""
    check_sources(sources)
    return _zip(sources, strict)


async def _zip(sources: tuple[AsyncIterable[T], ...], strict: bool) -> AsyncIterator[tuple[T, ...]]:
    n = len(sources)
    if n <= 1:
        if n:
            async with streamcontext(sources[0]) as streamer:
                async for item in streamer:
                    yield (item,)
        return
    crew = Crew()
    ending: BaseException | None = None
    try:
        pumps = [crew.pump(i, source) for i, source in enumerate(sources)]
        get = crew.get
        while True:
            row: list[Any] = [None] * n
            pending, ended = n, 0
            while pending:
                kind, key, value = await get()
                if kind == ITEM:
                    row[key] = value
                elif kind == END:
                    if not strict:
                        return
                    ended += 1
                else:
                    raise value
                pending -= 1
            if ended:
                if ended == n:
                    return
                raise ValueError("The provided sources have different lengths")
            yield tuple(row)
            for pump in pumps:
                pump.more()
    except BaseException as exc:
        ending = exc
        raise
    finally:
        await crew.aclose(ending)


@publish
@sources_operator
@in_ops
def ziplatest(*sources: AsyncIterable[T], partial: bool = True, default: T | None = None) -> AsyncIterator[tuple[T | None, ...]]:
    """On each item of any source, generate a tuple of the latest item of every source
    (``default`` for a source that has produced nothing yet; ``partial=False`` waits until
    every source has produced one).  Ends when all sources have ended."""
    check_sources(sources)
    return _ziplatest(sources, partial, default)


async def _ziplatest(sources: tuple[AsyncIterable[T], ...], partial: bool, default: Any) -> AsyncIterator[tuple[Any, ...]]:
    n = len(sources)
    if not n:
        return
    crew = Crew()
    ending: BaseException | None = None
    try:
        pumps = [crew.pump(i, source) for i, source in enumerate(sources)]
        latest = [default] * n
        seen = [False] * n
        missing = live = n
        get = crew.get
        while True:
            kind, key, value = await get()
            if kind == ITEM:
                latest[key] = value
                if not seen[key]:
                    seen[key] = True
                    missing -= 1
                if partial or not missing:
                    yield tuple(latest)
                pumps[key].more()
            elif kind == END:
                live -= 1
                if not live:
                    return
            else:
                raise value
    except BaseException as exc:
        ending = exc
        raise
    finally:
        await crew.aclose(ending)


# -- map -----------------------------------------------------------------------------------------


@publish
@pipable_operator
@in_ops
def smap(source: AsyncIterable[T], func: Callable[..., U], *more_sources: AsyncIterable[T]) -> AsyncIterator[U]:
    """Apply the synchronous ``func`` to the items of one or more sources (as positional
    arguments; more sources are read concurrently, as by `zip`)."""
    check_async_iterable(source, "source")
    check_callable(func, "func", "func(item, *more_items), synchronous")
    check_sources(more_sources, "more_sources")
    return run_smap(source, func, more_sources, False)


async def run_smap(source: AsyncIterable[Any], func: Callable[..., U], more: tuple[Any, ...], star: bool) -> AsyncIterator[U]:
    if more:
        source, star = _zip((source, *more), False), True
    async with streamcontext(source) as streamer:
        if star:
            async for args in streamer:
                yield func(*args)
        else:
            async for item in streamer:
                yield func(item)


@publish
@pipable_operator
@in_ops
def map(
    source: AsyncIterable[T],
    func: Callable[..., Any],
    *more_sources: AsyncIterable[T],
    ordered: bool = True,
    task_limit: int | None = None,
) -> AsyncIterator[Any]:
    """Apply ``func`` to the items of one or more sources (as positional arguments; more
    sources are read concurrently, as by `zip`).

    An ``async def`` function runs concurrently, as `amap`: at most ``task_limit`` calls
    at once (None: no limit; 1: one at a time), results in the sources' order
    (``ordered=True``) or as they complete.  A synchronous function is applied in line
    (`smap`); ``ordered=False`` or a ``task_limit`` with it is a ``ValueError``.
    """
    check_async_iterable(source, "source")
    check_callable(func, "func", "func(item, *more_items), sync or async")
    check_sources(more_sources, "more_sources")
    limit = check_task_limit(task_limit)
    if inspect.iscoroutinefunction(func):
        return _amap(source, func, more_sources, bool(ordered), limit, False)
    if not ordered:
        fail_value("ordered", "True (the default) when `func` is synchronous", ordered,
                   "use an async function (async def) to map concurrently")
    if limit is not None:
        fail_value("task_limit", "None (the default) when `func` is synchronous", task_limit,
                   "use an async function (async def) to map concurrently")
    return run_smap(source, func, more_sources, False)


@publish
@pipable_operator
@in_ops
def amap(
    source: AsyncIterable[T],
    corofn: Callable[..., Awaitable[U]],
    *more_sources: AsyncIterable[T],
    ordered: bool = True,
    task_limit: int | None = None,
) -> AsyncIterator[U]:
    """Apply the async function ``corofn`` to the items of one or more sources,
    concurrently: at most ``task_limit`` items in flight (read, being mapped, or mapped and
    waiting for the consumer; None: no limit, 1: one at a time).  Results come in the
    sources' order (``ordered=True``; an error of a call or of the source is raised at its
    place) or as they complete (an error is raised at once).

    The source is read only when a slot is free; calls run in worker tasks that are reused,
    with the consumer's context variables.

    Cancellation: as `merge`: the calls in flight are cancelled and the source is closed
    before the consumer's cancellation propagates.
    """
    check_async_iterable(source, "source")
    check_callable(corofn, "corofn", "await corofn(item, *more_items)")
    check_sources(more_sources, "more_sources")
    return _amap(source, corofn, more_sources, bool(ordered), check_task_limit(task_limit), False)


@publish
@pipable_operator
@in_ops
def starmap(
    source: AsyncIterable[tuple[T, ...]], func: Callable[..., Any], ordered: bool = True, task_limit: int | None = None
) -> AsyncIterator[Any]:
    """Apply ``func`` to the unpacked items of ``source`` (``func(*item)``): an ``async
    def`` function concurrently, as `amap`; a synchronous one in line (then ``ordered``
    and ``task_limit`` are ignored, as in aiostream)."""
    check_async_iterable(source, "source")
    check_callable(func, "func", "func(*item), sync or async")
    limit = check_task_limit(task_limit)
    if inspect.iscoroutinefunction(func):
        return _amap(source, func, (), bool(ordered), limit, True)
    return run_smap(source, func, (), True)


async def _amap(
    source: AsyncIterable[Any], corofn: Callable[..., Awaitable[U]], more: tuple[Any, ...],
    ordered: bool, limit: int | None, star: bool,
) -> AsyncIterator[U]:  # fmt: skip
    if more:
        source, star = _zip((source, *more), False), True
    crew = Crew()
    cancelled = anyio.get_cancelled_exc_class()
    put = crew.put
    work_tx, work_rx = crew.channel(0)
    slots_tx, slots_rx = crew.channel(math.inf)
    for _ in range(limit or 0):
        slots_tx.send_nowait(None)

    async def worker(idx: int, arg: Any) -> None:
        while True:
            try:
                value = await (corofn(*arg) if star else corofn(arg))
            except cancelled:
                raise
            except BaseException as exc:
                put((FAIL, idx, exc))
            else:
                put((ITEM, idx, value))
            try:
                idx, arg = await work_rx.receive()
            except anyio.EndOfStream:
                return

    async def feed() -> None:
        aclose = None
        idx = 0
        try:
            anext, aclose = await open_source(source)
            while True:
                if limit is not None:
                    await slots_rx.receive()
                try:
                    arg = await anext()
                except StopAsyncIteration:
                    put((END, idx, None))
                    return
                except cancelled:
                    raise
                except BaseException as exc:  # the source's error, at its place
                    put((END, idx, exc))
                    return
                try:
                    work_tx.send_nowait((idx, arg))
                except anyio.WouldBlock:  # no idle worker: one more (at most task_limit)
                    crew.spawn(worker, idx, arg)
                idx += 1
        finally:
            work_tx.close()
            await close_shielded(aclose)

    ending: BaseException | None = None
    try:
        crew.spawn(feed)
        get = crew.get
        release = slots_tx.send_nowait
        if ordered:
            waiting: dict[int, tuple[int, Any]] = {}
            nxt, total, error = 0, -1, None
            while True:
                entry = waiting.pop(nxt, None)
                if entry is None:
                    if nxt == total:
                        if error is not None:
                            raise error
                        return
                    kind, key, value = await get()
                    if kind == END:
                        total, error = key, value
                        continue
                    if key != nxt:
                        if key is None:  # a failure outside any call
                            raise value
                        waiting[key] = (kind, value)
                        continue
                else:
                    kind, value = entry
                nxt += 1
                if kind == FAIL:
                    raise value
                yield value
                release(None)
        else:
            delivered, total = 0, -1
            while delivered != total:
                kind, key, value = await get()
                if kind == ITEM:
                    delivered += 1
                    yield value
                    release(None)
                elif kind == END:
                    if value is not None:
                        raise value
                    total = key
                else:
                    raise value
    except BaseException as exc:
        ending = exc
        raise
    finally:
        await crew.aclose(ending)
