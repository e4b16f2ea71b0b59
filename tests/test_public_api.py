"""The public surface: __all__ is complete and the reference signatures hold."""

from __future__ import annotations

import inspect
import types

import cancelable_rx
from cancelable_rx import Cancelable, CancelationToken, LinkedCancelationToken, OperationRegistry


def test_all_is_complete_and_importable() -> None:
    assert isinstance(cancelable_rx.__all__, tuple)
    for name in cancelable_rx.__all__:
        assert hasattr(cancelable_rx, name), name
    public = {
        name
        for name, value in vars(cancelable_rx).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", "").startswith("cancelable_rx")
    }
    assert public <= set(cancelable_rx.__all__), public - set(cancelable_rx.__all__)


def _params(fn: object) -> list[tuple[str, object]]:
    sig = inspect.signature(fn)  # type: ignore[arg-type]
    return [(p.name, p.default) for p in sig.parameters.values() if p.name not in ("self", "cls")]


def test_reference_signatures() -> None:
    empty = inspect.Parameter.empty
    assert _params(Cancelable.__init__)[:5] == [
        ("operation_id", None), ("name", None), ("parent", None), ("metadata", None), ("register_globally", False),
    ]
    assert _params(Cancelable.with_timeout) == [
        ("timeout", empty), ("operation_id", None), ("name", None), ("grace", None), ("kwargs", empty),
    ]
    assert _params(Cancelable.with_token) == [("token", empty), ("operation_id", None), ("name", None), ("kwargs", empty)]
    assert _params(Cancelable.with_signal) == [
        ("signals", empty), ("operation_id", None), ("name", None), ("graceful", None), ("kwargs", empty),
    ]
    assert _params(Cancelable.with_condition) == [
        ("condition", empty), ("check_interval", 0.1), ("condition_name", None),
        ("operation_id", None), ("name", None), ("kwargs", empty),
    ]
    assert [n for n, _ in _params(Cancelable.cancel)] == ["reason", "message", "propagate_to_children"]
    assert _params(Cancelable.cancel)[1:] == [("message", None), ("propagate_to_children", True)]
    assert [n for n, _ in _params(CancelationToken.cancel)] == ["reason", "message"]
    assert [n for n, _ in _params(CancelationToken.cancel_sync)] == ["reason", "message"]
    assert _params(LinkedCancelationToken.link) == [("token", empty), ("preserve_reason", False)]
    for name in ("combine", "on_progress", "on_start", "on_complete", "on_cancel", "on_error", "report_progress",
                 "check_cancelation", "run_in_thread", "stream", "wrap", "wrapping", "shield", "add_source"):
        assert callable(getattr(Cancelable, name)), name
    for name in ("get_instance", "register", "unregister", "get_operation", "list_operations", "cancel_operation",
                 "cancel_all", "get_history", "cleanup_completed", "get_statistics", "clear_all",
                 "get_operation_sync", "list_operations_sync", "get_statistics_sync", "get_history_sync",
                 "cancel_operation_sync", "cancel_all_sync"):
        assert callable(getattr(OperationRegistry, name)), name
