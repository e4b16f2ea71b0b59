"""Identity, status and the lazily built record of an operation (a Cancelable mixin)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any


from ._models import CancelationReason, CancelEvent, OperationContext, OperationStatus, build_context, new_id
from ._token import CancelationToken, LinkedCancelationToken
from ._rx import FireOnce
from ._state import OperationState

if TYPE_CHECKING:
    from ._cancelable import Cancelable

__all__ = ("RecordMixin",)

_RUNNING = 1
_now = time.time
_INF = float("inf")
_RUNNING_STATUSES = (OperationStatus.RUNNING, OperationStatus.SHIELDED)


class RecordMixin(OperationState):
    """``id``, ``name``, ``parent``, ``context``, ``status``, ``is_*``, ``token`` ..."""


    # -- identity and record -----------------------------------------------------------

    @property
    def id(self) -> str:
        """The operation id (a UUID4 string unless one was given)."""
        if self._id is None:
            self._id = new_id()
        return self._id

    operation_id = id

    @property
    def name(self) -> str | None:
        return self._name if self._name is not None else self._default_name

    @property
    def parent(self) -> Cancelable | None:
        """The parent operation, or None."""
        return self._parent

    @property
    def context(self) -> OperationContext:
        """The pydantic record of this operation, built on first access and kept in sync."""
        ctx = self._ctx
        if ctx is None:
            ctx = build_context(
                id=self.id,
                name=self.name,
                status=self._status,
                start_time=datetime.fromtimestamp(self._start_ts if self._start_ts is not None else _now(), UTC),
                end_time=datetime.fromtimestamp(self._end_ts, UTC) if self._end_ts is not None else None,
                cancel_reason=self._fired.reason if self._fired is not None else None,
                cancel_message=self._fired.message if self._fired is not None else None,
                metadata=self._metadata if self._metadata is not None else {},
                parent_id=self._parent.id if self._parent is not None else None,
                child_ids=set(self._child_ids or ()),
                partial_result=self._partial,
                error=self._error,
            )
            self._ctx = ctx
        return ctx

    @property
    def status(self) -> OperationStatus:
        return self._status

    @property
    def is_cancelled(self) -> bool:
        """True once the operation's cancellation has been requested or it ended cancelled.

        Inside the block it turns True as soon as a source fires (before the next
        checkpoint), including a deadline that has passed.
        """
        if self._fired is None and self._state == _RUNNING and self._own_deadline != _INF:
            handle = self._handle
            if handle is not None and handle.in_loop_thread() and handle.now() >= self._own_deadline:
                self._record(self._timeout_event())
        # A request that raced the block's completion (another thread, within the few
        # hundred ns before the outcome was decided) leaves the reason recorded but the
        # status COMPLETED, like anyio's cancel_called without cancelled_caught.
        return self._fired is not None and self._status is not OperationStatus.COMPLETED

    @property
    def is_running(self) -> bool:
        return self._status in _RUNNING_STATUSES

    @property
    def is_completed(self) -> bool:
        return self._status is OperationStatus.COMPLETED

    @property
    def cancel_reason(self) -> CancelationReason | None:
        """Why the operation was cancelled, or None."""
        fired = self._fired
        return fired.reason if fired is not None else None

    @property
    def cancel_message(self) -> str | None:
        fired = self._fired
        return fired.message if fired is not None else None

    @property
    def partial_result(self) -> Any:
        """The :class:`PartialResult` of this operation's stream: live while it runs,
        final once it ended (however it ended).  None if no stream ran."""
        it = self._stream_it
        if it is not None:
            return it.snapshot()
        return self._partial

    def _set_partial(self, partial: Any) -> None:
        self._partial = partial
        ctx = self._ctx
        if ctx is not None:
            ctx.partial_result = partial

    @property
    def deadline(self) -> float:
        """The effective deadline (anyio clock) while running; ``math.inf`` if none."""
        return self._deadline

    @property
    def cancellation(self) -> FireOnce[CancelEvent]:
        """Hot observable of this operation's cancel event: emits the first
        :class:`CancelEvent` once (replayed to late subscribers) and completes.
        Nothing is built until someone asks for it."""
        hub = self._cancellation
        if hub is None:
            hub = self._cancellation = FireOnce()
            if self._fired is not None:
                hub._fire_value(self._fired)
        return hub

    @property
    def token(self) -> CancelationToken:
        """The operation's token.  Cancelling it cancels the operation; it is cancelled
        (with the same reason) when the operation is.  With ``with_token(t)`` it is ``t``."""
        tok = self._token
        if tok is None:
            tok = self._token = LinkedCancelationToken()
            self._own_token = True
            if self._fired is not None:
                tok.cancel_sync(self._fired.reason, self._fired.message)
            elif self._state == _RUNNING:
                self._listening = True
                tok._listen(self._on_token)
        return tok

