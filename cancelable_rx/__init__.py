"""cancelable_rx: composable, reactive cancellation for anyio (asyncio and trio).

Public names are re-exported here, and report this package as their module (as anyio and
trio do); everything else is private.  ``docs/architecture.md`` maps the modules.
"""

from . import ops as ops  # the operators module: `from cancelable_rx import ops`
from ._bridge import AnyioBridge, ThreadSafeRegistry, call_soon_threadsafe
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
    DisconnectCancelation,
    ManualCancelation,
    ParentCancelation,
    SignalCancelation,
    TimeoutCancelation,
)
from ._hooks import (
    ErrorCallback,
    ErrorCallbackType,
    ProgressCallback,
    ProgressCallbackType,
    ProgressObservable,
    StatusCallback,
    StatusCallbackType,
)
from ._models import (
    CancelationReason,
    CancelEvent,
    OperationContext,
    OperationStatus,
    PartialResult,
    ProgressEvent,
    StopRequest,
)
from ._registry import DEFAULT_MAX_HISTORY, LifecycleEvent, LifecycleKind, OperationRegistry
from ._rx import ObservableIterator, observe, to_observable
from ._service import run_service, serve
from ._standalone import cancelable_stream
from ._terminal import RichProgress, TerminalProgress, rich_progress, terminal_progress
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
    SourceHost,
    TimeoutSource,
    TokenSource,
    all_of,
    any_of,
    as_source,
)
from .streaming import CancelableStream, idle_timeout, item_timeout, progress, stop_when

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
    "DisconnectCancelation",
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
    "RichProgress",
    "SignalCancelation",
    "SignalSource",
    "SourceHost",
    "StatusCallback",
    "StopRequest",
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
    "rich_progress",
    "run_service",
    "stop_when",
    "terminal_progress",
    "serve",
    "to_observable",
    "with_cancelable",
    "with_current_operation",
    "with_timeout",
)


def _publish() -> None:
    """Make every public class and function report ``cancelable_rx`` as its module."""
    for public_name in __all__:
        obj = globals()[public_name]
        if isinstance(obj, type) or callable(obj) and hasattr(obj, "__qualname__"):
            if getattr(obj, "__module__", "").startswith("cancelable_rx."):
                try:
                    obj.__module__ = __name__
                except (AttributeError, TypeError):  # pragma: no cover - builtins, aliases
                    pass


_publish()
