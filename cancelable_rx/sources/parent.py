"""ParentSource: cancel when another operation is cancelled."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._models import CancelationReason, CancelEvent
from .base import ArmContext, CancelationSource

if TYPE_CHECKING:
    from .._cancelable import Cancelable

__all__ = ("ParentSource",)


class ParentSource(CancelationSource):
    """Fires with reason ``PARENT`` when ``operation`` is cancelled, by any source.

    ``Cancelable(parent=p)`` already links a child to its parent (and to its deadline);
    this source links any operation to another one without making it a child, and
    composes with ``|`` / ``&`` like every source.  It listens to
    ``operation.cancellation``, the hot observable of that operation's cancel event.
    Thread-safety: the watched operation may be cancelled from any thread.
    """

    reason = CancelationReason.PARENT

    def __init__(self, operation: Cancelable, name: str | None = None) -> None:
        from .._cancelable import Cancelable

        if not isinstance(operation, Cancelable):
            raise TypeError(f"`operation` must be a Cancelable, got {operation!r}")
        super().__init__(name)
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

    def _start(self, ctx: ArmContext, deadline_ok: bool) -> None:
        self.operation.cancellation._listen(self._on_parent)

    def _stop(self) -> None:
        self.operation.cancellation._unlisten(self._on_parent)
