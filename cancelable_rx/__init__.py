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
    cancelable_method,
    cancelable_with_condition,
    cancelable_with_signal,
    cancelable_with_token,
    ensure_cancelable,
    ensure_operation,
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
from ._operation import current as _current_operation  # noqa: F401 - the reference's private context variable (its tests read it)
from ._reference import ContextBridge, LinkState, get_logger
from ._registry import DEFAULT_MAX_HISTORY, LifecycleEvent, LifecycleKind, OperationRegistry
from ._rx import ObservableIterator, observe, to_observable
from ._service import run_service, serve
from ._simulator import StreamConfig, get_random_chunk_size, simulate_stream
from ._standalone import cancelable_stream
from ._stream_helpers import CancelableAsyncIterator, chunked_cancelable_stream
from ._terminal import RichProgress, TerminalProgress, rich_progress, terminal_progress
from ._testing import (
    CancelationScenario,
    MockCancelationToken,
    OperationRecorder,
    assert_cancelation_within,
    create_slow_stream,
    run_with_timeout_test,
    sample_async_operation,
)
from ._token import CancelationToken, LinkedCancelationToken
from .sources import (
    AllOfSource,
    AnyOfSource,
    CancelationSource,
    CompositeSource,
    ConditionSource,
    ObservableSource,
    ParentSource,
    ResourceConditionSource,
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
    "CancelableAsyncIterator",
    "CancelableStream",
    "CancelationError",
    "CancelationReason",
    "CancelationScenario",
    "CancelationSource",
    "CancelationToken",
    "CompositeSource",
    "ConditionCancelation",
    "ConditionSource",
    "ContextBridge",
    "DisconnectCancelation",
    "DEFAULT_MAX_HISTORY",
    "ErrorCallback",
    "ErrorCallbackType",
    "LifecycleEvent",
    "LifecycleKind",
    "LinkState",
    "LinkedCancelationToken",
    "ManualCancelation",
    "MockCancelationToken",
    "ObservableIterator",
    "ObservableSource",
    "OperationContext",
    "OperationRecorder",
    "OperationRegistry",
    "OperationStatus",
    "ParentCancelation",
    "ParentSource",
    "PartialResult",
    "ProgressCallback",
    "ProgressCallbackType",
    "ProgressEvent",
    "ProgressObservable",
    "ResourceConditionSource",
    "RichProgress",
    "SignalCancelation",
    "SignalSource",
    "SourceHost",
    "StatusCallback",
    "StopRequest",
    "StatusCallbackType",
    "StreamConfig",
    "TerminalProgress",
    "ThreadSafeRegistry",
    "TimeoutCancelation",
    "TimeoutSource",
    "TokenSource",
    "__version__",
    "all_of",
    "any_of",
    "as_source",
    "assert_cancelation_within",
    "call_soon_threadsafe",
    "cancelable",
    "cancelable_combine",
    "cancelable_method",
    "cancelable_stream",
    "cancelable_with_condition",
    "cancelable_with_signal",
    "cancelable_with_token",
    "chunked_cancelable_stream",
    "create_slow_stream",
    "current_operation",
    "ensure_cancelable",
    "ensure_operation",
    "get_logger",
    "get_random_chunk_size",
    "idle_timeout",
    "item_timeout",
    "observe",
    "progress",
    "rich_progress",
    "run_service",
    "run_with_timeout_test",
    "sample_async_operation",
    "simulate_stream",
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
