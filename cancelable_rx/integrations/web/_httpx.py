"""httpx transports that carry the current operation's remaining budget to the next hop.

``AsyncDeadlineTransport`` (for ``httpx.AsyncClient``) and ``DeadlineTransport`` (for
``httpx.Client``, typically in a worker thread of ``op.run_in_thread``) wrap another
transport.  For each request made while an operation is current (``current_operation()``)
and has a deadline, they

* write the remaining budget into the ``x-request-timeout-ms`` header (rounded down to the
  millisecond; a budget already spent sends nothing and raises `BudgetExhausted`);
* cap httpx's connect/read/write/pool timeouts at the remaining budget;
* stop the request when the budget ends: in async code the operation's own cancel scope
  does it; in a worker thread, where nothing can interrupt a blocking read, the response
  body raises `BudgetExhausted` (an ``httpx.TimeoutException``) at the first chunk read
  after the deadline, and each read waits at most the budget left when it started.

A request made after the operation was cancelled (the client left, a token) is not sent:
the operation's typed `CancelationError` is raised instead.  Without a current operation,
or one without a deadline, requests pass through untouched.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import anyio.from_thread
import httpx

from cancelable_rx import Cancelable, current_operation
from cancelable_rx._checks import fail_type

from ._deadline import DEADLINE_HEADER, format_budget

__all__ = ("AsyncDeadlineTransport", "BudgetExhausted", "DeadlineTransport")

_INF = math.inf
_PHASES = ("connect", "read", "write", "pool")


class BudgetExhausted(httpx.TimeoutException):
    """The current operation's deadline passed before or while an outgoing request ran."""


def _cap_timeouts(request: httpx.Request, remaining: float) -> None:
    timeouts = dict(request.extensions.get("timeout") or {})
    for phase in _PHASES:
        value = timeouts.get(phase)
        if value is None or value > remaining:
            timeouts[phase] = remaining
    request.extensions["timeout"] = timeouts


def _stamp(request: httpx.Request, remaining: float) -> None:
    """Write the budget into ``request`` (or raise if it is spent)."""
    if remaining <= 0:
        raise BudgetExhausted(
            f"the current operation's deadline has passed: {request.method} {request.url} was not sent",
            request=request,
        )
    value = format_budget(remaining)
    assert value is not None
    request.headers[DEADLINE_HEADER] = value
    _cap_timeouts(request, remaining)


def _check_transport(transport: object, cls: type, param: str, example: str) -> None:
    if not isinstance(transport, cls):
        fail_type(param, f"an {cls.__module__}.{cls.__qualname__} or None", transport, example)


class AsyncDeadlineTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncClient`` transport that propagates the current operation's deadline
    (see the module docstring): ``httpx.AsyncClient(transport=AsyncDeadlineTransport())``.

    Cancellation: inside the operation's block the request is interrupted by the
    operation's own deadline (its cancel scope), like any await there.
    """

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        if transport is None:
            transport = httpx.AsyncHTTPTransport()
        _check_transport(transport, httpx.AsyncBaseTransport, "transport", "e.g. httpx.AsyncHTTPTransport()")
        self.transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        op = current_operation()
        if op is not None and op.is_running:
            await op.check_cancelation()
            remaining = op.remaining()
            if remaining != _INF:
                _stamp(request, remaining)
        return await self.transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self.transport.aclose()


def _remaining_from_thread(op: Cancelable) -> float:
    """``op.remaining()`` from any thread: asked on the loop from an anyio worker thread,
    read directly on the loop thread; ``inf`` where neither applies."""
    try:
        return anyio.from_thread.run_sync(op.remaining)
    except RuntimeError:  # not a worker thread of a running loop
        try:
            return op.remaining()
        except RuntimeError:
            return _INF


class _BudgetStream(httpx.SyncByteStream):
    """A response body that stops at the deadline (monotonic clock, this thread)."""

    def __init__(self, stream: httpx.SyncByteStream, deadline: float, request: httpx.Request) -> None:
        self._stream = stream
        self._deadline = deadline
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            if time.monotonic() >= self._deadline:
                raise BudgetExhausted(
                    f"the current operation's deadline passed while reading the response to "
                    f"{self._request.method} {self._request.url}",
                    request=self._request,
                )
            yield chunk

    def close(self) -> None:
        self._stream.close()


class DeadlineTransport(httpx.BaseTransport):
    """An ``httpx.Client`` transport that propagates the current operation's deadline (see
    the module docstring): ``httpx.Client(transport=DeadlineTransport())``.

    Thread-safety: meant for worker threads of ``op.run_in_thread`` (and sync endpoints
    served from anyio's thread pool), where ``current_operation()`` is the operation.
    """

    def __init__(self, transport: httpx.BaseTransport | None = None) -> None:
        if transport is None:
            transport = httpx.HTTPTransport()
        _check_transport(transport, httpx.BaseTransport, "transport", "e.g. httpx.HTTPTransport()")
        self.transport = transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        op = current_operation()
        if op is None or not op.is_running:
            return self.transport.handle_request(request)
        op.check_cancelation_sync()
        remaining = _remaining_from_thread(op)
        if remaining == _INF:
            return self.transport.handle_request(request)
        deadline = time.monotonic() + remaining
        _stamp(request, remaining)
        response = self.transport.handle_request(request)
        stream: Any = response.stream
        if isinstance(stream, httpx.SyncByteStream):
            response.stream = _BudgetStream(stream, deadline, request)
        return response

    def close(self) -> None:
        self.transport.close()
