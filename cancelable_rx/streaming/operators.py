"""aiostream operators that make cancelation part of a pipeline, and ``cancelable_stream``.

All are plain async-generator operators: trio-safe, and none holds a cancel scope or a
task group across ``yield`` (a scope surrounds each ``await anext(...)`` only).
"""

from __future__ import annotations

import inspect
from functools import partial
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from aiostream import pipable_operator, streamcontext

from .._exceptions import TimeoutCancelation
from .._loop import LoopHandle, capture
from .._models import CancelEvent
from .._plan import compile_plan
from ..sources.base import as_source
from ..sources.timeout import check_timeout
from ._iterator import check_report_interval

if TYPE_CHECKING:
    from .._cancelable import Cancelable
    from .._token import CancelationToken
    from ._stream import CancelableStream

__all__ = ("cancelable_stream", "idle_timeout", "item_timeout", "progress", "stop_when")

logger = logging.getLogger("cancelable_rx")
T = TypeVar("T")
_INF = float("inf")


class _BackgroundArm:
    """ArmContext for operators: polling tasks run as background tasks of the loop and
    are cancelled when the operator ends."""

    def __init__(self, handle: LoopHandle) -> None:
        self.handle = handle
        self._scopes: list[anyio.CancelScope] = []
        self._closed = False

    def start_soon(self, fn: Callable[[], Awaitable[Any]]) -> None:
        async def run() -> None:
            with anyio.CancelScope() as scope:
                if self._closed:
                    return
                self._scopes.append(scope)
                await fn()

        self.handle.spawn(run)

    def close(self) -> None:
        self._closed = True
        for scope in self._scopes:
            scope.cancel()


@pipable_operator
async def stop_when(source: AsyncIterable[T], trigger: Any) -> AsyncIterator[T]:
    """End the stream (normally, like Rx ``takeUntil``) when ``trigger`` fires.

    ``trigger`` is any cancelation source, token or reactivex Observable (composites
    included; conditions poll in a background task, timeouts count from the first
    item request).  A pending ``anext`` is interrupted when it fires.
    Thread-safety: the trigger may fire from any thread.
    """
    src = as_source(trigger, "stop_when(trigger)")
    handle = capture()
    plan = compile_plan([src])
    deadline = handle.now() + plan.timeout.timeout_seconds if plan.timeout is not None else _INF
    arm = _BackgroundArm(handle)
    state: dict[str, Any] = {"fired": False, "scope": None}

    def cancel_current() -> None:
        scope = state["scope"]
        if scope is not None:
            scope.cancel()

    def on_fire(_: CancelEvent) -> None:
        state["fired"] = True
        if handle.in_loop_thread():
            cancel_current()
        else:
            handle.run_soon(cancel_current)

    src._listen(on_fire)
    src._arm(arm, True)
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
                if scope.cancelled_caught:
                    if plan.timeout is not None and not state["fired"]:
                        plan.timeout.fire()
                    return
                yield item
    finally:
        src._unlisten(on_fire)
        src._disarm()
        arm.close()


@pipable_operator
async def item_timeout(source: AsyncIterable[T], timeout: float | timedelta) -> AsyncIterator[T]:
    """Raise :class:`TimeoutCancelation` if the source takes longer than ``timeout``
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
    """Raise :class:`TimeoutCancelation` if more than ``timeout`` seconds pass between
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
    operation: Cancelable | None = None,
) -> AsyncIterator[T]:
    """Pass items through; every ``every`` items call ``on_progress(count, item)`` and/or
    emit a progress event on ``operation``.  A sync callback is called inline (errors
    logged); an async one runs in the background, never blocking the pipeline."""
    every = check_report_interval(every) or 1
    handle = capture()
    is_async = on_progress is not None and inspect.iscoroutinefunction(on_progress)
    count = 0
    async with streamcontext(source) as streamer:
        async for item in streamer:
            count += 1
            if count % every == 0:
                if operation is not None and operation._has_progress_listeners():
                    operation._emit_stream_progress(count, item)
                if on_progress is not None:
                    if is_async:
                        handle.spawn(partial(on_progress, count, item))
                    else:
                        try:
                            on_progress(count, item)
                        except Exception:
                            logger.exception("cancelable_rx: progress callback %r failed", on_progress)
            yield item


def cancelable_stream(
    stream: AsyncIterable[T],
    timeout: float | timedelta | None = None,
    token: CancelationToken | None = None,
    report_interval: int | None = None,
    on_progress: Callable[[int, T], Any] | None = None,
    buffer_partial: bool = False,
    operation_id: str | None = None,
    name: str | None = None,
) -> CancelableStream[T]:
    """A standalone cancelable stream (no ``async with`` needed).

    Cancellation: the stream's own operation starts at the first item request; when
    the timeout passes or the token is cancelled, a pending ``anext`` is interrupted
    and the typed :class:`CancelationError` is raised to the consumer.  A cancel scope
    surrounds each fetch only (never the consumer's code, never a ``yield``), which
    costs about one scope per item.  ``stream.operation`` is the operation (its
    ``partial_result`` is recorded whatever ends the stream).
    """
    from .._cancelable import Cancelable
    from ._iterator import FusedIterator
    from ._stream import CancelableStream

    if timeout is not None and token is not None:
        op = Cancelable.with_timeout(timeout, operation_id=operation_id, name=name).combine(Cancelable.with_token(token))
    elif timeout is not None:
        op = Cancelable.with_timeout(timeout, operation_id=operation_id, name=name or "stream_timeout")
    elif token is not None:
        op = Cancelable.with_token(token, operation_id=operation_id, name=name or "stream_token")
    else:
        op = Cancelable(operation_id=operation_id, name=name or "stream")
    if on_progress is not None:
        if not callable(on_progress):
            raise TypeError(f"`on_progress` must be callable(count, item), got {on_progress!r}")
        if inspect.iscoroutinefunction(on_progress):

            async def forward_async(op_id: str, message: Any, meta: dict[str, Any] | None) -> None:
                if meta is not None:
                    await on_progress(meta["count"], meta["latest_item"])

            op.on_progress(forward_async)
        else:
            op.on_progress(lambda op_id, message, meta: on_progress(meta["count"], meta["latest_item"]) if meta else None)
    return CancelableStream(FusedIterator(op, stream, report_interval, buffer_partial, detached=True))
