"""Every argument check of the package, in one place.

The rule: a value of the wrong *type* raises ``TypeError``; a value of the right type that
breaks a rule raises ``ValueError``.  Every message names the parameter, states the rule,
shows the value it got and, where one exists, the fix::

    `timeout` must be a number of seconds >= 0 or a timedelta, got -1; use math.inf for no timeout

Checks run at the call that made the mistake (constructors, factories, decorators at
decoration time), never later on the event loop.  None of them is on a per-item or
per-enter hot path unless noted.
"""

from __future__ import annotations

import inspect
import math
import signal
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from types import FunctionType
from typing import Any, NoReturn

from ._models import CancelationReason, OperationStatus

__all__ = (
    "fail_type",
    "fail_value",
    "check_async_function",
    "check_async_iterable",
    "check_aware_datetime",
    "check_awaitable",
    "check_callable",
    "check_condition",
    "check_instance",
    "check_interval",
    "check_message",
    "check_metadata",
    "check_non_negative_int",
    "check_not_empty",
    "check_optional_str",
    "check_positive_int",
    "check_reason",
    "check_signal",
    "check_status",
    "check_str",
    "check_task_limit",
    "check_timeout",
)


def _describe(value: object) -> str:
    """The value as shown in a message: its repr (shortened), and its type where the repr
    does not already show it."""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    if value is None or isinstance(value, (bool, int, float, str)) or text.startswith("<"):
        return text
    return f"{text} ({type(value).__name__})"


def _message(param: str, rule: str, value: object, fix: str | None) -> str:
    return f"`{param}` must be {rule}, got {_describe(value)}" + (f"; {fix}" if fix else "")


def fail_type(param: str, rule: str, value: object, fix: str | None = None, lead: str | None = None) -> NoReturn:
    """Raise TypeError naming ``param``, the ``rule``, the ``value`` and the ``fix``.

    ``lead`` puts a sentence first (the reference package's wording, which users match in
    ``pytest.raises(match=...)``)."""
    text = _message(param, rule, value, fix)
    raise TypeError(f"{lead}: {text}" if lead else text)


