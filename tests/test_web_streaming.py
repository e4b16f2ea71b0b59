"""cancelable_streaming_response and CancelableWebSocket in process: the body's operation,
its partial result and reason, the final SSE event, the source closed on every ending,
bad arguments.  (Disconnects against real servers: test_web_middleware.py.)"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cancelable_rx import Cancelable, CancelationReason, OperationStatus, TimeoutCancelation
from cancelable_rx.integrations.web import (
    CancelableWebSocket,
    RequestCancelationMiddleware,
    cancelable_streaming_response,
)

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings(
        "ignore:Exception ignored in. <async_generator object ByteStream.__aiter__:pytest.PytestUnraisableExceptionWarning"
    ),
]


def make(seen: dict[str, Any], *, timeout: float | None, media_type: str, n: int) -> RequestCancelationMiddleware:
    async def source() -> AsyncIterator[str]:
        try:
            for i in range(n):
                yield f"data: {i}\n\n"
                await anyio.sleep(0.01)
        finally:
            seen["closed"] = True

    async def endpoint(request: Request) -> Response:
        op = Cancelable.with_timeout(timeout) if timeout is not None else None
        response = await cancelable_streaming_response(source(), op, media_type=media_type)
        seen["op"] = response.operation
        return response

    return RequestCancelationMiddleware(Starlette(routes=[Route("/", endpoint)]))


async def body_of(app: Any) -> str:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        return (await c.get("/")).text


async def test_a_complete_stream_records_its_partial_result() -> None:
    seen: dict[str, Any] = {}
    text = await body_of(make(seen, timeout=None, media_type="text/plain", n=3))
    assert text == "data: 0\n\ndata: 1\n\ndata: 2\n\n"
    op = seen["op"]
    assert op.status is OperationStatus.COMPLETED and seen["closed"]
    assert op.partial_result.count == 3 and op.partial_result.completed


async def test_its_own_timeout_ends_an_event_stream_with_a_cancelled_event() -> None:
    seen: dict[str, Any] = {}
    text = await body_of(make(seen, timeout=0.05, media_type="text/event-stream", n=1000))
    assert text.endswith('event: cancelled\ndata: {"reason": "timeout", "message": "Operation timed out after 0.05s"}\n\n')
    op = seen["op"]
    assert op.status is OperationStatus.CANCELLED and op.cancel_reason is CancelationReason.TIMEOUT
    assert 0 < op.partial_result.count < 1000 and not op.partial_result.completed
    assert seen["closed"]


async def test_bad_arguments_are_clear() -> None:
    async def gen() -> AsyncIterator[str]:
        yield "x"

    with pytest.raises(TypeError, match="`generator` must be an async iterable"):
        await cancelable_streaming_response(["x"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`cancelable` must be a Cancelable or None"):
        await cancelable_streaming_response(gen(), "op")  # type: ignore[arg-type]
    async with Cancelable() as running:
        with pytest.raises(ValueError, match="`cancelable` must be an operation that has not been entered"):
            await cancelable_streaming_response(gen(), running)
    with pytest.raises(TypeError, match="`websocket` must be a Starlette/FastAPI WebSocket"):
        CancelableWebSocket(object())


def test_the_demo_runs_its_tour() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-m", "cancelable_rx.integrations.web.demo"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cancelled/disconnect" in result.stdout and "HTTP 504" in result.stdout


async def test_a_body_iterated_inside_the_block_of_its_operation_streams_under_it() -> None:
    async def source() -> AsyncIterator[str]:
        for i in range(100):
            await anyio.sleep(0.01)
            yield f"data: {i}\n"

    op = Cancelable.with_timeout(0.05)
    response = await cancelable_streaming_response(source(), op)
    chunks: list[Any] = []
    with pytest.raises(TimeoutCancelation):
        async with op:  # entered by the caller after the call, as hother-cancelable's tests do
            async for chunk in response.body_iterator:
                chunks.append(chunk)
    assert 0 < len(chunks) < 100 and op.cancel_reason is CancelationReason.TIMEOUT


class _FakeSocket:
    """Not a Starlette WebSocket: only the methods CancelableWebSocket calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def accept(self, **kwargs: Any) -> None:
        self.calls.append(("accept", kwargs))

    async def send_text(self, data: str) -> None:
        self.calls.append(("send_text", data))

    async def receive_text(self) -> str:
        return "hi"

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.calls.append(("close", (code, reason)))


async def test_with_an_operation_given_any_object_with_the_websockets_methods_works() -> None:
    fake = _FakeSocket()
    op = Cancelable()
    progress: list[str] = []
    op.on_progress(lambda op_id, message, meta: progress.append(message))
    ws = CancelableWebSocket(fake, op)
    await ws.accept(subprotocol="x")  # not running: the main face reports no progress
    async with op:
        await ws.send_text("hello")
        assert await ws.receive_text() == "hi"
        await ws.close(1001, "bye")
    assert fake.calls == [("accept", {"subprotocol": "x"}), ("send_text", "hello"), ("close", (1001, "bye"))]
    assert progress == ["WebSocket closed"]
    done = Cancelable.with_timeout(0.01)
    with pytest.raises(TimeoutCancelation):
        async with done:
            await anyio.sleep(0.05)
            await CancelableWebSocket(fake, done).send_text("never")
    assert ("send_text", "never") not in fake.calls
