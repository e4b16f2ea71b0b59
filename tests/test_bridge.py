"""The compatibility bridge (``_bridge.py``): AnyioBridge, call_soon_threadsafe and the
ThreadSafeRegistry facade; on asyncio and trio."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import anyio
import pytest

from cancelable_rx import (
    AnyioBridge,
    Cancelable,
    ManualCancelation,
    OperationRegistry,
    ThreadSafeRegistry,
    call_soon_threadsafe,
)

pytestmark = pytest.mark.anyio


async def test_anyio_bridge_runs_thread_callbacks_on_loop() -> None:
    bridge = AnyioBridge()
    ran: list[tuple[str, int]] = []
    done = anyio.Event()

    def record(tag: str) -> None:
        ran.append((tag, threading.get_ident()))
        if len(ran) == 2:
            done.set()

    bridge.call_soon_threadsafe(record, "queued-before-start")
    async with anyio.create_task_group() as tg:
        tg.start_soon(bridge.start)
        await anyio.wait_all_tasks_blocked()
        assert bridge.is_started
        thread = threading.Thread(target=bridge.call_soon_threadsafe, args=(record, "from-thread"))
        thread.start()
        with anyio.fail_after(5):
            await done.wait()
        thread.join(5)
        tg.cancel_scope.cancel()
    assert [t for t, _ in ran] == ["queued-before-start", "from-thread"]
    assert {ident for _, ident in ran} == {threading.get_ident()}
    assert not bridge.is_started


async def test_global_call_soon_threadsafe() -> None:
    bridge = AnyioBridge.get_instance()
    done = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(bridge.start)
        await anyio.wait_all_tasks_blocked()
        await anyio.to_thread.run_sync(call_soon_threadsafe, done.set)
        with anyio.fail_after(5):
            await done.wait()
        tg.cancel_scope.cancel()


# -- ThreadSafeRegistry: the synchronous facade over the registry -------------------------------


@pytest.fixture
def registry() -> Iterator[OperationRegistry]:
    reg = OperationRegistry.get_instance()
    anyio.run(reg.clear_all)
    yield reg
    anyio.run(reg.clear_all)


async def test_thread_safe_registry_cancels_from_plain_thread(registry: OperationRegistry) -> None:
    entered = threading.Event()

    def canceller(op_id: str) -> None:
        entered.wait(5)
        ThreadSafeRegistry.get_instance().cancel_operation(op_id, message="thread")

    with anyio.fail_after(5), pytest.raises(ManualCancelation, match="thread"):
        async with Cancelable(register_globally=True) as op:
            thread = threading.Thread(target=canceller, args=(op.id,))
            thread.start()
            entered.set()
            await anyio.sleep_forever()
    thread.join(5)


async def test_thread_safe_registry_reads_from_thread(registry: OperationRegistry) -> None:
    out: dict[str, object] = {}

    def reader(op_id: str) -> None:
        facade = ThreadSafeRegistry()
        out["list"] = facade.list_operations(name_pattern="reader")
        out["op"] = facade.get_operation(op_id)
        out["stats"] = facade.get_statistics()

    async with Cancelable(name="reader-op", register_globally=True) as op:
        await anyio.to_thread.run_sync(reader, op.id)
    assert len(out["list"]) == 1  # type: ignore[arg-type]
    assert out["op"] is op
    assert out["stats"]["active_operations"] == 1  # type: ignore[index]
    assert [c.id for c in ThreadSafeRegistry().get_history(limit=1)] == [op.id]
