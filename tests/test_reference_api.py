"""Code written against hother-cancelable 0.11.3 runs with the import line changed: its
names, the compatibility face, the registry following the record, the bridge's lifecycle,
the decorators and helpers, and results read the reference's way."""

from __future__ import annotations

import threading
import warnings
from datetime import UTC, datetime, timedelta

import anyio
import anyio.lowlevel
import pytest

import cancelable_rx
from cancelable_rx import (
    AnyioBridge,
    Cancelable,
    CancelationError,
    CancelationReason,
    CancelationToken,
    ManualCancelation,
    OperationRegistry,
    OperationStatus,
    PartialResult,
    TimeoutCancelation,
    cancelable_method,
    compat,
    ensure_cancelable,
)

pytestmark = pytest.mark.anyio

# Every public name of hother-cancelable 0.11.3: its package's __all__ and the public names
# of its public submodules, read once from its source (not imported here).
REFERENCE_NAMES = (
    "AllOfSource", "AnyOfSource", "AnyioBridge", "Cancelable", "CancelableAsyncIterator", "CancelationError",
    "CancelationReason", "CancelationScenario", "CancelationSource", "CancelationToken", "CompositeSource",
    "ConditionCancelation", "ConditionSource", "ContextBridge", "ErrorCallback", "ErrorCallbackType", "LinkState",
    "LinkedCancelationToken", "ManualCancelation", "MockCancelationToken", "OperationContext", "OperationRecorder",
    "OperationRegistry", "OperationStatus", "ParentCancelation", "ProgressCallback", "ProgressCallbackType",
    "ResourceConditionSource", "SignalCancelation", "SignalSource", "StatusCallback", "StatusCallbackType",
    "StreamConfig", "ThreadSafeRegistry", "TimeoutCancelation", "TimeoutSource", "assert_cancelation_within",
    "call_soon_threadsafe", "cancelable", "cancelable_combine", "cancelable_method", "cancelable_stream",
    "cancelable_with_condition", "cancelable_with_signal", "cancelable_with_token", "chunked_cancelable_stream",
    "create_slow_stream", "current_operation", "ensure_cancelable", "get_logger", "get_random_chunk_size",
    "run_with_timeout_test", "sample_async_operation", "simulate_stream", "with_cancelable",
    "with_current_operation", "with_timeout",
)
# hother.cancelable.integrations.fastapi: in cancelable_rx.integrations.web (optional dependencies).
REFERENCE_WEB_NAMES = (
    "CancelableWebSocket", "RequestCancelationMiddleware", "cancelable_dependency", "cancelable_streaming_response",
    "get_request_token", "with_cancelation",
)


def test_every_reference_name_is_importable() -> None:
    assert [n for n in REFERENCE_NAMES if n not in cancelable_rx.__all__] == []
    web = pytest.importorskip("cancelable_rx.integrations.web")
    assert [n for n in REFERENCE_WEB_NAMES if not hasattr(web, n)] == []


# What the compatibility face has of its own: its Cancelable, what builds operations, and the
# reference's bridge (a memory stream and a worker).
COMPAT_BUILDERS = {
    "Cancelable", "cancelable", "cancelable_combine", "cancelable_method", "cancelable_stream",
    "cancelable_with_condition", "cancelable_with_signal", "cancelable_with_token", "ensure_operation", "with_timeout",
    "AnyioBridge", "call_soon_threadsafe",
}  # fmt: skip


def test_the_compat_face_shares_everything_but_cancelable_what_builds_it_and_the_bridge() -> None:
    assert set(compat.__all__) == set(cancelable_rx.__all__) | {"CompatWarning"}
    shared = [n for n in cancelable_rx.__all__ if n not in COMPAT_BUILDERS]
    assert [n for n in shared if getattr(compat, n) is not getattr(cancelable_rx, n)] == []
    assert [n for n in COMPAT_BUILDERS if getattr(compat, n) is getattr(cancelable_rx, n)] == []
    assert issubclass(compat.Cancelable, Cancelable) and compat.Cancelable is not Cancelable


async def test_the_compat_face_leaves_a_cancelled_operation_as_the_reference_does() -> None:
    compat._warned.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(anyio.get_cancelled_exc_class()):  # the reference's idiom
            async with compat.Cancelable.with_timeout(0.01) as op:
                await anyio.sleep(5)
        assert op.status is OperationStatus.CANCELLED and op.cancel_reason is CancelationReason.TIMEOUT
        token = CancelationToken()
        with pytest.raises(anyio.get_cancelled_exc_class()):
            async with compat.Cancelable.with_token(token) as other:
                await token.cancel()
                await anyio.sleep(5)
        assert other.cancel_reason is CancelationReason.MANUAL
    warned = [w for w in caught if issubclass(w.category, compat.CompatWarning)]
    assert len(warned) == 1  # once per process
    assert "except CancelationError" in str(warned[0].message) and "migration" in str(warned[0].message)
    # cancelled with no checkpoint after the cancel: the block ends normally, as in the reference
    async with compat.Cancelable() as quiet:
        await quiet.cancel()
    assert quiet.status is OperationStatus.CANCELLED
    # what is not the operation's own cancellation is untouched; suppress_cancelation still applies
    with pytest.raises(ValueError, match="boom"):
        async with compat.Cancelable():
            raise ValueError("boom")
    async with compat.Cancelable.with_timeout(0.01, suppress_cancelation=True):
        await anyio.sleep(5)
    # the main face keeps its typed error
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.01):
            await anyio.sleep(5)


