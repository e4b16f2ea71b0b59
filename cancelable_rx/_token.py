"""CancelationToken and LinkedCancelationToken.

A token is a thread-safe, fire-once flag with a reason.  Operations listen to it through
a lock-free listener dict (see ``CancelationToken._listen``) (no reactivex machinery on the enter/exit path) and stop
listening when they exit, so a long-lived token shared by a million sequential
operations holds nothing afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import BaseModel, ConfigDict, Field

from ._checks import check_callable, check_instance, check_message, check_reason, check_timeout, fail_value
from ._exceptions import error_for
from ._logs import DEBUG, debug_cached, logger
from ._loop import LoopHandle, capture
from ._models import CancelationReason, CancelEvent, StopRequest, new_id
from ._rx import Listener

__all__ = ("CancelationToken", "LinkedCancelationToken")

TokenCallback = Callable[["CancelationToken"], Awaitable[None] | None]
_new_event = tuple.__new__  # CancelEvent(...) without the named tuple's Python-level __new__


_CHECK_MESSAGE = "Operation cancelled via token"


def _notify(token: CancelationToken, listeners: tuple[tuple[Any, Listener | None], ...]) -> None:
    """Call each listener (a snapshot of ``token._listeners``) with ``token``; a failure is
    logged.  A listener of None is an operation listening on its hot path (``with_token``):
    its ``_on_token`` is called, so entering makes no bound method.  (Used for stop
    requests; a cancel, `_set`, fires such operations directly.)"""
    for key, fn in listeners:
        try:
            if fn is None:
                key._on_token(token)
            else:
                fn(token)
        except Exception:
            logger.exception("cancelable_rx: listener %r of token %s failed", fn or key, token.id)


class CancelationToken(BaseModel):
    """A thread-safe, fire-once cancelation flag that can be shared across tasks and threads.

    Cancellation: ``cancel``/``cancel_sync`` set the flag once (later calls return
    False and change nothing); every operation listening to the token is cancelled with
    the token's reason.
    Thread-safety: every method may be called from any thread; ``cancel_sync`` is the
    one to use outside the event loop.  Operations hop to their own loop; registered
    callbacks run as tasks on the loop that registered them.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    __slots__ = ("_lock", "_listeners", "_callbacks", "_stop")

    if TYPE_CHECKING:  # runtime state lives in __slots__, invisible to pydantic
        _lock: threading.Lock
        _listeners: dict[object, Listener | None]  # (None: the key is an operation; see _notify)
        _callbacks: list[tuple[TokenCallback, LoopHandle | None]]
        _stop: StopRequest | None

    id: str = Field(default_factory=new_id)
    is_cancelled: bool = False
    reason: CancelationReason | None = None
    message: str | None = None
    cancelled_at: datetime | None = None

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        object.__setattr__(self, "_lock", threading.Lock())
        object.__setattr__(self, "_listeners", {})
        object.__setattr__(self, "_callbacks", [])
        object.__setattr__(self, "_stop", None)

    def __hash__(self) -> int:
        return hash(self.id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CancelationToken) and other.id == self.id

    def __str__(self) -> str:
        state = f"cancelled={self.reason.value if self.reason else 'unknown'}" if self.is_cancelled else "active"
        return f"{type(self).__name__}(id={self.id}, {state})"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(id={self.id!r}, is_cancelled={self.is_cancelled}, "
            f"reason={self.reason!s}, message={self.message!r})"
        )

    # -- listening (internal, used by operations and links) -------------------------

    def _listen(self, fn: Listener, key: object = None) -> None:
        """Call ``fn(self)`` on cancel, or at once if already cancelled.  ``key`` (``fn``
        itself by default) is what `_unlisten` is given; an operation uses itself.

        Thread-safety: lock-free.  ``_set`` sets the flag, then snapshots the listeners; this
        adds the listener, then reads the flag, so at least one of them calls ``fn`` (the
        interpreter orders these steps).  In a race both may: listeners must be idempotent
        (every listener in the package is: first-event-wins firing, events, links).
        The engine's ``__aenter__``/``__aexit__`` inline this and `_unlisten` (the hot path of
        ``with_token``): change them together.
        """
        if key is None:
            key = fn
        self._listeners[key] = fn
        if self.is_cancelled:
            self._listeners.pop(key, None)
            fn(self)

    def _unlisten(self, key: object) -> None:
        """Stop calling the listener added under ``key``.  Thread-safe without the lock: one
        dict operation (``_set`` snapshots and clears under the lock)."""
        self._listeners.pop(key, None)

    def _set(self, reason: CancelationReason, message: str | None) -> list[tuple[TokenCallback, LoopHandle | None]] | None:
        """Flip the flag; notify listeners; return the callbacks still to run (or None).

        An operation listening on its hot path (listener None) is fired directly with the
        token's event, as its ``_on_token`` would for a cancelled token: one event for all.
        """
        d = self.__dict__
        # `with` (not acquire() then try): an interrupt delivered as acquire() returns would
        # leave the lock held, and every later cancel of this token waiting for it.
        with self._lock:
            if d["is_cancelled"]:
                return None
            d["reason"] = reason
            d["message"] = message
            d["cancelled_at"] = datetime.now(UTC)
            d["is_cancelled"] = True
            # (keys: an operation when the listener is None, see `_listen`)
            held = self._listeners
            listeners: tuple[tuple[Any, Listener | None], ...] = tuple(held.items())
            held.clear()
            callbacks = self._callbacks
            if callbacks:
                object.__setattr__(self, "_callbacks", [])
        event = None
        for key, fn in listeners:
            try:
                if fn is None:
                    if event is None:
                        event = _new_event(CancelEvent, (reason, message, self))
                    key._fire(event)
                else:
                    fn(self)
            except Exception:
                logger.exception("cancelable_rx: listener %r of token %s failed", fn or key, self.id)
        if debug_cached(DEBUG) is not False and logger.isEnabledFor(DEBUG):  # (see _logs)
            logger.debug("token %s cancelled (%s): %s", self.id, reason.value, message)
        return callbacks

    @property
    def listener_count(self) -> int:
        """How many operations and links currently listen to this token."""
        return len(self._listeners) + len(self._callbacks)

    # -- public API --------------------------------------------------------------------

    async def cancel(self, reason: CancelationReason = CancelationReason.MANUAL, message: str | None = None) -> bool:
        """Cancel the token.  Returns True if this call cancelled it, False if it already was.

        Listening operations are cancelled before this returns; callbacks registered from
        this loop are awaited in registration order (their errors are logged).
        """
        if type(reason) is not CancelationReason:  # (the checks, skipped for the usual types)
            reason = check_reason(reason)
        if message is not None and type(message) is not str:
            check_message(message)
        callbacks = self._set(reason, message)
        if not callbacks:  # None: it already was cancelled
            return callbacks is not None
        for cb, handle in tuple(callbacks):
            if handle is None or handle.in_loop_thread():
                await _call_logged(cb, self)
            else:
                handle.spawn(partial(_call_logged, cb, self))
        return True

    def cancel_sync(self, reason: CancelationReason = CancelationReason.MANUAL, message: str | None = None) -> bool:
        """Cancel the token from any thread, or from synchronous code on the loop.

        Returns True if this call cancelled it.  Listening operations are cancelled on
        their own loops (no bridge needs starting); registered callbacks are started as
        tasks on the loops that registered them.
        """
        callbacks = self._set(check_reason(reason), check_message(message))
        if callbacks is None:
            return False
        for cb, handle in tuple(callbacks):
            if handle is not None:
                handle.spawn(partial(_call_logged, cb, self))
        return True

    async def wait_for_cancel(self) -> None:
        """Wait until the token is cancelled (returns at once if it already is)."""
        if self.is_cancelled:
            return
        event = anyio.Event()
        handle = capture()

        def wake(_: object) -> None:
            if self.is_cancelled:  # (listeners also hear stop requests)
                handle.call(event.set)

        self._listen(wake)
        try:
            await event.wait()
        finally:
            self._unlisten(wake)

    def _event(self) -> CancelEvent:
        return CancelEvent(self.reason or CancelationReason.MANUAL, self.message, self)

    def check(self) -> None:
        """Raise the `CancelationError` subclass for the token's reason if cancelled.

        A token cancelled with ``MANUAL`` (the default) raises ``ManualCancelation``; its
        message is the token's, or "Operation cancelled via token" (the reference's wording).
        """
        if self.is_cancelled:
            raise error_for(CancelEvent(self.reason or CancelationReason.MANUAL, self.message or _CHECK_MESSAGE, self))

    async def check_async(self) -> None:
        """Async check: if cancelled, let a pending cancellation of the current scope
        take effect (a checkpoint), else raise like `check`.

        It never constructs a backend cancel exception.
        """
        if self.is_cancelled:
            await anyio.lowlevel.checkpoint()
            raise error_for(self._event())

    def is_cancelation_requested(self) -> bool:
        """Non-raising check."""
        return self.is_cancelled

    # -- two-phase: ask to stop, then cancel ---------------------------------------------

    @property
    def stop_requested(self) -> bool:
        """True once a stop was requested (`request_stop`) or the token was cancelled."""
        return self._stop is not None or self.is_cancelled

    @property
    def stop_request(self) -> StopRequest | None:
        """The first stop request, or None."""
        return self._stop

    async def request_stop(
        self,
        grace: float | timedelta,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
    ) -> bool:
        """Ask every operation using this token to stop within ``grace`` seconds (see
        ``Cancelable.request_stop``): each is cancelled with ``reason`` when its grace period
        ends, unless it finished.  An operation that starts using the token later gets what
        is left of the grace period.  The token itself is not cancelled (cancel it to stop
        them all at once).  Returns False if the token is already cancelled.

        Listeners are called with the token (``is_cancelled`` False, ``stop_request`` set).
        Thread-safety: any thread (this and `request_stop_sync`).
        """
        return self.request_stop_sync(grace, reason, message)

    def request_stop_sync(
        self,
        grace: float | timedelta,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
    ) -> bool:
        """Thread-safe `request_stop`.  A second request may shorten the grace period of the
        operations listening now; it never extends it."""
        seconds = check_timeout(grace, "grace")
        request = StopRequest(check_reason(reason), check_message(message), seconds, datetime.now(UTC), self)
        with self._lock:
            if self.is_cancelled:
                return False
            if self._stop is None or request.grace < self._stop.remaining():
                object.__setattr__(self, "_stop", request)
            listeners = tuple(self._listeners.items())
        _notify(self, listeners)  # the same listeners as a cancel: they look at is_cancelled
        return True

    async def register_callback(self, callback: TokenCallback) -> None:
        """Call ``callback(token)`` (sync or async) when the token is cancelled.

        If it already is, the callback runs now.  Callbacks run on the loop that
        registered them; exceptions are logged, never raised to the canceller.
        """
        check_callable(callback, "callback", "callback(token), sync or async")
        with self._lock:
            if not self.is_cancelled:
                self._callbacks.append((callback, capture()))
                return
        await _call_logged(callback, self)


