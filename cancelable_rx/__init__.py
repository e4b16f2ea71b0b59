"""cancelable_rx: composable, reactive cancellation for anyio (asyncio and trio).

Public names are re-exported here; everything else is private.
"""

from ._bridge import AnyioBridge, ThreadSafeRegistry, call_soon_threadsafe
from ._callbacks import (
    ErrorCallback,
    ErrorCallbackType,
    ProgressCallback,
    ProgressCallbackType,
    ProgressObservable,
    StatusCallback,
    StatusCallbackType,
)
from ._cancelable import Cancelable, current_operation
from ._decorators import (
    cancelable,
    cancelable_combine,
    cancelable_with_condition,
    cancelable_with_signal,
    cancelable_with_token,
    ensure_cancelable,
    with_cancelable,
    with_current_operation,
    with_timeout,
)
from ._exceptions import (
    CancelationError,
    ConditionCancelation,
    ManualCancelation,
    ParentCancelation,
    SignalCancelation,
    TimeoutCancelation,
)
from ._models import (
    CancelationReason,
    CancelEvent,
    OperationContext,
    OperationStatus,
    PartialResult,
    ProgressEvent,
)
from ._registry import DEFAULT_MAX_HISTORY, LifecycleEvent, LifecycleKind, OperationRegistry
from ._terminal import TerminalProgress, terminal_progress
from ._token import CancelationToken, LinkedCancelationToken
from .sources import (
    AllOfSource,
    AnyOfSource,
    CancelationSource,
    CompositeSource,
    ConditionSource,
    ObservableSource,
    ParentSource,
    SignalSource,
    TimeoutSource,
    TokenSource,
    all_of,
    any_of,
    as_source,
)

from .streaming import (
    CancelableStream,
    ObservableIterator,
    cancelable_stream,
    idle_timeout,
    item_timeout,
    observe,
    progress,
    stop_when,
    to_observable,
)

__version__ = "0.1.0"

__all__ = (
    "AllOfSource",
    "AnyOfSource",
    "AnyioBridge",
    "CancelEvent",
    "Cancelable",
    "CancelableStream",
    "CancelationError",
    "CancelationReason",
    "CancelationSource",
    "CancelationToken",
    "CompositeSource",
    "ConditionCancelation",
    "ConditionSource",
    "DEFAULT_MAX_HISTORY",
    "ErrorCallback",
    "ErrorCallbackType",
    "LifecycleEvent",
    "LifecycleKind",
    "LinkedCancelationToken",
    "ManualCancelation",
    "ObservableIterator",
    "ObservableSource",
    "OperationContext",
    "OperationRegistry",
    "OperationStatus",
    "ParentCancelation",
    "ParentSource",
    "PartialResult",
    "ProgressCallback",
    "ProgressCallbackType",
    "ProgressEvent",
    "ProgressObservable",
    "SignalCancelation",
    "SignalSource",
    "StatusCallback",
    "StatusCallbackType",
    "TerminalProgress",
    "ThreadSafeRegistry",
    "TimeoutCancelation",
    "TimeoutSource",
    "TokenSource",
    "__version__",
    "all_of",
    "any_of",
    "as_source",
    "call_soon_threadsafe",
    "cancelable",
    "cancelable_combine",
    "cancelable_stream",
    "cancelable_with_condition",
    "cancelable_with_signal",
    "cancelable_with_token",
    "current_operation",
    "ensure_cancelable",
    "idle_timeout",
    "item_timeout",
    "observe",
    "progress",
    "stop_when",
    "terminal_progress",
    "to_observable",
    "with_cancelable",
    "with_current_operation",
    "with_timeout",
)
