"""The cancelation error tree.

::

    Exception
    └── CancelationError            reason, message, context
        ├── TimeoutCancelation      + timeout_seconds
        ├── ManualCancelation
        ├── SignalCancelation       + signal_number
        ├── ConditionCancelation    + condition_name
        ├── ParentCancelation       + parent_id, parent_reason
        └── DisconnectCancelation   (the peer went away; not in hother-cancelable)

Leaving an operation that its own sources cancelled raises the subclass matching the
reason, chained (``__cause__``) from the backend's cancel exception, the way
``anyio.fail_after`` raises ``TimeoutError``.  ``CancelationReason.ERROR`` maps to the
base class.  The constructors match the ``hother-cancelable`` package.
"""

from __future__ import annotations

from typing import Any, Protocol

from ._models import CancelationReason, CancelEvent, OperationContext

__all__ = (
    "CancelationError",
    "ConditionCancelation",
    "DisconnectCancelation",
    "ManualCancelation",
    "ParentCancelation",
    "SignalCancelation",
    "TimeoutCancelation",
)


_MANUAL_TEXT = "Operation cancelled manually"


def _timeout_text(timeout_seconds: float) -> str:
    return f"Operation timed out after {timeout_seconds}s"


class HasRecord(Protocol):
    """Anything with an operation record (an operation); errors resolve ``context`` from it."""

    @property
    def context(self) -> OperationContext: ...


class CancelationError(Exception):
    """Base class: an operation was cancelled.

    Attributes: ``reason`` (`CancelationReason`), ``message`` (str) and
    ``context`` (the `OperationContext` of the cancelled operation, or ``None``).
    """

    _op: HasRecord | None = None

    def __init__(
        self,
        reason: CancelationReason,
        message: str | None = None,
        context: OperationContext | None = None,
    ) -> None:
        self.reason = reason
        self.message = message or f"Operation cancelled: {reason.value}"
        self._context = context
        super().__init__(self.message)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle with the attributes (reason, message, subclass fields), not the args."""
        state = {k: v for k, v in self.__dict__.items() if k != "_op"}
        return (_restore, (type(self), self.message, state))

    @property
    def context(self) -> OperationContext | None:
        """The cancelled operation's record (built on first access)."""
        if self._context is None and self._op is not None:
            self._context = self._op.context
        return self._context

    @context.setter
    def context(self, value: OperationContext | None) -> None:
        self._context = value


class TimeoutCancelation(CancelationError, TimeoutError):
    """The operation's deadline passed.

    It is also a `TimeoutError` (as ``anyio.fail_after`` raises), so ``except TimeoutError``
    and retry libraries that look for one see it.
    """

    def __init__(
        self,
        timeout_seconds: float,
        message: str | None = None,
        context: OperationContext | None = None,
    ) -> None:
        self.timeout_seconds = timeout_seconds
        super().__init__(CancelationReason.TIMEOUT, message or _timeout_text(timeout_seconds), context)


class ManualCancelation(CancelationError):
    """The operation was cancelled by a token or an explicit ``cancel()``."""

    def __init__(self, message: str | None = None, context: OperationContext | None = None) -> None:
        super().__init__(CancelationReason.MANUAL, message or _MANUAL_TEXT, context)


class SignalCancelation(CancelationError):
    """The process received a signal the operation listens for."""

    def __init__(
        self,
        signal_number: int,
        message: str | None = None,
        context: OperationContext | None = None,
    ) -> None:
        self.signal_number = signal_number
        super().__init__(
            CancelationReason.SIGNAL,
            message or f"Operation cancelled by signal {signal_number}",
            context,
        )


class ConditionCancelation(CancelationError):
    """A polled condition became true."""

    def __init__(
        self,
        condition_name: str | None = None,
        message: str | None = None,
        context: OperationContext | None = None,
    ) -> None:
        self.condition_name = condition_name
        default = (
            f"Operation cancelled: {condition_name} condition met"
            if condition_name
            else "Operation cancelled: condition met"
        )
        super().__init__(CancelationReason.CONDITION, message or default, context)


