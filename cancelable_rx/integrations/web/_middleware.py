"""`RequestCancelationMiddleware`: one operation per HTTP request and WebSocket connection.

Pure ASGI (no framework needed): it serves Starlette, FastAPI and any ASGI app.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Final

import anyio.lowlevel
from starlette.requests import ClientDisconnect
from starlette.websockets import WebSocketDisconnect

from cancelable_rx import Cancelable, CancelationError, CancelationReason, OperationStatus
from cancelable_rx._checks import check_timeout, fail_type, fail_value

from ._connection import (
    SCOPE_KEY,
    Connection,
    Receive,
    ResponseCancelled,
    Scope,
    Send,
    current_connection,
    ended_receive,
    ended_send,
)
from ._deadline import DEADLINE_HEADER, read_budget

__all__ = ("DEFAULT_STATUSES", "RequestCancelationMiddleware", "status_for")

logger = logging.getLogger("cancelable_rx.integrations.web")

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_STATUSES: Final = {"disconnect": 499, "timeout": 504, "cancelled": 503}
"""The statuses of a cancelled request: the client closed the connection (499, nginx's
convention), the deadline passed (504), any other cancellation (503)."""

WEBSOCKET_CANCEL_CODE: Final = 1011
"""The close code sent when a WebSocket connection's operation is cancelled for another
reason than the client leaving (its deadline, a token): 1011, "internal error"."""

_INF: Final = math.inf
_HEADER_BYTES: Final = DEADLINE_HEADER.encode("ascii")
_HEADER_LEN: Final = len(_HEADER_BYTES)
_NO_BODY_VERSIONS: Final = ("1.1", "1.0")
_CANCELLED: Final = OperationStatus.CANCELLED
_DETAILS: Final = {
    "disconnect": "Client Closed Request: the client disconnected",
    "timeout": "Gateway Timeout: the request's deadline passed",
    "cancelled": "Service Unavailable: the request was cancelled",
}


def status_kind(reason: CancelationReason | None, parent_reason: CancelationReason | None = None) -> str:
    """``"disconnect"``, ``"timeout"`` or ``"cancelled"`` for a cancellation ``reason``
    (a ``PARENT`` reason is classified by the parent's reason)."""
    if reason is CancelationReason.PARENT and parent_reason is not None:
        reason = parent_reason
    if reason is CancelationReason.DISCONNECT:
        return "disconnect"
    if reason is CancelationReason.TIMEOUT:
        return "timeout"
    return "cancelled"


def status_for(
    reason: CancelationReason | None,
    parent_reason: CancelationReason | None = None,
    statuses: dict[str, int] | None = None,
) -> int:
    """The HTTP status for a request cancelled with ``reason`` (see `DEFAULT_STATUSES`)."""
    return (statuses or DEFAULT_STATUSES)[status_kind(reason, parent_reason)]


def _check_status(value: object, param: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        fail_type(param, "an HTTP status code (int)", value, "e.g. 499, 504 or 503")
    if not 100 <= value <= 599:
        fail_value(param, "an HTTP status code between 100 and 599", value, "e.g. 499, 504 or 503")
    return value


def _is_refused_response(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_refused_response(e) for e in exc.exceptions)
    return isinstance(exc, ResponseCancelled)


def _is_disconnect_error(exc: BaseException) -> bool:
    """What an app raises when it learns the client left: ``ClientDisconnect``,
    ``WebSocketDisconnect``, an ``OSError`` from ``send`` (or a group of those)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_disconnect_error(e) for e in exc.exceptions)
    return isinstance(exc, (OSError, ClientDisconnect, WebSocketDisconnect))


class RequestCancelationMiddleware:
    """ASGI middleware: each HTTP request and WebSocket connection runs inside its own
    operation (a `Cancelable`), cancelled when the client disconnects (reason
    ``DISCONNECT``) or when the request's deadline passes (reason ``TIMEOUT``).

    The deadline is ``default_timeout`` (seconds; None or ``math.inf`` for none), shortened
    by the client's ``x-request-timeout-ms`` header (a remaining budget in milliseconds; see
    ``docs/web.md``).  A malformed header is ignored with a warning.

    The disconnect is observed through the app's own ``receive`` and ``send`` (and, for
    HTTP, a watcher that reads ``receive`` only once the request body is complete): the
    body always reaches the app, chunked uploads included.  See ``_connection.py``.

    Cancellation: the app is cancelled at its next checkpoint.  If no response was started,
    the middleware answers ``disconnect_status`` (499), ``timeout_status`` (504) or
    ``cancelled_status`` (503, any other reason) with a JSON body ``{"detail": ...}``; a
    WebSocket connection cancelled for another reason than a disconnect is closed with code
    1011.  A response already started is left incomplete (the server closes the
    connection, so the client sees a truncated body rather than a complete one).  A
    ``CancelationError`` the app lets escape is answered the same way (a
    ``TimeoutCancelation`` with 504).  A cancellation from an enclosing scope (a server
    shutting down) propagates untouched.  The operation's record tells how the request
    ended: ``COMPLETED``, ``CANCELLED`` with the exact reason, or ``FAILED``.

    Thread-safety: the operation may be cancelled from any thread (``cancel_sync``);
    worker threads of the request (``op.run_in_thread``, sync endpoints run in anyio's
    thread pool) see its cancellation through ``current_operation().is_cancelled``.

    Args:
        app: the ASGI application.
        default_timeout: the server's own deadline for every request, in seconds (None: no
            deadline unless the client sends a budget).
        disconnect_status: status recorded for a client that disconnected (keyword-only).
        timeout_status: status of a request whose deadline passed.
        cancelled_status: status of a request cancelled for another reason.
        register_globally: track each request's operation in the `OperationRegistry`.
    """

    def __init__(
        self,
        app: ASGIApp,
        default_timeout: float | None = None,
        *,
        disconnect_status: int = 499,
        timeout_status: int = 504,
        cancelled_status: int = 503,
        register_globally: bool = False,
    ) -> None:
        if not callable(app):
            fail_type("app", "an ASGI application (an async callable app(scope, receive, send))", app)
        self.app = app
        self.default_timeout = default_timeout
        self._timeout = _INF if default_timeout is None else check_timeout(
            default_timeout, "default_timeout", allow_zero=False
        )
        self.statuses = {
            "disconnect": _check_status(disconnect_status, "disconnect_status"),
            "timeout": _check_status(timeout_status, "timeout_status"),
            "cancelled": _check_status(cancelled_status, "cancelled_status"),
        }
        self._register = bool(register_globally)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            method = scope["method"]
            websocket = False
            # HTTP/1 framing says whether a body may follow (see Connection)
            no_body = scope.get("http_version") in _NO_BODY_VERSIONS
        elif kind == "websocket":
            method = "WEBSOCKET"
            websocket = True
            no_body = False
        else:
            await self.app(scope, receive, send)
            return
        timeout = self._timeout
        budget_read = False
        for name, value in scope.get("headers") or ():  # one pass, by length first
            size = len(name)
            if size == 14:
                if name == b"content-length" and value.strip() != b"0":
                    no_body = False
            elif size == 17:
                if name == b"transfer-encoding":
                    no_body = False
            elif size == _HEADER_LEN and not budget_read and (name == _HEADER_BYTES or name.lower() == _HEADER_BYTES):
                budget_read = True
                timeout = self._budget(scope, timeout)
        path = scope.get("path", "")
        client = scope.get("client")
        metadata = {"method": method, "path": path, "client": client[0] if client else None}
        if timeout != _INF:
            op = Cancelable.with_timeout(
                timeout, name=f"{method} {path}", metadata=metadata, register_globally=self._register,
                suppress_cancelation=True,
            )
        else:
            op = Cancelable(
                name=f"{method} {path}", metadata=metadata, register_globally=self._register,
                suppress_cancelation=True,
            )
        conn = Connection(receive, send, op, self.statuses, websocket, no_body)
        scope[SCOPE_KEY] = conn
        token = current_connection.set(conn)
        try:
            try:
                async with op:
                    try:
                        await self.app(scope, conn.receive, conn.send)
                    except Exception as exc:
                        if _is_refused_response(exc):
                            pass  # the operation is cancelled: answered below
                        elif conn.disconnected and _is_disconnect_error(exc):
                            # The app's own reaction to the disconnect: the operation is
                            # already cancelled (DISCONNECT), so this checkpoint delivers that.
                            await anyio.lowlevel.checkpoint()
                            raise
                        else:
                            raise
                    finally:
                        if conn._task is not None or conn.closers is not None:
                            await conn.close()
                        else:  # nothing to stop or close (the common case): no await
                            conn.ended = True
            except CancelationError as err:
                # A typed cancellation the app let escape: the operation recorded its reason.
                logger.debug("cancelable_rx: %s %s ended with %r", method, path, err)
            if op.status is _CANCELLED:
                await self._answer_cancelled(conn, op)
        finally:
            conn.ended = True  # conn.release(), inlined: let go of the server's receive and send
            conn._receive = ended_receive
            conn._send = ended_send
            current_connection.reset(token)

    def _budget(self, scope: Scope, timeout: float) -> float:
        """The request's timeout: ``timeout``, shortened by a valid deadline header; a
        malformed one is logged and ignored."""
        budget, bad = read_budget(scope["headers"])
        if budget is not None:
            return budget if budget < timeout else timeout
        if bad is not None:
            logger.warning(
                "cancelable_rx: ignoring a malformed %s header %r on %s %s (expected 0 to 9 digits, "
                "the remaining budget in milliseconds); using the server's default timeout (%s)",
                DEADLINE_HEADER,
                bad[:40],
                scope.get("method", "WEBSOCKET"),
                scope.get("path", ""),
                "none" if self._timeout == _INF else f"{self._timeout} s",
            )
        return timeout

    async def _answer_cancelled(self, conn: Connection, op: Cancelable) -> None:
        """Answer a cancelled request whose response has not started (see the class)."""
        kind = status_kind(op.cancel_reason)
        if conn.response_started or kind == "disconnect" and conn.is_websocket:
            return
        if conn.is_websocket:
            await conn.answer({"type": "websocket.close", "code": WEBSOCKET_CANCEL_CODE, "reason": _DETAILS[kind][:100]})
            return
        body = json.dumps({"detail": _DETAILS[kind]}).encode()
        await conn.answer(
            {
                "type": "http.response.start",
                "status": self.statuses[kind],
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            },
            {"type": "http.response.body", "body": body, "more_body": False},
        )
