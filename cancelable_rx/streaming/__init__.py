"""Cancelable streams: the fused stream operator, aiostream operators and observable bridges."""

from ._iterator import CHECKPOINT_EVERY, DEFAULT_BUFFER_SIZE
from ._stream import CancelableStream
from .bridges import ObservableIterator, observe, to_observable
from .operators import cancelable_stream, idle_timeout, item_timeout, progress, stop_when

__all__ = (
    "CHECKPOINT_EVERY",
    "DEFAULT_BUFFER_SIZE",
    "CancelableStream",
    "ObservableIterator",
    "cancelable_stream",
    "idle_timeout",
    "item_timeout",
    "observe",
    "progress",
    "stop_when",
    "to_observable",
)
