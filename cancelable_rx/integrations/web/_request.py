"""Request-scoped helpers: `get_request_token`, `get_request_operation`,
`cancelable_dependency` and the `with_cancelation` endpoint decorator.

With `RequestCancelationMiddleware` installed they hand out the request's own cancellation
(client disconnect, deadline).  Without it they behave as ``hother-cancelable``'s do (a
fresh token per request) and log one warning, once per process, that names the middleware
and says disconnects are not observed without it.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request

from cancelable_rx import Cancelable, CancelationError, CancelationToken, ParentCancelation
from cancelable_rx._checks import check_timeout, fail_type

from ._connection import SCOPE_KEY, Connection, current_connection
from ._middleware import status_for, status_kind

__all__ = (
    "TOKEN_KEY",
    "cancelable_dependency",
    "get_request_operation",
    "get_request_token",
    "new_request_operation",
    "request_connection",
    "warn_without_middleware",
    "with_cancelation",
)

logger = logging.getLogger("cancelable_rx.integrations.web")
R = TypeVar("R")

TOKEN_KEY = "cancelation_token"
"""Where a token made without the middleware is kept in the scope (the reference's key)."""

_warned = False
_warn_lock = threading.Lock()


def warn_without_middleware(helper: str) -> None:
    """Log, once per process, that ``helper`` runs without the middleware."""
    global _warned
    with _warn_lock:
        if _warned:
            return
        _warned = True
    logger.warning(
        "cancelable_rx: %s() is used without RequestCancelationMiddleware: each request gets a fresh "
        "token, and client disconnects and deadline headers are NOT observed without the middleware; "
        "add it with app.add_middleware(RequestCancelationMiddleware)",
        helper,
    )


def _scope_of(request: object, param: str) -> dict[str, Any]:
    scope = getattr(request, "scope", None)
    if not isinstance(scope, dict):
        fail_type(param, "a Starlette/FastAPI Request or WebSocket (an object with an ASGI .scope dict)", request)
    return scope


def request_connection(request: object | None = None) -> Connection | None:
    """The middleware's `Connection` for ``request`` (or the current task's), or None."""
    if request is not None:
        conn = _scope_of(request, "request").get(SCOPE_KEY)
        if isinstance(conn, Connection):
            return conn
        return None
    return current_connection.get()


def get_request_operation(request: object | None = None) -> Cancelable | None:
    """The operation of ``request`` (a Starlette/FastAPI ``Request`` or ``WebSocket``), or of
    the request the current task serves when ``request`` is None; None without the middleware.

    It is running while the app handles the request: read ``is_cancelled``,
    ``cancel_reason``, ``remaining()``; make children with ``Cancelable(parent=op)``.
    """
    conn = request_connection(request)
    return conn.operation if conn is not None else None


def get_request_token(request: object) -> CancelationToken:
    """The cancellation token of ``request``: cancelled with the request's reason
    (``DISCONNECT`` when the client leaves, ``TIMEOUT`` at the deadline).

    Without the middleware: a fresh token kept in ``request.scope["cancelation_token"]``
    (the same one for the rest of the request), nothing ever cancels it for you, and one
    warning is logged per process.

    Thread-safety: the token may be read and cancelled from any thread.
    """
    scope = _scope_of(request, "request")
    conn = scope.get(SCOPE_KEY)
    if isinstance(conn, Connection):
        return conn.operation.token
    if TOKEN_KEY in scope:  # put there by an earlier call, or by the app (the reference's key): as is
        token: CancelationToken = scope[TOKEN_KEY]
        return token
    warn_without_middleware("get_request_token")
    token = scope[TOKEN_KEY] = CancelationToken()
    return token


def _describe(scope: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    method = scope.get("method", "WEBSOCKET")
    path = scope.get("path", "")
    client = scope.get("client")
    return f"{method} {path}", {"method": method, "path": path, "client": client[0] if client else None}


def new_request_operation(request: object | None, timeout: float | None, helper: str) -> Cancelable:
    """A new operation for work done on behalf of a request: a child of the request's
    operation (cancelled with it, inheriting its deadline), with an optional timeout of its
    own.  Without the middleware, an operation on the request's fresh token."""
    conn = request_connection(request)
    if conn is not None:
        parent = conn.operation
        name = parent.name or "request"
        if timeout is not None:
            return Cancelable.with_timeout(timeout, name=name, parent=parent)
        return Cancelable(name=name, parent=parent)
    if request is None:
        warn_without_middleware(helper)
        token = CancelationToken()
        name, metadata = "request", dict[str, Any]()
    else:
        scope = _scope_of(request, "request")
        token = get_request_token(request)
        name, metadata = _describe(scope)
    if timeout is not None:
        return Cancelable.with_timeout(timeout, name=name, metadata=metadata).add_source(token)
    return Cancelable.with_token(token, name=name, metadata=metadata)


async def cancelable_dependency(request: Request, timeout: float | None = None) -> Cancelable:
    """A FastAPI dependency: a new `Cancelable` for the request, to enter in the endpoint.

    It is a child of the request's operation, so the client's disconnect and the request's
    deadline cancel it (as an enclosing cancellation in the endpoint's own task; reason
    ``PARENT`` in other tasks); ``timeout`` (seconds) adds a deadline of its own
    (`TimeoutCancelation` when it passes).  Without the middleware: an operation on the
    request's fresh token (see `get_request_token`).

    FastAPI sees only the ``request`` parameter (``timeout`` is not a query parameter);
    for a timeout, write a two-line dependency::

        async def within_5s(request: Request) -> Cancelable:
            return await cancelable_dependency(request, timeout=5)
    """
    if timeout is not None:
        check_timeout(timeout, "timeout", allow_zero=False)
    _scope_of(request, "request")
    return new_request_operation(request, timeout, "cancelable_dependency")


# FastAPI builds the dependency's parameters from the signature: show it the request only.
setattr(  # noqa: B010 - a function attribute mypy does not know
    cancelable_dependency,
    "__signature__",
    inspect.signature(cancelable_dependency).replace(
        parameters=[inspect.signature(cancelable_dependency).parameters["request"]]
    ),
)


def _find_request(args: tuple[Any, ...], kwargs: dict[str, Any]) -> object | None:
    for value in (*args, *kwargs.values()):
        scope = getattr(value, "scope", None)
        if isinstance(scope, dict) and (scope.get("type") in ("http", "websocket") or isinstance(value, HTTPConnection)):
            return value
    return None


def _http_exception(status: int, detail: str) -> HTTPException:
    """Starlette's ``HTTPException``, or FastAPI's (its subclass) when the app uses FastAPI,
    so that ``except fastapi.HTTPException`` catches it as with ``hother-cancelable``."""
    fastapi = sys.modules.get("fastapi")
    cls = getattr(fastapi, "HTTPException", None) if fastapi is not None else None
    if isinstance(cls, type) and issubclass(cls, HTTPException):
        return cls(status, detail=detail)
    return HTTPException(status, detail=detail)


def with_cancelation(
    timeout: float | None = None,
    raise_on_cancel: bool = True,
) -> Callable[[Callable[..., Any]], Callable[..., Awaitable[Any]]]:
    """Decorate an endpoint so it runs inside a child of the request's operation.

    The endpoint keeps its signature (FastAPI validates its parameters as before); it needs
    no ``request`` parameter (the middleware's request is found through the task).  A sync
    endpoint runs in a worker thread (``op.run_in_thread``) that sees the request's
    cancellation through ``current_operation()``.

    Cancellation: ``timeout`` (seconds) is the endpoint's own deadline.  With
    ``raise_on_cancel`` (the default) a cancellation becomes ``HTTPException`` (FastAPI's
    when FastAPI is imported, else Starlette's) 504 (a timeout, the endpoint's or the
    request's), 499 (the client disconnected) or 503 (any other reason, with the message);
    without it the typed `CancelationError` propagates.
    A client disconnect or request deadline seen by the middleware is answered by the
    middleware itself (it cancels the endpoint as an enclosing scope).
    """
    if timeout is not None:
        check_timeout(timeout, "timeout", allow_zero=False)

    def decorator(func: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        if not callable(func):
            fail_type("@with_cancelation target", "an endpoint function", func)
        is_async = inspect.iscoroutinefunction(func)

        @functools.wraps(func)
        async def endpoint(*args: Any, **kwargs: Any) -> Any:
            request = _find_request(args, kwargs)
            op = new_request_operation(request, timeout, "with_cancelation")
            try:
                async with op:
                    if is_async:
                        return await func(*args, **kwargs)
                    return await op.run_in_thread(func, *args, **kwargs)
            except CancelationError as err:
                if not raise_on_cancel:
                    raise
                parent_reason = err.parent_reason if isinstance(err, ParentCancelation) else None
                conn = request_connection(request)
                statuses = conn.statuses if conn is not None else None
                kind = status_kind(err.reason, parent_reason)
                detail = {
                    "disconnect": "Client closed connection",
                    "timeout": "Request timeout",
                }.get(kind, f"Request cancelled: {err.message}")
                raise _http_exception(status_for(err.reason, parent_reason, statuses), detail) from err

        return endpoint

    return decorator

