"""Jupyter helpers: an ipywidgets view of an operation (needs ``ipywidgets``).

``progress_widget(op)`` (or ``display(op)`` in a notebook) shows a progress bar fed by
``op.progress`` and a Cancel button bound to the operation.  Jupyter's kernel already
runs an asyncio loop: use top-level ``await`` and ``async with``, no ``anyio.run``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ._checks import check_positive_int, check_timeout, fail_type
from ._hooks import ProgressObservable
from ._models import OperationStatus, ProgressEvent, StopRequest
from ._rx import FireOnce

__all__ = ("OperationWidget", "progress_widget")

_STYLES = {OperationStatus.COMPLETED: "success", OperationStatus.CANCELLED: "warning"}


class Watched(Protocol):
    """What the widget needs from an operation (a ``Cancelable``)."""

    @property
    def name(self) -> str | None: ...
    @property
    def status(self) -> OperationStatus: ...
    @property
    def progress(self) -> ProgressObservable: ...
    @property
    def stop_requests(self) -> FireOnce[StopRequest]: ...
    def request_stop_sync(self, grace: float, *args: Any, **kwargs: Any) -> bool: ...
    def cancel_sync(self, *args: Any, **kwargs: Any) -> None: ...
    def on_start(self, callback: Callable[..., Any]) -> Any: ...


class OperationWidget:
    """A progress bar, a status line, and Stop and Cancel buttons for one operation.

    Stop asks the operation to finish within ``grace`` seconds
    (``op.request_stop_sync(grace, message="stop requested from the notebook")``: the status
    shows ``stopping``); Cancel stops it at once (``op.cancel_sync(...)``).  The widget
    follows progress events; the final event (sent when the operation ends) sets the exact
    count and shows the outcome.
    """

    def __init__(
        self, op: Watched, total: int | None = None, description: str | None = None, grace: float = 30.0
    ) -> None:
        try:
            import ipywidgets as widgets  # noqa: PLC0415 - ipywidgets is optional (the jupyter extra)
        except ImportError as err:  # pragma: no cover - exercised only without the extra
            raise ImportError('progress_widget needs ipywidgets: pip install -e ".[jupyter]" from a clone') from err
        if not (callable(getattr(type(op), "cancel_sync", None)) and hasattr(type(op), "progress")):
            fail_type("op", "a Cancelable", op)
        if total is not None:
            check_positive_int(total, "total", "or None when the total is unknown")
        self.grace = check_timeout(grace, "grace")
        self.op = op
        label = description or op.name or "operation"
        self.bar = widgets.IntProgress(value=0, min=0, max=total or 1, description=label, bar_style="info")
        self.status = widgets.Label(value=op.status.value)
        self.stop_button = widgets.Button(description="Stop", button_style="warning", icon="pause")
        self.stop_button.on_click(self._on_stop_click)
        self.button = widgets.Button(description="Cancel", button_style="danger", icon="stop")
        self.button.on_click(self._on_click)
        self._total = total
        self.box = widgets.VBox([widgets.HBox([self.bar, self.stop_button, self.button]), self.status])
        self._subscription = op.progress.subscribe(self._on_progress)
        self._stop_subscription = op.stop_requests.subscribe(self._on_stop)
        op.on_start(lambda ctx: self._set_status("running"))

    def _on_click(self, _: Any) -> None:
        self.op.cancel_sync(message="cancelled from the notebook")
        self.button.disabled = True
        self.stop_button.disabled = True

    def _on_stop_click(self, _: Any) -> None:
        self.op.request_stop_sync(self.grace, message="stop requested from the notebook")
        self.stop_button.disabled = True

    def _on_stop(self, request: StopRequest) -> None:
        self.stop_button.disabled = True
        self.bar.bar_style = "warning"
        self._set_status(f"stopping (within {request.grace:g}s): {request.message or request.reason.value}")

    def _on_progress(self, event: ProgressEvent) -> None:
        if event.count is not None:
            if self._total is None:
                self.bar.max = max(self.bar.max, event.count)
            self.bar.value = min(event.count, self.bar.max)
        if event.outcome is not None:  # the final event: the exact count and the outcome
            self._finish(str(event.message), _STYLES.get(event.outcome, "danger"))
        else:
            self._set_status(str(event.message))

    def _set_status(self, text: str) -> None:
        self.status.value = text

    def _finish(self, text: str, style: str) -> None:
        self._subscription.dispose()
        self._stop_subscription.dispose()
        self.button.disabled = True
        self.stop_button.disabled = True
        self.bar.bar_style = style
        self._set_status(text)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.box._repr_mimebundle_(**kwargs)


def progress_widget(
    op: Watched, total: int | None = None, description: str | None = None, grace: float = 30.0
) -> OperationWidget:
    """The one-line helper: ``progress_widget(op, total=1000)`` as a cell's last line."""
    return OperationWidget(op, total, description, grace)
