"""Ready-made operations that need no ``async with``: `cancelable_stream`."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from ._cancelable import Cancelable
from ._checks import check_callable, check_instance
from ._token import CancelationToken
from .streaming._iterator import FusedIterator
from .streaming._stream import CancelableStream

__all__ = ("cancelable_stream",)

T = TypeVar("T")


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

    Cancellation: the stream's own operation starts at the first item request; when the
    timeout passes or the token is cancelled, a pending ``anext`` is interrupted (a source
    that never awaits is reached at its next checkpoint, every 512 items) and the typed
    `CancelationError` is raised to the consumer.  A cancel scope surrounds each fetch only
    (never the consumer's code, never a ``yield``), which costs about one scope per item.

    Ending early: leaving the ``async for`` (``break``, ``return``, an exception) ends the
    operation at once and closes the source in the background; ``aclosing(...)`` closes it
    before going on.  ``stream.operation`` is the operation: its ``partial_result`` is
    recorded whatever ends the stream.
    """
    if token is not None:
        check_instance(token, CancelationToken, "token", "a CancelationToken or None")
    if timeout is not None and token is not None:
        op = Cancelable.with_timeout(timeout).combine(Cancelable.with_token(token))
        op._id = operation_id  # combine() names its operation; the caller's id and name win
        op._name = name or "stream_timeout_token"
    elif timeout is not None:
        op = Cancelable.with_timeout(timeout, operation_id=operation_id, name=name or "stream_timeout")
    elif token is not None:
        op = Cancelable.with_token(token, operation_id=operation_id, name=name or "stream_token")
    else:
        op = Cancelable(operation_id=operation_id, name=name or "stream")
    if on_progress is not None:
        check_callable(on_progress, "on_progress", "on_progress(count, item), sync or async")
        if inspect.iscoroutinefunction(on_progress):

            async def forward_async(op_id: str, message: Any, meta: dict[str, Any] | None) -> None:
                if meta is not None:
                    await on_progress(meta["count"], meta["latest_item"])

            op.on_progress(forward_async)
        else:

            def forward(op_id: str, message: Any, meta: dict[str, Any] | None) -> None:
                if meta is not None:
                    on_progress(meta["count"], meta["latest_item"])

            op.on_progress(forward)
    return CancelableStream(FusedIterator(op, stream, report_interval, buffer_partial, detached=True))
