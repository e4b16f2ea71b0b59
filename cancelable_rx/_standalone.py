"""Ready-made operations that need no ``async with``: `cancelable_stream`."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from ._cancelable import Cancelable
from ._checks import check_callable, check_instance, fail_value
from ._models import OperationStatus
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
    *,
    operation: Cancelable | None = None,
) -> CancelableStream[T]:
    """A standalone cancelable stream (no ``async with`` needed).

    Cancellation: the stream's own operation starts at the first item request; when the
    timeout passes or the token is cancelled, a pending ``anext`` is interrupted (a source
    that never awaits is reached at its next checkpoint, every 512 items) and the typed
    `CancelationError` is raised to the consumer (for an ``operation=`` made with
    ``suppress_cancelation=True``, the stream ends as if exhausted instead, as its block
    would be left quietly; the outcome is read from the operation).  A cancel scope
    surrounds each fetch only (never the consumer's code, never a ``yield``), which costs
    about one scope per item.

    Ending early: leaving the ``async for`` (``break``, ``return``, an exception) ends the
    operation at once and closes the source in the background; ``aclosing(...)`` closes it
    before going on.  ``stream.operation`` is the operation: its ``partial_result`` is
    recorded whatever ends the stream.

    An existing operation: ``operation=op`` (keyword-only) streams under ``op``, a
    `Cancelable` you made and have not entered (``Cancelable.with_timeout(5, parent=req)``,
    one with sources, callbacks or ``register_globally``), instead of a new one.  The stream
    runs it exactly as its own: ``op`` starts at the first item request (a timeout counts
    from then), a scope surrounds each fetch only, and ``op`` ends with the stream, which
    records the partial result and the outcome on it.  Configure ``op`` itself: ``timeout``,
    ``token``, ``operation_id`` and ``name`` must then be None (ValueError otherwise);
    ``report_interval``, ``on_progress`` and ``buffer_partial`` apply as usual.  An operation
    runs once: one that was entered, or already started by a stream, is a ValueError.  Its
    callbacks run as for a block: ``on_start`` at the first item request; ``on_complete``,
    ``on_cancel`` or ``on_error`` when the stream ends, after the source is closed and before
    the end or the error reaches the consumer (shielded, to their end; for a stream left by a
    plain ``break``, on the loop soon after).

    Example::

        op = Cancelable.with_timeout(30, name="export")
        async for row in cancelable_stream(rows(), operation=op):
            ...
        print(op.status, op.partial_result.count)
    """
    if operation is not None:
        op = _given_operation(operation, timeout, token, operation_id, name)
    else:
        op = _new_operation(timeout, token, operation_id, name)
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


def _new_operation(
    timeout: float | timedelta | None,
    token: CancelationToken | None,
    operation_id: str | None,
    name: str | None,
) -> Cancelable:
    """The stream's own operation, from ``timeout`` and ``token``."""
    if token is not None:
        check_instance(token, CancelationToken, "token", "a CancelationToken or None")
    if timeout is not None and token is not None:
        op = Cancelable.with_timeout(timeout).combine(Cancelable.with_token(token))
        op._id = operation_id  # combine() names its operation; the caller's id and name win
        op._name = name or "stream_timeout_token"
        return op
    if timeout is not None:
        return Cancelable.with_timeout(timeout, operation_id=operation_id, name=name or "stream_timeout")
    if token is not None:
        return Cancelable.with_token(token, operation_id=operation_id, name=name or "stream_token")
    return Cancelable(operation_id=operation_id, name=name or "stream")


def _given_operation(
    operation: object,
    timeout: float | timedelta | None,
    token: CancelationToken | None,
    operation_id: str | None,
    name: str | None,
) -> Cancelable:
    """``operation=``: a `Cancelable` that has not run, with nothing else configuring it."""
    op: Cancelable = check_instance(
        operation, Cancelable, "operation", "a Cancelable or None", "e.g. Cancelable.with_timeout(5)"
    )
    for param, value in (("timeout", timeout), ("token", token), ("operation_id", operation_id), ("name", name)):
        if value is not None:
            fail_value(
                param,
                "None when operation= is given (the operation carries its own configuration)",
                value,
                f"configure the operation itself, or leave out operation= to make one from {param}",
            )
    if op.status is not OperationStatus.PENDING:
        fail_value(
            "operation",
            "an operation that has not been entered (the stream starts it at the first item)",
            op,
            "pass a new Cancelable, without `async with`; an operation runs once",
        )
    return op
