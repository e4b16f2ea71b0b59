"""ObservableSource: any reactivex Observable as a cancelation source."""

from __future__ import annotations

from typing import Any

import reactivex

from .._checks import check_instance, check_message, check_reason
from .._models import CancelationReason, CancelEvent
from .base import CancelationSource, Disarm, SourceHost, as_source

__all__ = ("ObservableSource",)


class ObservableSource(CancelationSource):
    """Fires on the first item of ``observable``, with the ``reason`` you name.

    An error from the observable fires with reason ``ERROR`` (the guard can no longer be
    trusted, so the operation stops); the error is kept (``error``), in the operation's record
    (``context.error``) and as the ``__cause__`` of the `CancelationError` leaving raises.
    Completing without an item never fires.  The
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
        check_instance(observable, reactivex.Observable, "observable", "a reactivex Observable")
        super().__init__(name=name)
        self._label = name or "observable"
        self.observable = observable
        self.reason = check_reason(reason)
        self._message = check_message(message)
        self.error: BaseException | None = None

    def _fresh(self) -> ObservableSource:
        return ObservableSource(self.observable, self.reason, self._message, None if self._label == "observable" else self._label)

    def default_message(self) -> str:
        return self._message or f"{self._label} emitted"

    def _on_error(self, error: Exception) -> None:
        self.error = error
        self._fire_value(
            CancelEvent(CancelationReason.ERROR, f"{self._label} failed: {error!r}", self)
        )

    def _on_item(self, item: Any) -> None:
        self.fire(self._message or f"{self._label} emitted {item!r}")

    def on_arm(self, host: SourceHost) -> Disarm | None:
        return self.observable.subscribe(on_next=self._on_item, on_error=self._on_error).dispose


@as_source.register
def _(obj: reactivex.Observable, what: str = "source") -> CancelationSource:
    return ObservableSource(obj)
