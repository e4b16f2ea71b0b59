"""aiostream operators that make cancelation part of a pipeline.

All are plain async-generator operators: trio-safe, and none holds a cancel scope or a
task group across ``yield`` (a scope surrounds each ``await anext(...)`` only).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from aiostream import pipable_operator, streamcontext

from .._checks import check_callable, check_timeout
from .._exceptions import TimeoutCancelation
from .._loop import capture
from .._models import CancelEvent
from .._plan import compile_plan
from ..sources._hosts import BackgroundHost
from ..sources.base import as_source
from ._iterator import check_report_interval

if TYPE_CHECKING:
    from .._operation import Operation

__all__ = ("idle_timeout", "item_timeout", "progress", "stop_when")

logger = logging.getLogger("cancelable_rx")
T = TypeVar("T")
_INF = float("inf")


@pipable_operator
async def stop_when(source: AsyncIterable[T], trigger: Any) -> AsyncIterator[T]:
    """End the stream (normally, like Rx ``takeUntil``) when ``trigger`` fires.

    ``trigger`` is any cancelation source, token or reactivex Observable (composites
    included; conditions poll in a background task, timeouts count from the first
    item request).  A pending ``anext`` is interrupted when it fires; a soft source's stop
    request ends the stream too.
    Thread-safety: the trigger may fire from any thread.
    """
    src = as_source(trigger, "stop_when(trigger)")
    handle = capture()
    plan = compile_plan([src])
    deadline = handle.now() + plan.timeout.timeout_seconds if plan.timeout is not None else _INF
    state: dict[str, Any] = {"fired": False, "scope": None, "failure": None}

    def cancel_current() -> None:
        scope = state["scope"]
        if scope is not None:
            scope.cancel()

    def on_fire(_: CancelEvent) -> None:
        state["fired"] = True
        handle.call(cancel_current)

    def on_fail(exc: BaseException) -> None:
        state["failure"] = exc
        on_fire(None)  # type: ignore[arg-type]

    host = BackgroundHost(handle, on_fail, lambda grace, reason, message, source: on_fire(None))  # type: ignore[arg-type]
    src._listen(on_fire)
    stop = src.arm(host)
    try:
        async with streamcontext(source) as streamer:
            while not state["fired"]:
                scope = state["scope"] = handle.scope_cls(deadline=deadline)
                with scope:
                    try:
                        item = await streamer.__anext__()
                    except StopAsyncIteration:
                        return
                state["scope"] = None
                if state["failure"] is not None:
                    raise state["failure"]
                if scope.cancelled_caught:
                    if plan.timeout is not None and not state["fired"]:
                        plan.timeout.fire()
                    return
                yield item
    finally:
        src._unlisten(on_fire)
        if stop is not None:
            stop()
        host.close()


@pipable_operator
async def item_timeout(source: AsyncIterable[T], timeout: float | timedelta) -> AsyncIterator[T]:
    """Raise `TimeoutCancelation` if the source takes longer than ``timeout``
    seconds to produce any one item (time spent by the consumer does not count)."""
    seconds = check_timeout(timeout)
    async with streamcontext(source) as streamer:
        while True:
            with anyio.move_on_after(seconds) as scope:
                try:
                    item = await streamer.__anext__()
                except StopAsyncIteration:
                    return
            if scope.cancelled_caught:
                raise TimeoutCancelation(seconds, f"no item within {seconds}s")
            yield item


@pipable_operator
async def idle_timeout(source: AsyncIterable[T], timeout: float | timedelta) -> AsyncIterator[T]:
    """Raise `TimeoutCancelation` if more than ``timeout`` seconds pass between
    two items as seen by the pipeline (the consumer's time counts: a stalled pipeline
    is idle whichever side stalls)."""
    seconds = check_timeout(timeout)
    current_time = anyio.current_time
    async with streamcontext(source) as streamer:
        last = current_time()
        while True:
            if current_time() >= last + seconds:  # the consumer stalled: no checkpoint needed
                raise TimeoutCancelation(seconds, f"stream idle for more than {seconds}s")
            with anyio.CancelScope(deadline=last + seconds) as scope:
                try:
                    item = await streamer.__anext__()
                except StopAsyncIteration:
                    return
            if scope.cancelled_caught:
                raise TimeoutCancelation(seconds, f"stream idle for more than {seconds}s")
            last = current_time()
            yield item


@pipable_operator
async def progress(
    source: AsyncIterable[T],
    every: int,
    on_progress: Callable[[int, T], Any] | None = None,
    operation: Operation | None = None,
) -> AsyncIterator[T]:
    """Pass items through; every ``every`` items call ``on_progress(count, item)`` and/or
    emit a progress event on ``operation``.  A sync callback is called inline (errors
    logged); an async one runs in the background, never blocking the pipeline."""
    every = check_report_interval(every) or 1
    if on_progress is not None:
        check_callable(on_progress, "on_progress", "on_progress(count, item), sync or async")
    handle = capture()
    is_async = on_progress is not None and inspect.iscoroutinefunction(on_progress)
    count = 0
    async with streamcontext(source) as streamer:
        async for item in streamer:
            count += 1
            if count % every == 0:
                if operation is not None and operation._progress_listening():
                    operation._emit_progress(count, item)
                if on_progress is not None:
                    if is_async:
                        handle.spawn(partial(on_progress, count, item))
                    else:
                        try:
                            on_progress(count, item)
                        except Exception:
                            logger.exception("cancelable_rx: progress callback %r failed", on_progress)
            yield item
