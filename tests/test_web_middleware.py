"""RequestCancelationMiddleware against real servers on 127.0.0.1: uvicorn (asyncio),
hypercorn (asyncio and trio workers), with a real httpx client on either anyio backend.

Every request's operation is recorded by the app (tests/web_apps.py); a test waits for
what happened on the server by polling under ``anyio.fail_after``."""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from functools import partial
from typing import Any

import anyio
import httpx
import pytest
import wsproto
import wsproto.events as wse
from web_apps import BIG_CHUNK, BIG_CHUNKS, PROBE, make_app
from web_servers import KINDS, LogCapture, Server, ended

from cancelable_rx import CancelationReason, OperationStatus
from cancelable_rx.integrations.web import DEADLINE_HEADER

pytestmark = pytest.mark.anyio

CANCELLED = OperationStatus.CANCELLED
DISCONNECT = CancelationReason.DISCONNECT


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    srv = Server(make_app(), request.param).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def downstream(server: Server) -> Iterator[Server]:
    """A second, separate service of the same kind (for the deadline hops)."""
    srv = Server(make_app(), server.kind).start()
    yield srv
    srv.stop()


def new_key() -> str:
    return uuid.uuid4().hex


async def leave_when(client: httpx.AsyncClient, key: str, ready: Any, method: str, path: str, **kw: Any) -> None:
    """Send a request, wait until ``ready(record)`` holds on the server, then disconnect
    (the request's task is cancelled: httpx closes the connection)."""
    headers = {"x-test": key, **kw.pop("headers", {})}
    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(client.request, method, path, headers=headers, **kw))
        await PROBE.wait(key, ready)
        tg.cancel_scope.cancel()


def assert_disconnected(record: dict[str, Any]) -> None:
    op = record["op"]
    assert op.status is CANCELLED, (op.status, op.cancel_reason, op.cancel_message)
    assert op.cancel_reason is DISCONNECT
    assert "client disconnected" in (op.cancel_message or "")


async def test_a_request_completes_and_its_operation_too(server: Server) -> None:
    key = new_key()
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.get("/fast", headers={"x-test": key})
    assert response.text == "ok"
    record = await PROBE.wait(key, ended)
    assert record["op"].status is OperationStatus.COMPLETED
    assert record["op"].name == "GET /fast"


async def test_disconnect_mid_response_cancels_with_reason_disconnect(server: Server) -> None:
    key = new_key()
    async with httpx.AsyncClient(base_url=server.url) as client:
        await leave_when(client, key, lambda r: r.get("started"), "GET", "/slow")
    start = time.monotonic()
    record = await PROBE.wait(key, lambda r: ended(r) and r.get("unwound"), timeout=3)
    assert_disconnected(record)
    assert time.monotonic() - start < 2


@pytest.mark.parametrize("size", [0, 1, 70_000, 1_000_003])
async def test_the_body_reaches_the_app_intact(server: Server, size: int) -> None:
    data = os.urandom(size)

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
        for i in range(0, size, 8192):
            yield data[i : i + 8192]

    key = new_key()
    async with httpx.AsyncClient(base_url=server.url) as client:
        plain = await client.post("/upload", content=data, headers={"x-test": key + "p"})
        streamed = await client.post("/upload", content=chunked(), headers={"x-test": key + "c"})
    expected = {"size": size, "sha": hashlib.sha256(data).hexdigest()}
    assert plain.json() == expected
    assert streamed.json() == expected
    for k in (key + "p", key + "c"):
        assert (await PROBE.wait(k, ended))["op"].status is OperationStatus.COMPLETED


async def test_disconnect_mid_upload_ends_the_request_without_hanging(server: Server) -> None:
    key = new_key()
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(4):
            sent += 4096
            yield b"x" * 4096
        await anyio.sleep_forever()  # the rest never comes

    async with httpx.AsyncClient(base_url=server.url) as client:
        await leave_when(client, key, lambda r: r.get("received") == 4 * 4096, "POST", "/upload", content=body())
    record = await PROBE.wait(key, lambda r: ended(r) and r.get("unwound"), timeout=3)
    assert_disconnected(record)
    assert record["received"] == sent  # every byte sent reached the app
    assert "sha" not in record  # the app never saw a complete body


async def test_disconnect_after_the_upload_is_seen_by_the_watcher(server: Server) -> None:
    key = new_key()
    async with httpx.AsyncClient(base_url=server.url) as client:
        await leave_when(client, key, lambda r: "sha" in r, "POST", "/upload?then=slow", content=b"y" * 5000)
    record = await PROBE.wait(key, ended, timeout=3)
    assert_disconnected(record)
    assert record["size"] == 5000


