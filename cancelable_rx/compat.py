"""cancelable_rx.compat: the face for code that leaves cancelled operations as hother-cancelable does.

Change one import line and code written for ``hother-cancelable`` runs unchanged, including
its idiom for a timed-out operation::

    from cancelable_rx.compat import Cancelable      # was: from hother.cancelable import ...

    try:
        async with Cancelable.with_timeout(1):
            await slow()
    except anyio.get_cancelled_exc_class():           # the reference's idiom
        ...

Everything here is the main face's (the same objects), except `Cancelable`, what builds
operations (the decorators, `with_timeout`, `ensure_operation`, `cancelable_stream`), which
build this face's `Cancelable`, and `AnyioBridge` / `call_soon_threadsafe` (the reference's
bridge: a memory stream and a worker task).  Leaving an operation cancelled by its own sources re-raises
the backend's cancel exception that the operation's scope caught (the reference's
behaviour), instead of the typed ``CancelationError``; an operation cancelled without
reaching a checkpoint ends its block normally (as in the reference), its record still says
``CANCELLED``.  `Cancelable.check_cancelation` and a `cancelable_stream` that is cancelled
raise the backend's cancel exception too.  As in the reference, an operation has its own
token from the start and instances have a ``__dict__`` (a test may patch one operation's
method), and the reference's private attributes its tests use (``op._children``,
``op._parent_ref``, ``op._sources``, ``op._status_callbacks``, ``op._shields``,
``op._cancellables_to_link``) are live views of the operation's state.  The first time a
cancel exception is let out in the process a `CompatWarning` says how to move to the main
face: catch ``CancelationError`` (``except CancelationError:``) and
import from ``cancelable_rx``; see the migration page (``docs/migration.md``).

Why the main face does not do this: a backend cancel exception escaping the scope that
caught it ends the sibling tasks of an enclosing task group silently.  The main face pays
nothing for this module (its classes and functions never refer to it).
"""

from __future__ import annotations

from . import (
    DEFAULT_MAX_HISTORY,
    AllOfSource,
    AnyOfSource,
    CancelableAsyncIterator,
    CancelableStream,
    CancelationError,
    CancelationReason,
    CancelationScenario,
    CancelationSource,
    CancelationToken,
    CancelEvent,
    CompositeSource,
    ConditionCancelation,
    ConditionSource,
    ContextBridge,
    DisconnectCancelation,
    ErrorCallback,
    ErrorCallbackType,
    LifecycleEvent,
    LifecycleKind,
    LinkedCancelationToken,
    LinkState,
    ManualCancelation,
    MockCancelationToken,
    ObservableIterator,
    ObservableSource,
    OperationContext,
    OperationRecorder,
    OperationRegistry,
    OperationStatus,
    ParentCancelation,
    ParentSource,
    PartialResult,
    ProgressCallback,
    ProgressCallbackType,
    ProgressEvent,
    ProgressObservable,
    ResourceConditionSource,
    RichProgress,
    SignalCancelation,
    SignalSource,
    SourceHost,
    StatusCallback,
    StatusCallbackType,
    StopRequest,
    StreamConfig,
    TerminalProgress,
    ThreadSafeRegistry,
    TimeoutCancelation,
    TimeoutSource,
    TokenSource,
    __version__,
    all_of,
    any_of,
    as_source,
    assert_cancelation_within,
    chunked_cancelable_stream,
    create_slow_stream,
    current_operation,
    ensure_cancelable,
    get_logger,
    get_random_chunk_size,
    idle_timeout,
    item_timeout,
    observe,
    progress,
    rich_progress,
    run_service,
    run_with_timeout_test,
    sample_async_operation,
    serve,
    simulate_stream,
    stop_when,
    terminal_progress,
    to_observable,
    with_cancelable,
    with_current_operation,
)
from . import _current_operation as _current_operation  # the reference's private name
from ._compat import MIGRATION_PAGE as MIGRATION_PAGE  # the page the warning points to
from ._compat import (
    AnyioBridge,
    Cancelable,
    CompatWarning,
    call_soon_threadsafe,
    cancelable,
    cancelable_combine,
    cancelable_method,
    cancelable_stream,
    cancelable_with_condition,
    cancelable_with_signal,
    cancelable_with_token,
    ensure_operation,
    with_timeout,
)
from ._compat import _warned as _warned  # the once-per-process flag (tests clear it)

__all__ = (
    "Cancelable",
    "CompatWarning",
    "__version__",
    "AllOfSource",
    "AnyOfSource",
    "AnyioBridge",
    "CancelEvent",
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
    "DEFAULT_MAX_HISTORY",
    "DisconnectCancelation",
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
    "StatusCallbackType",
    "StopRequest",
    "StreamConfig",
    "TerminalProgress",
    "ThreadSafeRegistry",
    "TimeoutCancelation",
    "TimeoutSource",
    "TokenSource",
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
    "serve",
    "simulate_stream",
    "stop_when",
    "terminal_progress",
    "to_observable",
    "with_cancelable",
    "with_current_operation",
    "with_timeout",
)
