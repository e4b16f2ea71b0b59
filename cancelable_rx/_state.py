"""The state every Cancelable mixin shares: attribute declarations with class-level defaults.

``Cancelable.__init__`` writes only what differs from these defaults, so a bare operation
costs a handful of attribute writes; mutable state is created when first needed.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._models import CancelEvent, OperationContext, OperationStatus

if TYPE_CHECKING:
    from ._cancelable import Cancelable
    from ._callbacks import ProgressObservable
    from ._loop import LoopHandle
    from ._plan import Plan
    from ._rx import FireOnce
    from ._token import CancelationToken
    from .sources.base import CancelationSource
    from .sources.timeout import TimeoutSource

__all__ = ("OperationState",)

_INF = math.inf
_PENDING = 0


class OperationState:
    """Declarations and defaults of an operation's state (see the module docstring)."""


    _id: str | None = None
    _name: str | None = None
    _default_name: str | None = None
    _metadata: dict[str, Any] | None = None
    _parent: Cancelable | None = None
    _register_globally = False
    _suppress = False
    _sources: list[CancelationSource] | tuple[()] = ()
    _timeout = _INF  # the earliest plain timeout (with_timeout / combine), seconds
    _tokens: tuple[CancelationToken, ...] = ()  # extra tokens merged by combine()
    _plan: Plan | None = None
    _token: CancelationToken | None = None
    _own_token = False
    _state = _PENDING
    _status = OperationStatus.PENDING
    _fired: CancelEvent | None = None
    _scope: Any = None
    _handle: LoopHandle | None = None
    _tg: Any = None
    _cv: contextvars.Token[Cancelable | None] | None = None
    _ctx: OperationContext | None = None
    _start_ts: float | None = None
    _end_ts: float | None = None
    _error: str | None = None
    _partial: Any = None
    _children: set[Cancelable] | None = None
    _child_ids: set[str] | None = None
    _status_callbacks: dict[str, list[Callable[..., Any]]] | None = None
    _progress_callbacks: list[Any] | None = None
    _progress: ProgressObservable | None = None
    _progress_async: dict[Any, Any] | None = None
    _stream_it: Any = None  # the fused stream iterator bound to this operation, if any
    _deadline = _INF
    _own_deadline = _INF
    _shielded = False
    _registry: Any = None
    _listening = False
    _cancellation: FireOnce[CancelEvent] | None = None


    if TYPE_CHECKING:
        # Members defined by one part of Cancelable and used by another.
        def __init__(
            self,
            operation_id: str | None = None,
            name: str | None = None,
            parent: Cancelable | None = None,
            metadata: dict[str, Any] | None = None,
            register_globally: bool = False,
            *,
            suppress_cancelation: bool = False,
        ) -> None: ...

        @property
        def id(self) -> str: ...
        @property
        def name(self) -> str | None: ...
        @property
        def status(self) -> OperationStatus: ...
        @property
        def context(self) -> OperationContext: ...
        def _on_token(self, token: CancelationToken) -> None: ...
        def _record(self, event: CancelEvent) -> bool: ...
        def _timeout_event(self) -> CancelEvent: ...
        def _timeout_source(self) -> TimeoutSource: ...
        def _start(self) -> bool: ...
        def _record_exception(self, exc: BaseException) -> bool: ...
        def _listen_all(self) -> None: ...
        def _unlisten_all(self) -> None: ...
        def _finish(self, status: OperationStatus) -> None: ...
        async def check_cancelation(self) -> None: ...
