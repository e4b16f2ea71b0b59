"""Cancelable streams: the fused stream operator, the Stream class and pipeline operators."""

from ._iterator import CHECKPOINT_EVERY, DEFAULT_BUFFER_SIZE
from ._stream import CancelableStream
from .operators import idle_timeout, item_timeout, progress, stop_when

__all__ = (
    "CHECKPOINT_EVERY",
    "DEFAULT_BUFFER_SIZE",
    "CancelableStream",
    "idle_timeout",
    "item_timeout",
    "progress",
    "stop_when",
)