async def test_a_deadline_that_passes_while_the_server_send_waits_ends_the_request(server: Server) -> None:
    """A client that stops reading a large body: the server's ``send`` waits (backpressure)
    inside the middleware's shield when the request's deadline passes.  The send is not
    torn mid-way (no server error, no corrupted cancel scope); the request's operation ends
    with TIMEOUT and the client gets a truncated body.  (hypercorn's trio worker shields
    its own socket writes: there the request ends once the client reads again.)"""
    key = new_key()
    request = (
        f"GET /big HTTP/1.1\r\nHost: test\r\nx-test: {key}\r\n{DEADLINE_HEADER}: 300\r\n\r\n"
    ).encode()
    with LogCapture() as logs:
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(request)
            received = len(await stream.receive(65536))  # the first bytes, then stop reading
            await anyio.sleep(1.5)  # the deadline passes while the server waits for the client
            with anyio.fail_after(10):
                while True:  # read what is left: the server ends the truncated response
                    try:
                        received += len(await stream.receive(1 << 20))
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        break
        op = (await PROBE.wait(key, ended, timeout=5))["op"]
        assert op.status is CANCELLED and op.cancel_reason is CancelationReason.TIMEOUT
        assert received < BIG_CHUNK * BIG_CHUNKS  # truncated, never complete
    problems = logs.texts()
    assert not [t for t in problems if "corrupted" in t.lower() or "cancel scope" in t.lower()], problems
    assert not [t for t in problems if "Traceback" in t or "Exception in" in t], problems


@pytest.mark.parametrize("path", ["/thread", "/sync"])
async def test_a_worker_thread_sees_the_disconnect(server: Server, path: str) -> None:
    key = new_key()
    async with httpx.AsyncClient(base_url=server.url) as client:
        await leave_when(client, key, lambda r: r.get("thread_started"), "GET", path)
    record = await PROBE.wait(key, lambda r: ended(r) and "iterations" in r, timeout=3)
    assert record["saw_cancel"] is True
    assert record["iterations"] < 2000  # it stopped early, not after its whole batch
    assert_disconnected(record)


async def test_disconnect_mid_stream_stops_the_source_and_records_the_partial_result(server: Server) -> None:
    key = new_key()
    with anyio.fail_after(5):  # a raw HTTP/1.1 client: read five events, then hang up
        stream = await anyio.connect_tcp("127.0.0.1", server.port)
        request = f"GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\nx-test: {key}\r\n\r\n"
        await stream.send(request.encode())
        seen = b""
        while seen.count(b"data: ") < 5:
            seen += await stream.receive()
        await stream.aclose()
    assert b"text/event-stream" in seen
    received = seen.count(b"data: ")
    record = await PROBE.wait(key, lambda r: ended(r) and ended({"op": r["stream_op"]}) and r.get("source_closed"))
    assert_disconnected(record)
    stream_op = record["stream_op"]
    assert stream_op.status is CANCELLED and stream_op.cancel_reason is DISCONNECT
    partial = stream_op.partial_result
    assert partial.completed is False and partial.count >= received


async def test_deadline_header_cancels_the_request_with_504(server: Server) -> None:
    key = new_key()
    start = time.monotonic()
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.get("/slow", headers={"x-test": key, DEADLINE_HEADER: "100"})
    assert response.status_code == 504
    assert "deadline" in response.json()["detail"]
    assert 0.09 < time.monotonic() - start < 2
    record = await PROBE.wait(key, ended)
    assert record["op"].status is CANCELLED and record["op"].cancel_reason is CancelationReason.TIMEOUT


