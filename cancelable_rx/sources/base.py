"""The base of every cancelation source: a hot, fire-once observable of CancelEvent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import reactivex

from .._models import CancelationReason, CancelEvent
from .._rx import FireOnce

if TYPE_CHECKING:
    from .._loop import LoopHandle
    from .composite import AllOfSource, AnyOfSource

__all__ = ("ArmContext", "CancelationSource", "as_source")


class ArmContext(Protocol):
    """What an operation offers the sources it arms."""

    @property
    def handle(self) -> LoopHandle:
        """The loop of the operation."""

    def start_soon(self, fn: Callable[[], Awaitable[Any]]) -> None:
        """Run ``fn`` in the operation's task group until the operation exits."""


class CancelationSource(FireOnce[CancelEvent]):
    """A hot observable that emits one :class:`CancelEvent` and completes.

    Cancellation: ``fire()`` (or the source's own trigger) emits once; every operation
    the source was added to is cancelled with the source's reason.  A source that has
    fired stays fired: an operation entered with it later is cancelled at once.
    Thread-safety: ``fire`` may be called from any thread; subscribing and disposing are
    thread-safe and idempotent.

    Sources compose: ``a | b`` (any-of) and ``a & b`` (all-of, latched).
    """

    reason: CancelationReason = CancelationReason.MANUAL

    def __init__(self, name: str | None = None) -> None:
        super().__init__()
        self.name = name
        self._armed = 0

    # -- firing ---------------------------------------------------------------------

    def default_message(self) -> str:
        return f"{type(self).__name__} fired"

    def fire(self, message: str | None = None, reason: CancelationReason | None = None) -> bool:
        """Emit the cancel event now.  Returns False if the source had already fired."""
        return self._fire_value(CancelEvent(reason or self.reason, message or self.default_message(), self))

    async def trigger_cancelation(self, message: str | None = None) -> None:
        """Async spelling of :meth:`fire` (the ``hother-cancelable`` source API)."""
        self.fire(message)

    @property
    def event(self) -> CancelEvent | None:
        """The event this source emitted, or None."""
        return self._value if self._fired else None

    def _fresh(self) -> CancelationSource:
        """An unfired copy with the same configuration (decorators build one per call)."""
        raise TypeError(f"{type(self).__name__} cannot be reused as a template; create one per operation")

    # -- arming (called by operations; reference-counted) ----------------------------

    def _needs_tasks(self, deadline_ok: bool) -> bool:
        """True if arming this source starts tasks (polling, timers)."""
        return False

    def _arm(self, ctx: ArmContext, deadline_ok: bool) -> None:
        self._armed += 1
        if self._armed == 1 and not self._fired:
            self._start(ctx, deadline_ok)

    def _disarm(self) -> None:
        self._armed -= 1
        if self._armed == 0:
            self._stop()

    def _start(self, ctx: ArmContext, deadline_ok: bool) -> None:
        """Begin watching whatever makes this source fire (first arming)."""

    def _stop(self) -> None:
        """Stop watching (last disarming).  Must be idempotent and never raise."""

    # -- composition -------------------------------------------------------------------

    def __or__(self, other: object) -> AnyOfSource:
        from .composite import AnyOfSource

        return AnyOfSource(self, as_source(other, "right operand of |"))

    def __ror__(self, other: object) -> AnyOfSource:
        from .composite import AnyOfSource

        return AnyOfSource(as_source(other, "left operand of |"), self)

    def __and__(self, other: object) -> AllOfSource:
        from .composite import AllOfSource

        return AllOfSource(self, as_source(other, "right operand of &"))

    def __rand__(self, other: object) -> AllOfSource:
        from .composite import AllOfSource

        return AllOfSource(as_source(other, "left operand of &"), self)

    def __repr__(self) -> str:
        state = "fired" if self._fired else "armed" if self._armed else "idle"
        label = f" {self.name!r}" if self.name else ""
        return f"<{type(self).__name__}{label} {state}>"


def as_source(obj: object, what: str = "source") -> CancelationSource:
    """Return ``obj`` as a source: sources pass through, tokens and reactivex observables
    are wrapped; anything else is a TypeError naming ``what``."""
    if isinstance(obj, CancelationSource):
        return obj
    from .._token import CancelationToken

    if isinstance(obj, CancelationToken):
        from .token import TokenSource

        return TokenSource(obj)
    if isinstance(obj, reactivex.Observable):
        from .observable import ObservableSource

        return ObservableSource(obj)
    raise TypeError(
        f"{what} must be a CancelationSource, a CancelationToken or a reactivex Observable, "
        f"got {obj!r} ({type(obj).__name__})"
    )
