"""ParentSource: cancel when another operation is cancelled."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .._checks import check_instance
from .._models import CancelationReason, CancelEvent
from .._rx import FireOnce
from .base import CancelationSource, Disarm, SourceHost

__all__ = ("ParentSource",)


@runtime_checkable
class WatchedOperation(Protocol):
    """What a `ParentSource` needs from the operation it watches."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str | None: ...

    @property
    def cancellation(self) -> FireOnce[CancelEvent]: ...


class ParentSource(CancelationSource):
    """Fires with reason ``PARENT`` when ``operation`` is cancelled, by any source.

    ``Cancelable(parent=p)`` already links a child to its parent (and to its deadline);
    this source links any operation to another one without making it a child, and
    composes with ``|`` / ``&`` like every source.  It listens to
    ``operation.cancellation``, the hot observable of that operation's cancel event.
    Thread-safety: the watched operation may be cancelled from any thread.
    """

    reason = CancelationReason.PARENT

    def __init__(self, operation: WatchedOperation, name: str | None = None) -> None:
        check_instance(operation, WatchedOperation, "operation", "a Cancelable")
        super().__init__(name=name)
        self.operation = operation
        self.parent_reason: CancelationReason | None = None

    @property
    def parent_id(self) -> str:
        return self.operation.id

    def _fresh(self) -> ParentSource:
        return ParentSource(self.operation, self.name)

    def default_message(self) -> str:
        reason = self.parent_reason.value if self.parent_reason else "?"
        return f"Operation {self.operation.name or self.operation.id} was cancelled ({reason})"

    def _on_parent(self, event: CancelEvent) -> None:
        self.parent_reason = event.reason
        self._fire_value(CancelEvent(CancelationReason.PARENT, self.default_message(), self))

    def on_arm(self, host: SourceHost) -> Disarm | None:
        hub = self.operation.cancellation

        def listener(event: CancelEvent) -> None:  # one per arming: sharing the source is safe
            self._on_parent(event)

        hub._listen(listener)
        return lambda: hub._unlisten(listener)
