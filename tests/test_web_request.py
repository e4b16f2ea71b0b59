"""The request helpers (get_request_token, get_request_operation, cancelable_dependency,
with_cancelation), the deadline header parser and the httpx transports, in process
(httpx's ASGI transport): FastAPI validation, statuses, the one warning without the
middleware, bad arguments."""

from __future__ import annotations

import inspect
import logging
import math
import threading
from typing import Any

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from cancelable_rx import Cancelable, CancelationReason, TimeoutCancelation, current_operation
from cancelable_rx.integrations.web import (
    DEADLINE_HEADER,
    AsyncDeadlineTransport,
    BudgetExhausted,
    DeadlineTransport,
    RequestCancelationMiddleware,
    cancelable_dependency,
    format_budget,
    get_request_operation,
    get_request_token,
    parse_budget,
    with_cancelation,
)
from cancelable_rx.integrations.web import _request as request_module

pytestmark = [
    pytest.mark.anyio,
    # httpx's in-process ASGI transport sends an empty body chunk with more_body=True and
    # abandons its body generator when the app does not read it: trio's finalizer warns.
    pytest.mark.filterwarnings(
        "ignore:Exception ignored in. <async_generator object ByteStream.__aiter__:pytest.PytestUnraisableExceptionWarning"
    ),
]


def fastapi_app(middleware: bool = True) -> FastAPI:
    app = FastAPI()
    if middleware:
        app.add_middleware(RequestCancelationMiddleware, default_timeout=5)

    @app.get("/items/{item_id}")
    @with_cancelation(timeout=2)
    async def item(item_id: int, q: str | None = None) -> dict:
        op = current_operation()
        assert op is not None
        return {"item": item_id, "q": q, "child_of": op.parent.name if op.parent else None}

    @app.get("/too-slow")
    @with_cancelation(timeout=0.05)
    async def too_slow() -> dict:
        await anyio.sleep(5)
        return {}

    @app.get("/typed")
    @with_cancelation(timeout=0.05, raise_on_cancel=False)
    async def typed() -> dict:
        await anyio.sleep(5)
        return {}

    @app.get("/sync/{n}")
    @with_cancelation()
    def sync_endpoint(n: int) -> dict:
        op = current_operation()
        return {"n": n, "thread": threading.current_thread() is not threading.main_thread(), "op": op is not None}

    @app.get("/dep")
    async def dep(op: Cancelable = Depends(cancelable_dependency)) -> dict:  # noqa: B008 - FastAPI's idiom
        async with op:
            await anyio.sleep(0)
        return {"status": op.status.value, "parent": op.parent.name if op.parent else None}

    async def within_50ms(request: Request) -> Cancelable:
        return await cancelable_dependency(request, timeout=0.05)

    @app.get("/dep-timeout")
    async def dep_timeout(op: Cancelable = Depends(within_50ms)) -> dict:  # noqa: B008 - FastAPI's idiom
        try:
            async with op:
                await anyio.sleep(5)
        except TimeoutCancelation:
            return {"timed_out": True}
        return {"timed_out": False}

    @app.get("/token")
    async def token(request: Request) -> dict:
        first, second = get_request_token(request), get_request_token(request)
        return {"same": first is second, "cancelled": first.is_cancelled}

    return app


