"""ObservableSource: any reactivex Observable as a cancelation source."""

from __future__ import annotations

from typing import Any

import reactivex
from reactivex import abc

from .._models import CancelationReason, CancelEvent
from .base import ArmContext, CancelationSource

__all__ = ("ObservableSource",)


class ObservableSource(CancelationSource):
    """Fires on the first item of ``observable``, with the ``reason`` you name.

    An error from the observable fires with reason ``ERROR`` (the guard can no longer be
    trusted, so the operation stops); completing without an item never fires.  The
    subscription is made when the operation is entered and disposed when it exits.
    Thread-safety: the observable may emit on any thread.
    """

    def __init__(
        self,
        observable: reactivex.Observable[Any],
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(observable, reactivex.Observable):
            raise TypeError(f"`observable` must be a reactivex Observable, got {observable!r}")
        if not isinstance(reason, CancelationReason):
            raise TypeError(f"`reason` must be a CancelationReason, got {reason!r}")
        super().__init__(name)
        self.observable = observable
        self.reason = reason
        self._message = message
        self._subscription: abc.DisposableBase | None = None

    def _fresh(self) -> ObservableSource:
        return ObservableSource(self.observable, self.reason, self._message, self.name)

    def default_message(self) -> str:
        return self._message or f"{self.name or 'observable'} emitted"

    def _on_error(self, error: Exception) -> None:
        self._fire_value(
            CancelEvent(CancelationReason.ERROR, f"{self.name or 'observable'} failed: {error!r}", self)
        )

    def _start(self, ctx: ArmContext, deadline_ok: bool) -> None:
        self._subscription = self.observable.subscribe(on_next=self._on_item, on_error=self._on_error)

    def _on_item(self, item: Any) -> None:
        self.fire(self._message or f"{self.name or 'observable'} emitted {item!r}")

    def _stop(self) -> None:
        sub, self._subscription = self._subscription, None
        if sub is not None:
            sub.dispose()
