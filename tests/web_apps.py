"""The ASGI app the web tests serve (Starlette, behind RequestCancelationMiddleware).

Each endpoint records its request's operation (and what it saw) in `PROBE` under the
request's ``x-test`` header, so a test can wait for what happened on the server.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from web_servers import Probe

from cancelable_rx import current_operation
from cancelable_rx.integrations.web import (
    DEADLINE_HEADER,
    AsyncDeadlineTransport,
    CancelableWebSocket,
    DeadlineTransport,
    RequestCancelationMiddleware,
    cancelable_streaming_response,
    get_request_operation,
)

PROBE = Probe()
_release_lock = threading.Lock()
_release: dict[int, anyio.Event] = {}  # one per server loop thread


def _key(request: Request | WebSocket) -> str:
    return request.headers.get("x-test", "")


def _record(request: Request | WebSocket, **values: Any) -> None:
    PROBE.put(_key(request), op=get_request_operation(request), **values)


def release_event() -> anyio.Event:
    """The event `/hold` waits for on this loop (made on first use, on the loop thread)."""
    with _release_lock:
        ident = threading.get_ident()
        event = _release.get(ident)
        if event is None:
            event = _release[ident] = anyio.Event()
        return event


def release_all() -> None:
    """Set the hold events (call it on each server's loop thread); new ones are made after."""
    with _release_lock:
        event = _release.pop(threading.get_ident(), None)
    if event is not None:
        event.set()


async def fast(request: Request) -> Response:
    _record(request)
    return PlainTextResponse("ok")


async def slow(request: Request) -> Response:
    _record(request, started=True)
    try:
        await anyio.sleep(30)
    finally:
        _record(request, unwound=True)
    return PlainTextResponse("late")


async def hold(request: Request) -> Response:
    _record(request, started=True)
    await release_event().wait()
    return PlainTextResponse("released")


async def upload(request: Request) -> Response:
    _record(request)
    digest = hashlib.sha256()
    size = 0
    try:
        async for chunk in request.stream():
            digest.update(chunk)
            size += len(chunk)
            PROBE.put(_key(request), received=size)
    finally:
        _record(request, unwound=True)
    PROBE.put(_key(request), size=size, sha=digest.hexdigest())
    if request.query_params.get("then") == "slow":
        await anyio.sleep(30)
    return JSONResponse({"size": size, "sha": digest.hexdigest()})


async def in_thread(request: Request) -> Response:
    op = get_request_operation(request)
    assert op is not None
    _record(request)

    def work() -> int:
        me = current_operation()
        assert me is op
        n = 0
        while n < 2000 and not me.is_cancelled:  # at most 10 s
            time.sleep(0.005)
            n += 1
            if n == 1:
                PROBE.put(_key(request), thread_started=True)
        PROBE.put(_key(request), iterations=n, saw_cancel=me.is_cancelled)
        return n

    n = await op.run_in_thread(work)
    return PlainTextResponse(str(n))


def sync_endpoint(request: Request) -> Response:
    """A sync endpoint (Starlette runs it in anyio's thread pool)."""
    op = current_operation()
    PROBE.put(_key(request), op=op, thread_started=True)
    n = 0
    while n < 2000 and op is not None and not op.is_cancelled:
        time.sleep(0.005)
        n += 1
    PROBE.put(_key(request), iterations=n, saw_cancel=op is not None and op.is_cancelled)
    return PlainTextResponse(str(n))


async def sse(request: Request) -> Response:
    key = _key(request)

    async def events() -> AsyncIterator[str]:
        i = 0
        try:
            while True:
                yield f"data: {i}\n\n"
                i += 1
                await anyio.sleep(0.005)
        finally:
            PROBE.put(key, source_closed=True)

    response = await cancelable_streaming_response(events(), media_type="text/event-stream")
    _record(request, stream_op=response.operation)
    return response


async def budget(request: Request) -> Response:
    op = get_request_operation(request)
    assert op is not None
    _record(request)
    remaining = op.remaining()
    return JSONResponse({
        "header": request.headers.get(DEADLINE_HEADER),
        "remaining": None if remaining == math.inf else remaining,
    })


async def hop(request: Request) -> Response:
    """Call ``?to=<url>`` downstream with the deadline transport; return its answer."""
    _record(request)
    async with httpx.AsyncClient(transport=AsyncDeadlineTransport()) as client:
        answer = await client.get(request.query_params["to"], headers={"x-test": _key(request) + "-down"})
    return JSONResponse({"status": answer.status_code, "body": answer.text})


async def hop_sync(request: Request) -> Response:
    """The same with a sync client in a worker thread of the request's operation."""
    op = get_request_operation(request)
    assert op is not None
    _record(request)
    url = request.query_params["to"]

    def call() -> tuple[int, str]:
        with httpx.Client(transport=DeadlineTransport()) as client:
            try:
                answer = client.get(url, headers={"x-test": _key(request) + "-down"})
            except httpx.TimeoutException as exc:
                PROBE.put(_key(request), stopped=type(exc).__name__)
                return 0, ""
            return answer.status_code, answer.text

    status, body = await op.run_in_thread(call)
    return JSONResponse({"status": status, "body": body})


async def ws(websocket: WebSocket) -> None:
    sock = CancelableWebSocket(websocket)
    _record(websocket)
    await sock.accept()
    try:
        while True:
            text = await sock.receive_text()
            await sock.send_text(text.upper())
    finally:
        _record(websocket, unwound=True)


BIG_CHUNK = 1 << 20
BIG_CHUNKS = 32


class _Chunks:
    """`BIG_CHUNKS` chunks of `BIG_CHUNK` bytes (an iterator, not a generator: nothing to
    finalize when the response stops early)."""

    def __init__(self) -> None:
        self.left = BIG_CHUNKS
        self.chunk = b"x" * BIG_CHUNK

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        if not self.left:
            raise StopAsyncIteration
        self.left -= 1
        return self.chunk


async def big(request: Request) -> Response:
    """A large body (32 chunks of 1 MiB): a client that stops reading makes the server's
    ``send`` wait (backpressure)."""
    _record(request, started=True)
    return StreamingResponse(_Chunks(), media_type="application/octet-stream")


ROUTES = [
    Route("/fast", fast),
    Route("/big", big),
    Route("/slow", slow),
    Route("/hold", hold),
    Route("/upload", upload, methods=["POST"]),
    Route("/thread", in_thread),
    Route("/sync", sync_endpoint),
    Route("/sse", sse),
    Route("/budget", budget),
    Route("/hop", hop),
    Route("/hop-sync", hop_sync),
    WebSocketRoute("/ws", ws),
]


def make_app(**options: Any) -> RequestCancelationMiddleware:
    return RequestCancelationMiddleware(Starlette(routes=ROUTES), **options)