def client(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")  # type: ignore[arg-type]


async def test_with_cancelation_keeps_the_signature_so_fastapi_validates() -> None:
    async with client(fastapi_app()) as c:
        ok = await c.get("/items/3", params={"q": "x"})
        bad = await c.get("/items/abc")
        sync = await c.get("/sync/4")
    assert ok.status_code == 200
    assert ok.json() == {"item": 3, "q": "x", "child_of": "GET /items/3"}
    assert bad.status_code == 422
    assert sync.json() == {"n": 4, "thread": True, "op": True}


async def test_with_cancelation_timeouts_become_504_or_the_typed_error() -> None:
    async with client(fastapi_app()) as c:
        response = await c.get("/too-slow")
        assert response.status_code == 504
        assert response.json() == {"detail": "Request timeout"}
        # raise_on_cancel=False: the typed error escapes the endpoint; the middleware
        # answers it by its reason
        assert (await c.get("/typed")).status_code == 504
    async with client(fastapi_app(middleware=False)) as c:
        with pytest.raises(TimeoutCancelation):  # no middleware: it reaches the server
            await c.get("/typed")


async def test_cancelable_dependency_is_a_child_of_the_request_and_timeout_is_not_a_query_parameter() -> None:
    app = fastapi_app()
    async with client(app) as c:
        assert (await c.get("/dep")).json() == {"status": "completed", "parent": "GET /dep"}
        assert (await c.get("/dep", params={"timeout": "0"})).json()["status"] == "completed"
        assert (await c.get("/dep-timeout")).json() == {"timed_out": True}
    assert "parameters" not in app.openapi()["paths"]["/dep"]["get"]
    assert list(inspect.signature(cancelable_dependency).parameters) == ["request"]


async def test_the_request_token_is_the_requests_own() -> None:
    async with client(fastapi_app()) as c:
        assert (await c.get("/token")).json() == {"same": True, "cancelled": False}


@pytest.fixture
def fresh_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(request_module, "_warned", False)


async def test_without_the_middleware_helpers_work_and_warn_once(
    fresh_warning: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="cancelable_rx.integrations.web"):
        async with client(fastapi_app(middleware=False)) as c:
            assert (await c.get("/items/3")).json()["child_of"] is None  # its own operation
            assert (await c.get("/token")).json() == {"same": True, "cancelled": False}
            assert (await c.get("/dep")).json() == {"status": "completed", "parent": None}
            assert (await c.get("/too-slow")).status_code == 504
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "RequestCancelationMiddleware" in warnings[0]
    assert "disconnects" in warnings[0] and "NOT observed" in warnings[0]


async def test_a_middleware_token_is_cancelled_with_the_requests_reason() -> None:
    seen: dict[str, Any] = {}

    async def endpoint(request: Request) -> JSONResponse:
        token = get_request_token(request)
        seen["token"] = token
        seen["op"] = get_request_operation(request)
        await anyio.sleep(5)
        return JSONResponse({})

    app = RequestCancelationMiddleware(Starlette(routes=[Route("/", endpoint)]))
    async with client(app) as c:
        response = await c.get("/", headers={DEADLINE_HEADER: "30"})
    assert response.status_code == 504
    token = seen["token"]
    assert token.is_cancelled and token.reason is CancelationReason.TIMEOUT


def test_bad_arguments_are_clear() -> None:
    with pytest.raises(ValueError, match="`timeout` must be a number of seconds > 0"):
        with_cancelation(timeout=-1)
    with pytest.raises(TypeError, match="`timeout`"):
        with_cancelation(timeout="5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`request` must be a Starlette/FastAPI Request"):
        get_request_token(object())
    with pytest.raises(TypeError, match="`@with_cancelation target`"):
        with_cancelation()(42)  # type: ignore[arg-type]


async def test_cancelable_dependency_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="`timeout` must be a number of seconds > 0"):
        await cancelable_dependency(object(), timeout=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`request`"):
        await cancelable_dependency(object())  # type: ignore[arg-type]


# -- the deadline header --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [(b"1500", 1.5), (b"0", 0.0), (b" 25 ", 0.025), (b"999999999", 999999.999), ("7", 0.007)],
)
def test_valid_budgets_parse(raw: bytes | str, seconds: float) -> None:
    assert parse_budget(raw) == seconds


@pytest.mark.parametrize(
    "raw", [b"", b"-5", b"+5", b"1.5", b"1e3", b"abc", b"1000000000", b"0x10", "١٢".encode(), "١٢", b"5 5"]
)
def test_malformed_budgets_are_rejected(raw: bytes | str) -> None:
    assert parse_budget(raw) is None


def test_budgets_are_written_rounded_down_and_capped() -> None:
    assert format_budget(math.inf) is None
    assert format_budget(1.2349) == "1234"
    assert format_budget(-1) == "0"
    assert format_budget(float("nan")) == "0"
    assert format_budget(1e12) == "999999999"


async def test_a_repeated_header_takes_the_smallest_valid_budget() -> None:
    seen: dict[str, float] = {}

    async def endpoint(request: Request) -> JSONResponse:
        op = get_request_operation(request)
        assert op is not None
        seen["remaining"] = op.remaining()
        return JSONResponse({})

    app = RequestCancelationMiddleware(Starlette(routes=[Route("/", endpoint)]), default_timeout=60)
    async with client(app) as c:
        await c.get("/", headers=[(DEADLINE_HEADER, "9000"), (DEADLINE_HEADER, "bad"), (DEADLINE_HEADER, "3000")])
        assert 2.5 < seen["remaining"] <= 3.0
        await c.get("/", headers={DEADLINE_HEADER: "999999999"})  # capped by the server default
        assert 59 < seen["remaining"] <= 60


