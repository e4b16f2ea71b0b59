"""cancelable_rx: composable, reactive cancellation for anyio (asyncio and trio).

Public names are re-exported here; everything else is private.
"""

from ._callbacks import ErrorCallbackType, ProgressCallbackType, ProgressObservable, StatusCallbackType
from ._cancelable import Cancelable, current_operation
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
from ._token import CancelationToken, LinkedCancelationToken
from .sources import (
    AllOfSource,
    AnyOfSource,
    CancelationSource,
    CompositeSource,
    ConditionSource,
    ObservableSource,
    SignalSource,
    TimeoutSource,
    TokenSource,
    all_of,
    any_of,
    as_source,
)

__version__ = "0.1.0"

__all__ = (
    "AllOfSource",
    "AnyOfSource",
    "CancelEvent",
    "Cancelable",
    "CancelationError",
    "CancelationReason",
    "CancelationSource",
    "CancelationToken",
    "CompositeSource",
    "ConditionCancelation",
    "ConditionSource",
    "ErrorCallbackType",
    "LinkedCancelationToken",
    "ManualCancelation",
    "ObservableSource",
    "OperationContext",
    "OperationStatus",
    "ParentCancelation",
    "PartialResult",
    "ProgressCallbackType",
    "ProgressEvent",
    "ProgressObservable",
    "SignalCancelation",
    "SignalSource",
    "StatusCallbackType",
    "TimeoutCancelation",
    "TimeoutSource",
    "TokenSource",
    "__version__",
    "all_of",
    "any_of",
    "as_source",
    "current_operation",
)
