"""Factory classmethods and ``combine`` for Cancelable (a mixin)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import reactivex

from ._models import CancelationReason
from ._token import CancelationToken
from .sources.condition import ConditionSource
from .sources.observable import ObservableSource
from .sources.signal import SignalSource
from .sources.timeout import check_timeout
from ._state import OperationState

if TYPE_CHECKING:
    from ._cancelable import Cancelable

__all__ = ("FactoriesMixin",)


class FactoriesMixin(OperationState):
    """``with_timeout``, ``with_token``, ``with_signal``, ``with_condition``,
    ``with_observable`` and ``combine``."""



    @classmethod
    def with_timeout(
        cls,
        timeout: float | timedelta,
        operation_id: str | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> Cancelable:
        """An operation cancelled ``timeout`` seconds after it is entered (reason ``TIMEOUT``).

        ``timeout`` is seconds (int/float) or a ``timedelta``; ``0`` cancels at the first
        checkpoint and ``math.inf`` never, as in anyio; negative or NaN is a ValueError.
        The timeout is the cancel scope's deadline: no timer, no task.
        """
        seconds = check_timeout(timeout)
        op: Cancelable = cls(operation_id=operation_id, name=name, **kwargs)  # type: ignore[assignment]
        op._default_name = "timeout"
        op._timeout = seconds
        return op

    @classmethod
    def with_token(
        cls,
        token: CancelationToken,
        operation_id: str | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> Cancelable:
        """An operation cancelled when ``token`` is cancelled, with the token's reason.

        ``op.token`` is ``token`` itself, so ``op.cancel()`` cancels the shared token (as
        in ``hother-cancelable``).  Entering with a token that is already cancelled
        cancels the operation at once; leaving raises with a message that says so.
        """
        if not isinstance(token, CancelationToken):
            raise TypeError(f"`token` must be a CancelationToken, got {token!r}")
        op: Cancelable = cls(operation_id=operation_id, name=name, **kwargs)  # type: ignore[assignment]
        op._default_name = "token_based"
        op._token = token
        return op

    @classmethod
    def with_signal(
        cls,
        *signals: int,
        operation_id: str | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> Cancelable:
        """An operation cancelled when the process receives one of ``signals`` (reason ``SIGNAL``).

        Main thread only (Python's rule for signal handlers); an unknown or uncatchable
        signal number is a ValueError.  See :class:`SignalSource`.
        """
        source = SignalSource(*signals)
        op: Cancelable = cls(operation_id=operation_id, name=name, **kwargs)  # type: ignore[assignment]
        op._default_name = "signal_based"
        op._sources = [source]
        return op

    @classmethod
    def with_condition(
        cls,
        condition: Callable[[], bool | Awaitable[bool]],
        check_interval: float = 0.1,
        condition_name: str | None = None,
        operation_id: str | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> Cancelable:
        """An operation cancelled when ``condition()`` (sync or async) returns True
        (reason ``CONDITION``), polled every ``check_interval`` seconds.
        See :class:`ConditionSource` for the error policy."""
        source = ConditionSource(condition, check_interval, condition_name)
        op: Cancelable = cls(operation_id=operation_id, name=name, **kwargs)  # type: ignore[assignment]
        op._default_name = "condition_based"
        op._sources = [source]
        return op

    @classmethod
    def with_observable(
        cls,
        observable: reactivex.Observable[Any],
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
        operation_id: str | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> Cancelable:
        """An operation cancelled by the first item of a reactivex ``observable``, with
        the ``reason`` you name.  See :class:`ObservableSource`."""
        source = ObservableSource(observable, reason, message)
        op: Cancelable = cls(operation_id=operation_id, name=name, **kwargs)  # type: ignore[assignment]
        op._default_name = "observable_based"
        op._sources = [source]
        return op

    def combine(self, *others: Cancelable) -> Cancelable:
        """A new operation cancelled by the first source of any of ``self`` and ``others``.

        All sources are merged (timeouts: the earliest deadline wins); each operation's
        token, if it has one, is listened to with its reason preserved.  The combined
        operation keeps ``self``'s parent.  The originals are not entered.
        """
        from ._cancelable import Cancelable

        me: Cancelable = self  # type: ignore[assignment]
        for i, other in enumerate(others):
            if not isinstance(other, Cancelable):
                raise TypeError(f"combine() takes Cancelable operations, got {other!r} at position {i}")
        parts = (me, *others)
        combined = type(me)(
            name=f"combined_{me.name}",
            parent=me._parent,
            metadata={"combined": True, "preserve_reason": True},
            register_globally=me._register_globally,
            suppress_cancelation=me._suppress,
        )
        sources: list[Any] = []
        tokens: list[CancelationToken] = []
        for part in parts:
            sources.extend(part._sources)
            if part._timeout < combined._timeout:
                combined._timeout = part._timeout
            if part._token is not None and part._token not in tokens:
                tokens.append(part._token)
            tokens.extend(t for t in part._tokens if t not in tokens)
        if sources:
            combined._sources = sources
        if tokens:
            combined._tokens = tuple(tokens)
        return combined