def fail_value(param: str, rule: str, value: object, fix: str | None = None, lead: str | None = None) -> NoReturn:
    """Raise ValueError naming ``param``, the ``rule``, the ``value`` and the ``fix`` (after
    ``lead``, as `fail_type`)."""
    text = _message(param, rule, value, fix)
    raise ValueError(f"{lead}: {text}" if lead else text)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_timeout(value: object, param: str = "timeout", *, allow_zero: bool = True, lead: str | None = None) -> float:
    """A duration: a number of seconds or a ``timedelta``; ``math.inf`` means never.

    ``0`` cancels at the first checkpoint (as in anyio) unless ``allow_zero`` is False.
    ``lead`` goes first in the message of a bad value (see `fail_type`).
    """
    if type(value) is float or type(value) is int:  # the common case, checked first
        if 0 < value < 1e300 or (value == 0 and allow_zero):
            return float(value)
    rule = "a number of seconds >= 0 or a timedelta" if allow_zero else "a number of seconds > 0 or a timedelta"
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif _is_number(value):
        try:
            seconds = float(value)  # type: ignore[arg-type]
        except OverflowError:
            fail_value(param, rule + " that fits a float", "an int with " + str(len(str(value))) + " digits",
                       "use math.inf for no timeout")
    else:
        fail_type(param, rule, value, "e.g. 30, 0.5 or timedelta(seconds=30)")
    if math.isnan(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        fail_value(param, rule, value, "use math.inf for no timeout", lead and f"{lead}, got {seconds:g}")
    return seconds


def check_interval(value: object, param: str = "check_interval") -> float:
    """A polling interval: a finite number of seconds > 0."""
    if type(value) is float and 0 < value < math.inf:
        return value  # the common case, checked in one comparison
    if not _is_number(value):
        fail_type(param, "a number of seconds", value, "e.g. 0.1")
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except OverflowError:
        fail_value(param, "a finite number of seconds > 0", value, "e.g. 0.1")
    if not (math.isfinite(seconds) and seconds > 0):
        fail_value(param, "a finite number of seconds > 0", value, "e.g. 0.1")
    return seconds


def check_positive_int(value: object, param: str, fix: str | None = None) -> int:
    """An int > 0 (bool is not an int here)."""
    if isinstance(value, bool) or not isinstance(value, int):
        fail_type(param, "an int > 0", value, fix)
    if value <= 0:
        fail_value(param, "an int > 0", value, fix)
    return value


def check_non_negative_int(value: object, param: str, fix: str | None = None) -> int:
    """An int >= 0 (bool is not an int here)."""
    if isinstance(value, bool) or not isinstance(value, int):
        fail_type(param, "an int >= 0", value, fix)
    if value < 0:
        fail_value(param, "an int >= 0", value, fix)
    return value


def check_str(value: object, param: str, fix: str | None = None) -> str:
    if not isinstance(value, str):
        fail_type(param, "a str", value, fix)
    return value


def check_optional_str(value: object, param: str, fix: str | None = None) -> str | None:
    if value is not None and not isinstance(value, str):
        fail_type(param, "a str or None", value, fix)
    return value


def check_message(value: object, param: str = "message") -> str | None:
    """A cancel message: free text or None."""
    if value is not None and not isinstance(value, str):
        fail_type(param, "a str or None", value, f"pass text, e.g. {param}={str(value)!r}")
    return value


def check_metadata(value: object, param: str = "metadata") -> dict[str, Any] | None:
    """Operation metadata: a mapping with str keys (copied into a dict), or None."""
    if value is None:
        return None
    if not isinstance(value, (dict, Mapping)):
        fail_type(param, "a dict (str keys) or None", value, f"e.g. {param}={{'job': 42}}")
    for key in value:
        if not isinstance(key, str):
            fail_type(f"{param} key", "a str", key)
    return dict(value)


def check_reason(value: object, param: str = "reason", fix: str | None = None) -> CancelationReason:
    """A ``CancelationReason`` (its string value is accepted too).  ``fix`` replaces the
    suggestion of the error (for a reason that is not an argument of a call)."""
    if isinstance(value, CancelationReason):
        return value
    if isinstance(value, str):
        try:
            return CancelationReason(value)
        except ValueError:
            fail_value(
                param,
                "a CancelationReason (" + ", ".join(r.value for r in CancelationReason) + ")",
                value,
                fix or "pass free text as message=...",
            )
    fail_type(param, "a CancelationReason", value, fix or "e.g. CancelationReason.MANUAL; pass free text as message=...")


def check_status(value: object, param: str = "status") -> OperationStatus | None:
    if value is not None and not isinstance(value, OperationStatus):
        fail_type(param, "an OperationStatus or None", value, "e.g. OperationStatus.RUNNING")
    return value


def check_callable(value: object, param: str, shape: str) -> Callable[..., Any]:
    """Any callable; ``shape`` describes how it is called, e.g. ``callback(context)``."""
    if not callable(value):
        fail_type(param, f"callable as {shape}", value)
    return value


def check_condition(value: object, param: str = "condition") -> Callable[[], Any]:
    """A predicate called with no arguments (sync or async)."""
    if not callable(value):
        fail_type(param, "a callable taking no arguments and returning bool (or an awaitable of bool)", value)
    if type(value) is FunctionType and value.__code__.co_argcount == len(value.__defaults__ or ()) and (
        not value.__code__.co_kwonlyargcount
        or len(value.__kwdefaults__ or ()) == value.__code__.co_kwonlyargcount
    ) and "__wrapped__" not in value.__dict__:
        return value  # the common case (a function or lambda), without inspect.signature's cost
    try:
        sig = inspect.signature(value)
    except (TypeError, ValueError):  # builtins without a signature: accept
        return value
    required = [
        p.name
        for p in sig.parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if required:
        fail_type(
            param,
            "a callable taking no arguments",
            value,
            f"it requires {', '.join(required)}; wrap it, e.g. lambda: {getattr(value, '__name__', 'check')}(...)",
        )
    return value


def check_instance(value: object, cls: type | tuple[type, ...], param: str, rule: str, fix: str | None = None) -> Any:
    """``value`` must be an instance of ``cls`` (described by ``rule``)."""
    if not isinstance(value, cls):
        fail_type(param, rule, value, fix)
    return value


def check_aware_datetime(value: object, param: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        fail_type(param, "a datetime or None", value)
    if value.tzinfo is None or value.utcoffset() is None:
        fail_value(param, "timezone-aware", value, "e.g. datetime.now(UTC) - timedelta(minutes=5)")
    return value


_UNCATCHABLE = {getattr(signal, n) for n in ("SIGKILL", "SIGSTOP") if hasattr(signal, n)}


def check_signal(value: object, param: str = "signals") -> int:
    """A catchable signal number (``signal.SIGTERM``...); returned as an int."""
    if isinstance(value, bool) or not isinstance(value, int):
        fail_type(param, "signal numbers", value, "e.g. signal.SIGTERM", f"Signal must be an integer, got {type(value)}")
    try:
        signum = signal.Signals(value)
    except ValueError:
        fail_value(param, "valid signal numbers (signal.valid_signals())", value, "e.g. signal.SIGTERM")
    if signum in _UNCATCHABLE:
        fail_value(param, "signals a process can catch", value, f"{signum.name} cannot be caught; use SIGTERM or SIGINT")
    return int(signum)


def check_async_function(value: object, decorator: str) -> Callable[..., Any]:
    """What a decorator decorates: an ``async def`` function."""
    if not inspect.iscoroutinefunction(value):
        fail_type(f"@{decorator} target", "an async function (async def)", value, "decorate an `async def` function")
    return value


def check_awaitable(value: object, param: str) -> Any:
    if not inspect.isawaitable(value):
        fail_type(param, "an awaitable", value, "call the coroutine function, e.g. fetch() rather than fetch")
    return value


def check_not_empty(values: tuple[object, ...], param: str, example: str, lead: str | None = None) -> None:
    """A variadic argument that needs at least one value.

    ``lead`` puts a sentence first (the reference package's wording, which users match in
    ``pytest.raises(match=...)``)."""
    if not values:
        text = _message(param, "at least one value", values, f"e.g. {example}")
        raise ValueError(f"{lead}: {text}" if lead else text)


def check_task_limit(value: object, param: str = "task_limit") -> int | None:
    """How many tasks a stream operator may run at once: None (no limit) or an int > 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        fail_type(param, "None or an int > 0", value, "None for no limit, 1 to run one at a time")
    if value <= 0:
        fail_value(param, "None or an int > 0", value, "None for no limit, 1 to run one at a time")
    return value


def check_async_iterable(value: object, param: str) -> Any:
    """A stream operator's source: anything with ``__aiter__`` (an async generator, an
    aiostream stream...)."""
    if not hasattr(value, "__aiter__"):
        fix = "wrap a plain iterable with ops.iterate(...)" if hasattr(value, "__iter__") else None
        fail_type(param, "an async iterable", value, fix)
    return value