async def test_the_registry_follows_the_record() -> None:
    registry = OperationRegistry()
    ops = [Cancelable(name=f"Op_{i}") for i in range(4)]
    for op in ops:
        await registry.register(op)  # never entered: listed all the same
    assert len(await registry.list_operations()) == 4
    ops[0].context.status = OperationStatus.RUNNING
    ops[1].context.status = OperationStatus.COMPLETED
    ops[1].context.end_time = ops[1].context.start_time + timedelta(seconds=2)
    ops[2].context.status = OperationStatus.FAILED
    assert [c.name for c in await registry.list_operations(status=OperationStatus.RUNNING)] == ["Op_0"]
    assert [c.name for c in await registry.list_operations(name_pattern="op_2")] == ["Op_2"]  # case-insensitive
    assert await registry.cleanup_completed(keep_failed=True) == 1
    stats = await registry.get_statistics()
    assert stats["active_operations"] == 3 and stats["active_by_status"] == {"running": 1, "failed": 1, "pending": 1}
    assert stats["history_size"] == 1 and stats["history_by_status"] == {"completed": 1}
    assert stats["total_completed"] == 1 and stats["average_duration_seconds"] == pytest.approx(2.0)
    registry._history_limit = 2
    for i in range(3):
        op = Cancelable(name=f"h{i}")
        await registry.register(op)
        await registry.unregister(op.id)
    assert [c.name for c in await registry.get_history()] == ["h1", "h2"]


async def test_cancel_all_goes_on_past_a_failing_cancel_and_the_sync_twins_return_alike() -> None:
    registry = OperationRegistry()

    class Stubborn(Cancelable):
        __slots__ = ()

        async def cancel(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("will not")

    good, bad, other = Cancelable(name="good"), Stubborn(name="bad"), Cancelable(name="other")
    for op in (bad, good, other):
        await registry.register(op)
    with pytest.raises(ManualCancelation, match="Bulk cancelation"):
        async with good, other:
            assert await registry.cancel_all() == 2
            await anyio.lowlevel.checkpoint()
    assert good.status is OperationStatus.CANCELLED and other.status is OperationStatus.CANCELLED
    assert registry.cancel_operation_sync("nope") is False and await registry.cancel_operation("nope") is False
    with pytest.raises(ManualCancelation):
        async with Cancelable() as live:
            await registry.register(live)
            assert registry.cancel_operation_sync(live.id) is True
            await anyio.sleep(1)
    assert live.status is OperationStatus.CANCELLED


@pytest.mark.parametrize("face", ["main", "compat"])
async def test_the_bridge_runs_in_a_task_group_as_reference_users_run_it(face: str) -> None:
    bridge = AnyioBridge(buffer_size=10) if face == "main" else compat.AnyioBridge(buffer_size=10)
    ran: list[str] = []
    bridge.call_soon_threadsafe(lambda: ran.append("queued"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(bridge.start)
        await anyio.sleep(0.01)
        assert bridge.is_started and ran == ["queued"]
        done = anyio.Event()

        async def from_thread() -> None:
            ran.append("async")
            done.set()

        threading.Thread(target=bridge.call_soon_threadsafe, args=(from_thread,)).start()
        with anyio.fail_after(5):
            await done.wait()
        await bridge.start()  # a second start: a warning, and it returns
        await bridge.stop()  # start() returns: the task group ends without a cancel
    assert not bridge.is_started and ran == ["queued", "async"]


async def test_decorators_and_helpers_of_the_reference() -> None:
    class Worker:
        @cancelable_method(timeout=5)
        async def run(self, x: int, cancelable: Cancelable | None = None) -> str:
            return f"{ensure_cancelable(cancelable).name}:{x}"

    assert await Worker().run(3) == "Worker.run:3"
    assert Worker.run._cancelable_params == {"timeout": 5, "name": None, "register_globally": False}  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="Cancelable parameter is None"):
        ensure_cancelable(None)


async def test_results_and_records_read_the_reference_way() -> None:
    async def numbers():  # noqa: ANN202
        for i in range(5):
            yield i

    async with Cancelable() as op:
        async for _ in op.stream(numbers(), buffer_partial=True):
            pass
    partial = op.context.partial_result
    assert isinstance(partial, PartialResult) and partial.count == 5
    assert partial["count"] == 5 and partial.get("completed") is True and partial.get("nope", 1) == 1
    assert dict(partial) == {"count": 5, "buffer": [0, 1, 2, 3, 4], "completed": True} and "buffer" in partial
    with pytest.raises(ValueError, match="bad input"):
        async with Cancelable() as failed:
            raise ValueError("bad input")
    assert failed.context.error == "bad input"
    token = CancelationToken()
    assert token.id in str(token) and token.id in repr(token) and "active" in str(token)
    await token.cancel(CancelationReason.TIMEOUT)
    assert "cancelled=timeout" in str(token) and "is_cancelled=True" in repr(token)
    fresh = CancelationToken()
    await fresh.cancel()
    with pytest.raises(ManualCancelation, match="Operation cancelled via token"):
        fresh.check()
    assert isinstance(ManualCancelation(), CancelationError)


async def test_leaving_without_entering_says_so() -> None:
    with pytest.raises(RuntimeError, match="was not entered"):
        await Cancelable().__aexit__(None, None, None)


def test_history_since_filter_takes_aware_datetimes() -> None:
    assert OperationRegistry().get_history_sync(since=datetime.now(UTC)) == []


async def test_history_since_includes_an_operation_that_ended_at_that_instant() -> None:
    registry = OperationRegistry()
    now = datetime.now(UTC)
    for hours in range(5):
        op = Cancelable(name=f"h{hours}")
        await registry.register(op)
        op.context.status = OperationStatus.COMPLETED
        op.context.end_time = now - timedelta(hours=hours)  # as a reference user sets it
        await registry.unregister(op.id)
    since = now - timedelta(hours=3)
    assert [c.name for c in await registry.get_history(since=since)] == ["h0", "h1", "h2", "h3"]