# -- the httpx transports (against a mock upstream) ------------------------------------------


def recorder() -> tuple[list[httpx.Request], httpx.MockTransport]:
    requests: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, content=b"x" * 10)

    return requests, httpx.MockTransport(handle)


async def test_the_async_transport_writes_the_budget_and_caps_the_timeouts() -> None:
    requests, mock = recorder()
    async with httpx.AsyncClient(transport=AsyncDeadlineTransport(mock), timeout=30) as c:
        await c.get("http://up/none")  # no current operation: untouched
        async with Cancelable.with_timeout(2):
            await c.get("http://up/budget")
        async with Cancelable():  # no deadline: untouched
            await c.get("http://up/free")
    assert DEADLINE_HEADER not in requests[0].headers
    assert 1900 <= int(requests[1].headers[DEADLINE_HEADER]) <= 2000
    assert all(0 < v <= 2 for v in requests[1].extensions["timeout"].values())
    assert DEADLINE_HEADER not in requests[2].headers


async def test_a_spent_budget_or_a_cancelled_operation_sends_nothing() -> None:
    requests, mock = recorder()
    async with httpx.AsyncClient(transport=AsyncDeadlineTransport(mock)) as c:
        with pytest.raises(TimeoutCancelation):  # the operation's own error: nothing is sent
            async with Cancelable.with_timeout(0.01, suppress_cancelation=True) as op:
                with anyio.CancelScope(shield=True):
                    await anyio.sleep(0.02)
                    await c.get("http://up/late")
        assert op.is_cancelled
    assert requests == []


async def test_the_sync_transport_works_in_a_worker_thread() -> None:
    requests, mock = recorder()

    def call() -> int:
        with httpx.Client(transport=DeadlineTransport(mock)) as c:
            return len(c.get("http://up/x").content)

    async with Cancelable.with_timeout(3) as op:
        assert await op.run_in_thread(call) == 10
    assert 2900 <= int(requests[0].headers[DEADLINE_HEADER]) <= 3000


async def test_the_sync_transport_stops_reading_at_the_budget() -> None:
    def slow_body(request: httpx.Request) -> httpx.Response:
        def chunks():  # a body that drips past the deadline
            for _ in range(50):
                yield b"x"
                threading.Event().wait(0.01)

        return httpx.Response(200, content=chunks())

    def call() -> str:
        with httpx.Client(transport=DeadlineTransport(httpx.MockTransport(slow_body))) as c:
            try:
                c.get("http://up/slow").read()
            except BudgetExhausted as exc:
                return str(exc)
            return "read it all"

    async with Cancelable.with_timeout(0.1, suppress_cancelation=True) as op:
        result = await op.run_in_thread(call)
    assert "deadline passed while reading" in result


def test_transports_check_their_argument() -> None:
    with pytest.raises(TypeError, match="`transport` must be an httpx.AsyncBaseTransport"):
        AsyncDeadlineTransport(httpx.HTTPTransport())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`transport` must be an httpx.BaseTransport"):
        DeadlineTransport(42)  # type: ignore[arg-type]




async def test_without_the_middleware_a_request_double_is_served_the_reference_way(fresh_warning: None) -> None:
    from unittest.mock import Mock

    import fastapi

    mine = object()
    assert get_request_token(Mock(spec=Request, scope={"cancelation_token": mine})) is mine  # the key's value, as is

    @with_cancelation()
    async def endpoint(request: Request) -> dict[str, str]:
        token = request.scope["cancelation_token"]  # found although the scope has no ASGI type
        await token.cancel(CancelationReason.MANUAL, "enough")
        await anyio.sleep(1)
        return {"status": "ok"}

    with pytest.raises(fastapi.HTTPException) as caught:  # FastAPI's, as the app uses FastAPI
        await endpoint(Mock(spec=Request, scope={}))
    assert caught.value.status_code == 503 and "enough" in caught.value.detail