async def test_a_spent_budget_is_answered_504_at_once(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.get("/slow", headers={"x-test": new_key(), DEADLINE_HEADER: "0"})
    assert response.status_code == 504


async def test_the_header_becomes_the_request_deadline(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        answer = (await client.get("/budget", headers={"x-test": new_key(), DEADLINE_HEADER: "5000"})).json()
        none = (await client.get("/budget", headers={"x-test": new_key()})).json()
    assert answer["header"] == "5000"
    assert 4.0 < answer["remaining"] <= 5.0
    assert none["remaining"] is None  # no deadline at all


async def test_bad_deadline_headers_proceed_with_the_default_and_a_warning(server: Server) -> None:
    bad = ["abc", "-5", "1.5", "9999999999", "", "1e3", "+10", "١٢"]
    with LogCapture() as logs:
        async with httpx.AsyncClient(base_url=server.url) as client:
            for value in bad:
                response = await client.get(
                    "/budget", headers=[("x-test", new_key()), (DEADLINE_HEADER, value.encode("utf-8"))]
                )
                assert response.status_code == 200, value
                assert response.json()["remaining"] is None, value
    warnings = [t for t in logs.texts() if "malformed" in t and DEADLINE_HEADER in t]
    assert len(warnings) == len(bad), warnings


async def test_the_deadline_travels_to_the_next_service(server: Server, downstream: Server) -> None:
    key = new_key()
    async with httpx.AsyncClient(base_url=server.url) as client:
        for path in ("/hop", "/hop-sync"):
            response = await client.get(
                path, params={"to": f"{downstream.url}/budget"}, headers={"x-test": key, DEADLINE_HEADER: "3000"}
            )
            answer = response.json()
            assert answer["status"] == 200, answer
            seen = httpx.Response(200, content=answer["body"]).json()
            assert 0 < int(seen["header"]) <= 3000  # the remaining budget, never more
            assert seen["remaining"] <= int(seen["header"]) / 1000


@pytest.mark.parametrize("path", ["/hop", "/hop-sync"])
async def test_the_end_of_the_budget_stops_the_outgoing_request(server: Server, downstream: Server, path: str) -> None:
    key = new_key()
    start = time.monotonic()
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.get(
            path, params={"to": f"{downstream.url}/slow"}, headers={"x-test": key, DEADLINE_HEADER: "300"}
        )
    # the request's deadline cancelled the endpoint (async), or passed while its worker
    # thread waited (sync: the read stopped at the budget, and the endpoint's late answer is
    # refused): either way the middleware answers 504
    assert response.status_code == 504
    if path == "/hop-sync":
        assert PROBE.get(key)["stopped"] in ("ReadTimeout", "BudgetExhausted")
    assert time.monotonic() - start < 2
    upstream = await PROBE.wait(key, ended)
    assert upstream["op"].cancel_reason is CancelationReason.TIMEOUT
    # downstream got a budget of at most 300 ms: it timed out itself, or saw the caller leave
    down = await PROBE.wait(key + "-down", lambda r: ended(r) and r.get("unwound"))
    assert down["op"].status is CANCELLED
    assert down["op"].cancel_reason in (CancelationReason.TIMEOUT, DISCONNECT)


class WsClient:
    """A minimal WebSocket client (wsproto over an anyio TCP stream)."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.conn = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)

    @classmethod
    async def connect(cls, port: int, path: str, key: str) -> WsClient:
        client = cls(await anyio.connect_tcp("127.0.0.1", port))
        await client.stream.send(
            client.conn.send(wse.Request(host=f"127.0.0.1:{port}", target=path, extra_headers=[(b"x-test", key.encode())]))
        )
        await client.expect(wse.AcceptConnection)
        return client

    async def expect(self, kind: type) -> Any:
        while True:
            for event in self.conn.events():
                if isinstance(event, kind):
                    return event
            self.conn.receive_data(await self.stream.receive())

    async def send_text(self, text: str) -> None:
        await self.stream.send(self.conn.send(wse.TextMessage(data=text)))


@pytest.mark.parametrize("how", ["close frame", "dropped connection"])
async def test_a_websocket_closed_by_the_client_cancels_its_operation(server: Server, how: str) -> None:
    key = new_key()
    with anyio.fail_after(5):
        ws = await WsClient.connect(server.port, "/ws", key)
        await ws.send_text("hello")
        assert (await ws.expect(wse.TextMessage)).data == "HELLO"
        if how == "close frame":
            await ws.stream.send(ws.conn.send(wse.CloseConnection(code=1000)))
        await ws.stream.aclose()
    record = await PROBE.wait(key, lambda r: ended(r) and r.get("unwound"))
    assert_disconnected(record)
    assert "websocket" in record["op"].cancel_message


async def test_an_endpoint_error_is_still_a_500_and_failed(server: Server) -> None:
    # The middleware changes nothing for ordinary errors (none of its routes raise: a
    # missing route is a 404 and the operation completes).
    key = new_key()
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.get("/missing", headers={"x-test": key})
    assert response.status_code == 404


def test_configuration_errors_are_clear() -> None:
    from cancelable_rx.integrations.web import RequestCancelationMiddleware

    with pytest.raises(TypeError, match="`app` must be an ASGI application"):
        RequestCancelationMiddleware(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`default_timeout` must be a number of seconds > 0"):
        RequestCancelationMiddleware(make_app(), default_timeout=-1)
    with pytest.raises(ValueError, match="`default_timeout`"):
        RequestCancelationMiddleware(make_app(), default_timeout=0)
    with pytest.raises(TypeError, match="`timeout_status` must be an HTTP status code"):
        RequestCancelationMiddleware(make_app(), timeout_status="504")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`disconnect_status` must be an HTTP status code between 100 and 599"):
        RequestCancelationMiddleware(make_app(), disconnect_status=999)


_ = logging  # the root logger is what LogCapture listens to
