"""cancelable_rx.compat: the face for code that leaves cancelled operations as hother-cancelable does.

Change one import line and code written for ``hother-cancelable`` runs unchanged, including
its idiom for a timed-out operation::

    from cancelable_rx.compat import Cancelable      # was: from hother.cancelable import ...

    try:
        async with Cancelable.with_timeout(1):
            await slow()
    except anyio.get_cancelled_exc_class():           # the reference's idiom
        ...

Everything here is the main face's (the same objects), except `Cancelable`: leaving an
operation cancelled by its own sources re-raises the backend's cancel exception that the
operation's scope caught (the reference's behaviour), instead of the typed
``CancelationError``; an operation cancelled without reaching a checkpoint ends its block
normally (as in the reference), its record still says ``CANCELLED``.  The first time that
happens in the process a `CompatWarning` says how to move to the main face: catch
``CancelationError`` (``except CancelationError:``) and import from ``cancelable_rx``; see
the migration page (``docs/migration.md``).

Why the main face does not do this: a backend cancel exception escaping the scope that
caught it ends the sibling tasks of an enclosing task group silently.  The main face pays
nothing for this module (the override runs only when a compat operation leaves cancelled).
"""

from __future__ import annotations

import threading
import warnings

from . import (
    DEFAULT_MAX_HISTORY,
    AllOfSource,
    AnyioBridge,
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
    call_soon_threadsafe,
    cancelable,
    cancelable_combine,
    cancelable_method,
    cancelable_stream,
    cancelable_with_condition,
    cancelable_with_signal,
    cancelable_with_token,
    chunked_cancelable_stream,
    create_slow_stream,
    current_operation,
    ensure_cancelable,
    ensure_operation,
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
    with_timeout,
)
from . import Cancelable as _MainCancelable
from . import _current_operation as _current_operation  # the reference's private name

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

MIGRATION_PAGE = "docs/migration.md"
_warned = threading.Event()


class CompatWarning(UserWarning):
    """Emitted once per process, the first time a `cancelable_rx.compat.Cancelable` lets the
    backend's cancel exception out (the reference's behaviour).  The one-line fix: catch
    ``CancelationError`` (``except CancelationError:``) and import from ``cancelable_rx``.
    Silence it with ``warnings.filterwarnings("ignore", category=CompatWarning)``."""


def _warn_once() -> None:
    if _warned.is_set():
        return
    _warned.set()
    warnings.warn(
        CompatWarning(
            "cancelable_rx.compat: a cancelled operation re-raised the backend's cancel exception, as "
            "hother-cancelable does; that exception silently ends the sibling tasks of an enclosing task "
            "group. The fix is one line: catch the typed error (`except CancelationError:`) and import "
            f"from cancelable_rx instead of cancelable_rx.compat. See {MIGRATION_PAGE}."
        ),
        stacklevel=4,
    )


class Cancelable(_MainCancelable):
    """`cancelable_rx.Cancelable`, leaving a cancelled operation as ``hother-cancelable`` does.

    Cancellation: an operation cancelled by its own sources re-raises, on leaving, the
    backend's cancel exception its scope caught (``asyncio.CancelledError`` /
    ``trio.Cancelled``); one cancelled without a checkpoint after the cancel ends its block
    normally.  ``suppress_cancelation=True``, callbacks, the record (``CANCELLED`` with its
    reason) and every other behaviour are the main face's.  Thread-safety: as the main face.
    """

    __slots__ = ()

    async def _leave(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        swallowed: bool,
        raised: BaseException | None,
        cleanup: BaseException | None,
    ) -> bool:
        try:
            return await super()._leave(exc_type, exc, swallowed, raised, cleanup)
        except CancelationError:
            if not (exc_type is None or swallowed) or self._suppress or self._failure is not None:
                raise
            # Our own cancellation: let the exception the scope caught go on (returning False
            # re-raises it, never a new one); a block that raised nothing ends normally.
            _warn_once()
            return False
