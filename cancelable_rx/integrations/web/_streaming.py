"""`cancelable_streaming_response`: a streaming response that stops producing when the
client disconnects, the deadline passes or a token is cancelled.

The body is a *detached* stream (``cancelable_stream(source, operation=op)``): its
operation opens a cancel scope around each fetch from the source only, never around the ``yield`` that hands a chunk
to the server, so a cancellation never lands in the server's own code and trio's cancel
scope stack stays intact.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterable, Mapping
from typing import Any

import anyio
import anyio.lowlevel
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse

from cancelable_rx import (
    Cancelable,
    CancelableStream,
    CancelationError,
    CancelationReason,
    OperationStatus,
    ParentCancelation,
    PartialResult,
    cancelable_stream,
)
from cancelable_rx._checks import fail_type, fail_value

from ._connection import current_connection
from ._request import new_request_operation

__all__ = ("CancelableStreamingResponse", "cancelable_streaming_response")


class CancelableStreamingResponse(StreamingResponse):
    """A Starlette ``StreamingResponse`` whose body is a cancelable stream.

    ``operation`` is the stream's operation: it starts with the first chunk and ends with
    the stream; its ``partial_result`` (`PartialResult`: chunks sent, whether the source was
    exhausted) and ``cancel_reason`` tell how far it got and why it stopped.
    """

    operation: Cancelable

    @property
    def partial_result(self) -> PartialResult | None:
        """What the body had produced (live while streaming, final once it ended)."""
        result: PartialResult | None = self.operation.partial_result
        return result


def _root_reason(err: CancelationError) -> CancelationReason:
    if isinstance(err, ParentCancelation) and err.parent_reason is not None:
        return err.parent_reason
    return err.reason


async def _body(op: Cancelable, source: AsyncIterable[Any], buffer_partial: bool, sse: bool) -> AsyncGenerator[Any, None]:
    """The response body: the stream's items; on a cancellation other than a disconnect,
    a final ``event: cancelled`` for server-sent events, else the error (the middleware
    leaves the response incomplete).  No cancel scope of ours is open across ``yield``.

    The stream is detached (``op`` starts at the first chunk), unless the caller entered
    ``op`` itself and iterates the body inside its block (as ``hother-cancelable``'s tests
    do): then the body is ``op.stream(source)``, within the caller's own scope."""
    stream: CancelableStream[Any]
    if op.is_running:
        stream = op.stream(source, buffer_partial=buffer_partial)
    else:
        stream = cancelable_stream(source, buffer_partial=buffer_partial, operation=op)
    try:
        async for chunk in stream:
            yield chunk
    except CancelationError as err:
        # A cancellation of an enclosing scope (the request's deadline, its disconnect) is
        # delivered here first, so the request's own operation records its exact reason.
        await anyio.lowlevel.checkpoint()
        reason = _root_reason(err)
        if reason is CancelationReason.DISCONNECT:
            return  # nobody left to tell
        if not sse:
            raise
        data = json.dumps({"reason": reason.value, "message": err.message})
        yield f"event: cancelled\ndata: {data}\n\n"
    finally:
        with anyio.CancelScope(shield=True):
            await stream.aclose()  # records the partial result (once) and closes the source


async def cancelable_streaming_response(
    generator: AsyncIterable[Any],
    cancelable: Cancelable | None = None,
    media_type: str = "text/plain",
    chunk_size: int | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    buffer_partial: bool = False,
    background: BackgroundTask | None = None,
) -> CancelableStreamingResponse:
    """A streaming response over ``generator`` that stops producing when the client
    disconnects, the request's deadline passes, or ``cancelable`` is cancelled (its own
    timeout, token, ``cancel()``...).

    ``cancelable`` must not have been entered: it becomes the body's operation, started at
    the first chunk and ended with the stream (``Depends(cancelable_dependency)`` gives one
    that is a child of the request's operation).  None makes one.  (Entering it yourself
    after this call and iterating ``response.body_iterator`` inside its block, as
    ``hother-cancelable``'s tests do, streams the body under it as ``op.stream()``.)  With the middleware,
    the request's token is added to it, so a disconnect is recorded as ``DISCONNECT``.

    Whatever ends the body, the source is closed and ``response.operation`` records the
    partial result and the reason.  On a cancellation other than a disconnect, a
    ``text/event-stream`` response ends with ``event: cancelled`` and a JSON ``data`` line
    (``{"reason": ..., "message": ...}``); other media types are left incomplete, so the
    client sees a truncated body.  ``chunk_size`` is accepted for compatibility and unused.

    Cancellation: a cancel scope surrounds each fetch from ``generator`` only (never the
    ``yield`` to the server): safe on trio.  Without the middleware one warning is logged
    and disconnects are not observed.
    """
    if not isinstance(generator, AsyncIterable):
        fail_type("generator", "an async iterable (e.g. an async generator)", generator, "yield str or bytes chunks")
    if cancelable is None:
        op = new_request_operation(None, None, "cancelable_streaming_response")
    else:
        if not isinstance(cancelable, Cancelable):
            fail_type("cancelable", "a Cancelable or None", cancelable, "e.g. Depends(cancelable_dependency)")
        if cancelable.status is not OperationStatus.PENDING:
            fail_value(
                "cancelable",
                "an operation that has not been entered (the body streams after the endpoint returns)",
                cancelable,
                "pass it without `async with`; the response enters it when the body starts",
            )
        op = cancelable
    conn = current_connection.get()
    if conn is not None:
        op.add_source(conn.operation.token)
    body = _body(op, generator, buffer_partial, media_type.startswith("text/event-stream"))
    response = CancelableStreamingResponse(
        body, status_code=status_code, headers=headers, media_type=media_type, background=background
    )
    response.operation = op
    if conn is not None:
        conn.on_close(body.aclose)  # a body the server stopped iterating is closed with the request
    return response
