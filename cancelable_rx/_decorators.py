"""Decorators and wrap helpers.

Every decorator builds a fresh operation per call (an operation runs once), applies
every source it was given, and keeps the decorated function's signature:
``inspect.signature`` shows the original parameters minus the injected one, so
frameworks that inspect signatures keep working.

Injection: if the function has a parameter named ``inject_param`` (default
``"cancelable"``), the running operation is passed there.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar, overload

from ._cancelable import Cancelable, current_operation
from ._checks import check_async_function, check_awaitable, check_instance, check_not_empty, check_signal
from ._token import CancelationToken

__all__ = (
    "cancelable",
    "cancelable_combine",
    "cancelable_with_condition",
    "cancelable_with_signal",
    "cancelable_with_token",
    "cancelable_method",
    "ensure_cancelable",
    "ensure_operation",
    "with_cancelable",
    "with_current_operation",
    "with_timeout",
)

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
Decorator = Callable[[Callable[..., Awaitable[R]]], Callable[..., Awaitable[R]]]


def _hide_parameter(wrapper: Callable[..., Any], sig: inspect.Signature, name: str) -> None:
    """Make ``inspect.signature(wrapper)`` show ``sig`` without the injected ``name``."""
    wrapper.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[p for p in sig.parameters.values() if p.name != name]
    )


def _run_with(
    func: Callable[..., Awaitable[R]],
    make: Callable[[Callable[..., Any]], Cancelable],
    inject_param: str | None,
    decorator: str,
) -> Callable[..., Awaitable[R]]:
    """Wrap ``func`` so each call runs inside ``make(func)`` (entered), injecting it."""
    check_async_function(func, decorator)
    sig = inspect.signature(func)
    inject = inject_param if inject_param and inject_param in sig.parameters else None

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> R:
        op = make(func)
        async with op:
            if inject is not None:
                kwargs[inject] = op
            return await func(*args, **kwargs)
        raise AssertionError("unreachable")  # pragma: no cover

    if inject is not None:
        _hide_parameter(wrapper, sig, inject)
    return wrapper


def cancelable(
    timeout: float | timedelta | None = None,
    operation_id: str | None = None,
    name: str | None = None,
    register_globally: bool = False,
    inject_param: str | None = "cancelable",
) -> Decorator[R]:
    """Run each call of an async function in a new operation (with an optional timeout).

    Cancellation: leaving a cancelled call raises the typed ``CancelationError``.
    """
    return cancelable_for(Cancelable, timeout, operation_id, name, register_globally, inject_param)


def cancelable_for(
    cls: type[Cancelable],
    timeout: float | timedelta | None,
    operation_id: str | None,
    name: str | None,
    register_globally: bool,
    inject_param: str | None,
) -> Decorator[R]:
    """`cancelable`, building operations of class ``cls`` (a face of `Cancelable`)."""
    if timeout is not None:
        cls.with_timeout(timeout)  # validate now, at decoration time

    def make(func: Callable[..., Any]) -> Cancelable:
        kw: dict[str, Any] = {
            "operation_id": operation_id,
            "name": name or func.__name__,
            "register_globally": register_globally,
        }
        return cls.with_timeout(timeout, **kw) if timeout is not None else cls(**kw)

    def decorate(func: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        wrapper = _run_with(func, make, inject_param, "cancelable")
        wrapper._cancelable_params = {  # type: ignore[attr-defined]  # the reference's attribute
            "timeout": timeout, "operation_id": operation_id, "name": name or func.__name__,
            "register_globally": register_globally,
        }
        return wrapper

    return decorate


def cancelable_method(
    timeout: float | timedelta | None = None,
    name: str | None = None,
    register_globally: bool = False,
) -> Decorator[R]:
    """`cancelable` for methods: each call runs in a new operation named
    ``ClassName.method`` (unless ``name`` is given); a ``cancelable`` parameter receives it.

    Cancellation: leaving a cancelled call raises the typed ``CancelationError``.
    """
    return cancelable_method_for(Cancelable, timeout, name, register_globally)


def cancelable_method_for(
    cls: type[Cancelable], timeout: float | timedelta | None, name: str | None, register_globally: bool
) -> Decorator[R]:
    """`cancelable_method`, building operations of class ``cls``."""
    if timeout is not None:
        cls.with_timeout(timeout)  # validate now, at decoration time

    def decorate(func: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        check_async_function(func, "cancelable_method")
        sig = inspect.signature(func)
        inject = "cancelable" in sig.parameters

        @functools.wraps(func)
        async def wrapper(self: Any, *args: Any, **kwargs: Any) -> R:
            kw: dict[str, Any] = {
                "name": name or f"{type(self).__name__}.{func.__name__}",
                "register_globally": register_globally,
            }
            op = cls.with_timeout(timeout, **kw) if timeout is not None else cls(**kw)
            async with op:
                if inject:
                    kwargs["cancelable"] = op
                return await func(self, *args, **kwargs)
            raise AssertionError("unreachable")  # pragma: no cover

        if inject:
            _hide_parameter(wrapper, sig, "cancelable")
        wrapper._cancelable_params = {  # type: ignore[attr-defined]  # the reference's attribute
            "timeout": timeout, "name": name, "register_globally": register_globally,
        }
        return wrapper

    return decorate


def cancelable_with_token(
    token: CancelationToken,
    operation_id: str | None = None,
    name: str | None = None,
    register_globally: bool = False,
    inject_param: str | None = "cancelable",
) -> Decorator[R]:
    """Each call runs in an operation cancelled by ``token``."""
    return cancelable_with_token_for(Cancelable, token, operation_id, name, register_globally, inject_param)


def cancelable_with_token_for(
    cls: type[Cancelable],
    token: CancelationToken,
    operation_id: str | None,
    name: str | None,
    register_globally: bool,
    inject_param: str | None,
) -> Decorator[R]:
    """`cancelable_with_token`, building operations of class ``cls``."""
    check_instance(token, CancelationToken, "token", "a CancelationToken")

    def make(func: Callable[..., Any]) -> Cancelable:
        return cls.with_token(
            token, operation_id=operation_id, name=name or func.__name__, register_globally=register_globally
        )

    return lambda func: _run_with(func, make, inject_param, "cancelable_with_token")


def cancelable_with_signal(
    *signals: int,
    operation_id: str | None = None,
    name: str | None = None,
    register_globally: bool = False,
    inject_param: str | None = "cancelable",
) -> Decorator[R]:
    """Each call runs in an operation cancelled by any of ``signals`` (main thread only)."""
    return cancelable_with_signal_for(Cancelable, signals, operation_id, name, register_globally, inject_param)


def cancelable_with_signal_for(
    cls: type[Cancelable],
    signals: tuple[int, ...],
    operation_id: str | None,
    name: str | None,
    register_globally: bool,
    inject_param: str | None,
) -> Decorator[R]:
    """`cancelable_with_signal`, building operations of class ``cls``."""
    check_not_empty(signals, "signals", "cancelable_with_signal(signal.SIGTERM)")
    for sig in signals:
        check_signal(sig)

    def make(func: Callable[..., Any]) -> Cancelable:
        return cls.with_signal(
            *signals, operation_id=operation_id, name=name or func.__name__, register_globally=register_globally
        )

    return lambda func: _run_with(func, make, inject_param, "cancelable_with_signal")


def cancelable_with_condition(
    condition: Callable[[], bool | Awaitable[bool]],
    check_interval: float = 0.1,
    condition_name: str | None = None,
    operation_id: str | None = None,
    name: str | None = None,
    register_globally: bool = False,
    inject_param: str | None = "cancelable",
) -> Decorator[R]:
    """Each call runs in an operation cancelled when ``condition()`` becomes true."""
    return cancelable_with_condition_for(
        Cancelable, condition, check_interval, condition_name, operation_id, name, register_globally, inject_param
    )


def cancelable_with_condition_for(
    cls: type[Cancelable],
    condition: Callable[[], bool | Awaitable[bool]],
    check_interval: float,
    condition_name: str | None,
    operation_id: str | None,
    name: str | None,
    register_globally: bool,
    inject_param: str | None,
) -> Decorator[R]:
    """`cancelable_with_condition`, building operations of class ``cls``."""
    cls.with_condition(condition, check_interval, condition_name)  # validate now

    def make(func: Callable[..., Any]) -> Cancelable:
        return cls.with_condition(
            condition,
            check_interval=check_interval,
            condition_name=condition_name,
            operation_id=operation_id,
            name=name or func.__name__,
            register_globally=register_globally,
        )

    return lambda func: _run_with(func, make, inject_param, "cancelable_with_condition")


def _copy_template(cls: type[Cancelable], template: Cancelable) -> Cancelable:
    """A fresh, unentered operation of class ``cls`` with the template's sources (fresh
    copies), timeout and tokens (a token the template was given, not its own)."""
    op = cls(name=template.name, parent=template.parent)
    op._timeout = template._timeout
    if not template._own_token and template._token is not None:
        op._token = template._token
        op._own_token = False
    op._tokens = template._tokens
    if template._sources:
        op._sources = tuple(s._fresh() for s in template._sources)
    return op


def cancelable_combine(
    *cancelables: Cancelable,
    operation_id: str | None = None,
    name: str | None = None,
    register_globally: bool = False,
    inject_param: str | None = "cancelable",
) -> Decorator[R]:
    """Each call runs in one operation cancelled by the first source of any of
    ``cancelables`` (used as templates: they are never entered themselves; every
    timeout, token, signal and condition they carry applies, fresh per call)."""
    return cancelable_combine_for(Cancelable, cancelables, operation_id, name, register_globally, inject_param)


def cancelable_combine_for(
    cls: type[Cancelable],
    cancelables: tuple[Cancelable, ...],
    operation_id: str | None,
    name: str | None,
    register_globally: bool,
    inject_param: str | None,
) -> Decorator[R]:
    """`cancelable_combine`, building operations of class ``cls``."""
    check_not_empty(
        cancelables, "cancelables", "cancelable_combine(Cancelable.with_timeout(30))",
        lead="At least one cancelable must be provided",
    )
    for i, c in enumerate(cancelables):
        check_instance(c, Cancelable, f"cancelables[{i}]", "a Cancelable (used as a template)")

    def make(func: Callable[..., Any]) -> Cancelable:
        parts = [_copy_template(cls, c) for c in cancelables]
        op = parts[0].combine(*parts[1:])
        op._name = name or func.__name__
        if operation_id is not None:
            op._id = operation_id
        op._register_globally = register_globally
        return op

    return lambda func: _run_with(func, make, inject_param, "cancelable_combine")


@overload
def with_timeout(timeout: float | timedelta, coro: None = None, operation_id: str | None = None, name: str | None = None) -> Decorator[Any]: ...
@overload
def with_timeout(timeout: float | timedelta, coro: Awaitable[T], operation_id: str | None = None, name: str | None = None) -> Awaitable[T]: ...


def with_timeout(
    timeout: float | timedelta,
    coro: Awaitable[T] | None = None,
    operation_id: str | None = None,
    name: str | None = None,
) -> Any:
    """``await with_timeout(5, fetch())`` runs a coroutine under a timeout; without
    ``coro`` it is a decorator (``@with_timeout(5)``).  Raises ``TimeoutCancelation``."""
    return with_timeout_for(Cancelable, timeout, coro, operation_id, name)


def with_timeout_for(
    cls: type[Cancelable],
    timeout: float | timedelta,
    coro: Awaitable[T] | None,
    operation_id: str | None,
    name: str | None,
) -> Any:
    """`with_timeout`, building operations of class ``cls``."""
    cls.with_timeout(timeout)  # validate now
    if coro is None:
        return cancelable_for(cls, timeout, operation_id, name, False, None)
    check_awaitable(coro, "coro")

    async def run() -> T:
        async with cls.with_timeout(timeout, operation_id=operation_id, name=name):
            return await coro
        raise AssertionError("unreachable")  # pragma: no cover

    return run()


def with_cancelable(cancel: Cancelable, inject: bool = False, inject_param: str = "cancelable") -> Decorator[R]:
    """Run the function with an existing operation available (injected if ``inject``).

    The operation is not entered here: call the function inside ``async with cancel:``.
    """
    check_instance(cancel, Cancelable, "cancel", "a Cancelable")

    def decorator(func: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        check_async_function(func, "with_cancelable")
        sig = inspect.signature(func)
        name = inject_param if inject and inject_param in sig.parameters else None

        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> R:
            if name is not None:
                kwargs[name] = cancel
            return await func(*args, **kwargs)

        if name is not None:
            _hide_parameter(wrapper, sig, name)
        return wrapper

    return decorator


def with_current_operation() -> Decorator[R]:
    """Inject ``current_operation()`` (possibly None) as the ``operation`` parameter."""

    def decorator(func: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        check_async_function(func, "with_current_operation")
        sig = inspect.signature(func)
        has = "operation" in sig.parameters

        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> R:
            if has and "operation" not in kwargs:
                kwargs["operation"] = current_operation()
            return await func(*args, **kwargs)

        if has:
            _hide_parameter(wrapper, sig, "operation")
        return wrapper

    return decorator


def ensure_cancelable(cancelable: Cancelable | None) -> Cancelable:
    """Return ``cancelable``, checked: the reference's type guard for an injected
    ``cancelable`` parameter (``Cancelable | None`` narrowed to `Cancelable`).

    Raises RuntimeError for None (the function was called without its decorator) and
    TypeError for anything that is not a `Cancelable`.
    """
    if cancelable is None:
        raise RuntimeError(
            "Cancelable parameter is None. This should never happen when using @cancelable decorator. "
            "Did you call the function directly without the decorator? Decorate it with @cancelable(...) "
            "or pass an operation, e.g. f(..., cancelable=op)"
        )
    return check_instance(cancelable, Cancelable, "cancelable", "a Cancelable or None", "pass the injected operation")


def ensure_operation(func: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """Run ``func`` inside an operation: the current one if there is one, else a new one.

    A ``cancelable`` parameter, if present, receives that operation.  Cancellation: a new
    operation leaves like any other (typed ``CancelationError``); inside the current one,
    cancellation is the current operation's.
    """
    return ensure_operation_for(Cancelable, func)


def ensure_operation_for(cls: type[Cancelable], func: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """`ensure_operation`, making operations of class ``cls``."""
    check_async_function(func, "ensure_operation")
    sig = inspect.signature(func)
    inject = "cancelable" if "cancelable" in sig.parameters else None

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> R:
        op = current_operation()
        if op is not None:
            if inject is not None:
                kwargs[inject] = op
            return await func(*args, **kwargs)
        async with cls(name=func.__name__) as new_op:
            if inject is not None:
                kwargs[inject] = new_op
            return await func(*args, **kwargs)
        raise AssertionError("unreachable")  # pragma: no cover

    if inject is not None:
        _hide_parameter(wrapper, sig, inject)
    return wrapper
