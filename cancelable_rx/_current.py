"""The context variable holding the innermost running operation."""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._cancelable import Cancelable

__all__ = ("current", "current_operation")

current: contextvars.ContextVar[Cancelable | None] = contextvars.ContextVar(
    "cancelable_rx_current_operation", default=None
)


def current_operation() -> Cancelable | None:
    """The innermost operation entered in the current task (or thread, for
    ``run_in_thread``), or None."""
    return current.get()