async def _call_logged(cb: TokenCallback, token: CancelationToken) -> None:
    try:
        result = cb(token)
        if result is not None and hasattr(result, "__await__"):
            await result
    except Exception:
        logger.exception("cancelable_rx: token callback %r failed", cb)


class LinkedCancelationToken(CancelationToken):
    """A token that is also cancelled when any token linked into it is cancelled."""

    __slots__ = ("_links",)
    if TYPE_CHECKING:
        _links: list[tuple[CancelationToken, Listener]]

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        object.__setattr__(self, "_links", [])

    async def link(self, token: CancelationToken, preserve_reason: bool = False) -> None:
        """Cancel this token when ``token`` is cancelled.

        With ``preserve_reason`` the linked token's reason and message are copied;
        otherwise the reason is ``PARENT``.  Linking an already-cancelled token cancels
        this one at once.  `unlink_all` removes every link.
        """
        check_instance(token, CancelationToken, "token", "a CancelationToken")
        if token is self:
            fail_value("token", "another token (a token cannot be linked to itself)", token)

        def forward(src: CancelationToken) -> None:
            if not src.is_cancelled:  # a stop request: pass it on with what is left of its grace
                stop = src._stop
                if stop is not None:
                    self.request_stop_sync(stop.remaining(), stop.reason, stop.message)
                return
            if preserve_reason and src.reason is not None:
                self.cancel_sync(src.reason, src.message or f"Linked token {src.id[:8]} was cancelled")
            else:
                self.cancel_sync(CancelationReason.PARENT, f"Linked token {src.id[:8]} was cancelled")

        self._links.append((token, forward))
        token._listen(forward)

    def unlink_all(self) -> None:
        """Stop listening to every linked token."""
        links, self._links[:] = list(self._links), []
        for token, fn in links:
            token._unlisten(fn)