class ParentCancelation(CancelationError):
    """The parent operation was cancelled."""

    def __init__(
        self,
        parent_id: str,
        parent_reason: CancelationReason | None = None,
        message: str | None = None,
        context: OperationContext | None = None,
    ) -> None:
        self.parent_id = parent_id
        self.parent_reason = parent_reason
        default = f"Operation cancelled: parent {parent_id} was cancelled"
        if parent_reason is not None:
            default += f" ({parent_reason.value})"
        super().__init__(CancelationReason.PARENT, message or default, context)


class DisconnectCancelation(CancelationError):
    """The peer went away: an HTTP client disconnected, a WebSocket closed, a connection
    to the process that asked for the work was lost (reason ``DISCONNECT``)."""

    def __init__(self, message: str | None = None, context: OperationContext | None = None) -> None:
        super().__init__(CancelationReason.DISCONNECT, message or "Operation cancelled: the peer disconnected", context)


def _restore(cls: type[CancelationError], message: str, state: dict[str, Any]) -> CancelationError:
    err = cls.__new__(cls, message)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


_TIMEOUT = CancelationReason.TIMEOUT


def _timeout(e: CancelEvent) -> CancelationError:
    """A `TimeoutCancelation` in the state its constructor leaves, built without running the
    ``__init__`` chain (the error of every timeout).  ``args`` is set here: ``OSError.__new__``
    (it is a ``TimeoutError``) leaves it empty."""
    seconds = getattr(e.source, "timeout_seconds", None)
    if seconds is None:
        seconds = 0.0
    message = e.message or _timeout_text(seconds)
    err = TimeoutCancelation.__new__(TimeoutCancelation, message)
    err.args = (message,)
    err.__dict__ = {"timeout_seconds": seconds, "reason": _TIMEOUT, "message": message, "_context": None}
    return err


def _signal(e: CancelEvent) -> CancelationError:
    return SignalCancelation(_attr(e.source, "signal_number", 0), e.message)


def _condition(e: CancelEvent) -> CancelationError:
    return ConditionCancelation(_attr(e.source, "condition_name", None), e.message)


def _parent(e: CancelEvent) -> CancelationError:
    return ParentCancelation(_attr(e.source, "parent_id", "?"), _attr(e.source, "parent_reason", None), e.message)


_BUILDERS = {
    CancelationReason.TIMEOUT: _timeout,
    # (MANUAL: error_for builds it itself when the reason is the enum member; this entry
    # serves a reason given as its string value, as every other entry does)
    CancelationReason.MANUAL: lambda e: ManualCancelation(e.message),
    CancelationReason.SIGNAL: _signal,
    CancelationReason.CONDITION: _condition,
    CancelationReason.PARENT: _parent,
    CancelationReason.ERROR: lambda e: CancelationError(CancelationReason.ERROR, e.message),
    CancelationReason.DISCONNECT: lambda e: DisconnectCancelation(e.message),
}


_new_exception = BaseException.__new__
_MANUAL = CancelationReason.MANUAL


def error_for(event: CancelEvent, op: HasRecord | None = None) -> CancelationError:
    """Build the typed error for ``event``; its ``context`` resolves lazily from ``op``."""
    if event.reason is _MANUAL:
        # the error of every token cancel, in the state its constructor leaves, built without
        # the ``__init__`` chain (``BaseException.__new__`` sets ``args``), with no builder call
        message = event.message or _MANUAL_TEXT
        manual = _new_exception(ManualCancelation, message)
        manual.__dict__ = {"reason": _MANUAL, "message": message, "_context": None, "_op": op}
        return manual
    err = _BUILDERS[event.reason](event)
    err._op = op
    return err


def _attr(obj: object, name: str, default: Any) -> Any:
    value = getattr(obj, name, default)
    return default if value is None and default is not None else value
