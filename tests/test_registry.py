"""OperationRegistry, its lifecycle observable and thread-safe control, on asyncio and trio."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import anyio
import anyio.lowlevel
import pytest

from cancelable_rx import (
    Cancelable,
    CancelationError,
    CancelationReason,
    CancelationToken,
    LifecycleEvent,
    LifecycleKind,
    ManualCancelation,
    OperationRegistry,
    OperationStatus,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def registry() -> Iterator[OperationRegistry]:
    reg = OperationRegistry.get_instance()
    anyio.run(reg.clear_all)
    yield reg
    anyio.run(reg.clear_all)


async def test_singleton() -> None:
    assert OperationRegistry.get_instance() is OperationRegistry.get_instance()


async def test_register_globally_lifecycle(registry: OperationRegistry) -> None:
    events: list[LifecycleEvent] = []
    sub = registry.events.subscribe(events.append)
    try:
        async with Cancelable(name="job-1", register_globally=True) as op:
            assert await registry.get_operation(op.id) is op
            assert registry.get_operation_sync(op.id) is op
            [ctx] = await registry.list_operations()
            assert ctx.id == op.id and ctx.status is OperationStatus.RUNNING
            await op.report_progress("half", {"pct": 50})
        assert await registry.get_operation(op.id) is None
        history = await registry.get_history()
        assert [h.id for h in history] == [op.id] and history[0].status is OperationStatus.COMPLETED
    finally:
        sub.dispose()
    kinds = [e.kind for e in events]
    assert kinds == [
        LifecycleKind.REGISTERED,
        LifecycleKind.STARTED,
        LifecycleKind.PROGRESS,
        LifecycleKind.COMPLETED,
        LifecycleKind.UNREGISTERED,
    ]
    assert events[2].message == "half" and events[2].metadata == {"pct": 50}
    assert all(e.operation_id == op.id and e.name == "job-1" for e in events)


async def test_cancelled_history_has_reason(registry: OperationRegistry) -> None:
    events: list[LifecycleEvent] = []
    sub = registry.events.subscribe(events.append)
    with pytest.raises(CancelationError):
        async with Cancelable.with_timeout(0.01, register_globally=True):
            await anyio.sleep(1)
    sub.dispose()
    [entry] = await registry.get_history(status=OperationStatus.CANCELLED)
    assert entry.cancel_reason is CancelationReason.TIMEOUT
    cancelled = [e for e in events if e.kind is LifecycleKind.CANCELLED]
    assert len(cancelled) == 1 and cancelled[0].reason is CancelationReason.TIMEOUT
    stats = await registry.get_statistics()
    assert stats["total_cancelled"] == 1 and stats["cancelled_by_reason"] == {"timeout": 1}


async def test_failed_event_carries_error(registry: OperationRegistry) -> None:
    events: list[LifecycleEvent] = []
    sub = registry.events.subscribe(events.append)
    with pytest.raises(ZeroDivisionError):
        async with Cancelable(register_globally=True):
            1 / 0  # noqa: B018
    sub.dispose()
    failed = [e for e in events if e.kind is LifecycleKind.FAILED]
    assert len(failed) == 1 and failed[0].error == "division by zero"
    assert (await registry.get_statistics())["total_failed"] == 1


async def test_list_filters(registry: OperationRegistry) -> None:
    parent = Cancelable(name="parent", register_globally=True)
    async with parent:
        async with Cancelable(name="child-a", parent=parent, register_globally=True) as a:
            others = [Cancelable(name=f"pending-{i}") for i in range(2)]
            for o in others:
                await registry.register(o)
            assert {c.id for c in await registry.list_operations(parent_id=parent.id)} == {a.id}
            assert {c.name for c in await registry.list_operations(name_pattern="pending")} == {"pending-0", "pending-1"}
            assert len(await registry.list_operations(status=OperationStatus.PENDING)) == 2
            assert len(await registry.list_operations(status=OperationStatus.RUNNING)) == 2
    for o in others:
        await registry.unregister(o.id)
    await registry.unregister("no-such-id")  # unknown: no-op
    assert await registry.list_operations() == []


async def test_cancel_all_with_status_filter(registry: OperationRegistry) -> None:
    pending = [Cancelable(name=f"p{i}") for i in range(3)]
    for p in pending:
        await registry.register(p)
    with pytest.raises(ManualCancelation):
        async with Cancelable(name="running", register_globally=True):
            assert await registry.cancel_all(status=OperationStatus.PENDING, message="only pending") == 3
            assert all(p.is_cancelled for p in pending)
            await anyio.sleep(0)  # the running one is untouched
            assert await registry.cancel_all(status=OperationStatus.RUNNING, message="now running") == 1
            await anyio.sleep(1)
    [entry] = await registry.get_history(status=OperationStatus.CANCELLED)
    assert entry.name == "running" and entry.cancel_message == "now running"


async def test_cancel_operation_unknown_and_known(registry: OperationRegistry) -> None:
    assert await registry.cancel_operation("nope") is False
    with pytest.raises(ManualCancelation, match="by id"):
        async with Cancelable(register_globally=True) as op:
            assert await registry.cancel_operation(op.id, message="by id") is True
            await anyio.sleep(1)


@pytest.mark.parametrize("how", ["cancel_operation_sync", "cancel_all_sync"])  # the facade: test_bridge.py
async def test_sync_cancel_from_plain_thread(registry: OperationRegistry, how: str) -> None:
    entered = threading.Event()

    def canceller(op_id: str) -> None:
        entered.wait(5)
        if how == "cancel_operation_sync":
            registry.cancel_operation_sync(op_id, CancelationReason.MANUAL, "thread")
        else:
            registry.cancel_all_sync(message="thread")

    with anyio.fail_after(5), pytest.raises(ManualCancelation, match="thread"):
        async with Cancelable(register_globally=True) as op:
            thread = threading.Thread(target=canceller, args=(op.id,))
            thread.start()
            entered.set()
            await anyio.sleep_forever()
    thread.join(5)


async def test_sync_reads_from_thread(registry: OperationRegistry) -> None:
    out: dict[str, object] = {}

    def reader(op_id: str) -> None:
        out["op"] = registry.get_operation_sync(op_id)
        out["list"] = registry.list_operations_sync()
        out["stats"] = registry.get_statistics_sync()

    async with Cancelable(name="reader-op", register_globally=True) as op:
        await anyio.to_thread.run_sync(reader, op.id)
    assert out["op"] is op
    assert [c.id for c in out["list"]] == [op.id]  # type: ignore[attr-defined]
    assert out["stats"]["active_operations"] == 1  # type: ignore[index]
    assert registry.get_history_sync(limit=1)[0].id == op.id


async def test_history_is_bounded_and_filtered(registry: OperationRegistry) -> None:
    registry.max_history = 5
    try:
        for i in range(12):
            async with Cancelable(name=f"h{i}", register_globally=True):
                pass
        history = await registry.get_history()
        assert [h.name for h in history] == [f"h{i}" for i in range(7, 12)]
        assert [h.name for h in await registry.get_history(limit=2)] == ["h10", "h11"]
        assert await registry.get_history(limit=0) == []
        future = datetime.now(UTC) + timedelta(hours=1)
        assert await registry.get_history(since=future) == []
        assert len(await registry.get_history(since=datetime.now(UTC) - timedelta(hours=1))) == 5
    finally:
        registry.max_history = 1000


async def test_cleanup_completed(registry: OperationRegistry) -> None:
    done = Cancelable(name="done")
    failed = Cancelable(name="failed")
    await registry.register(done)
    await registry.register(failed)
    async with done:
        pass
    with pytest.raises(RuntimeError):
        async with failed:
            raise RuntimeError("x")
    assert await registry.cleanup_completed(older_than=timedelta(hours=1)) == 0  # ended just now
    assert await registry.cleanup_completed() == 1  # failed ones are kept by default
    assert [c.name for c in await registry.list_operations()] == ["failed"]
    assert await registry.cleanup_completed(keep_failed=False) == 1


async def test_failing_subscriber_never_breaks_operation(registry: OperationRegistry) -> None:
    def bad(_: LifecycleEvent) -> None:
        raise RuntimeError("subscriber exploded")

    seen: list[LifecycleKind] = []
    s1 = registry.events.subscribe(bad)
    s2 = registry.events.subscribe(lambda e: seen.append(e.kind))
    async with Cancelable(register_globally=True) as op:
        pass
    s1.dispose()
    s2.dispose()
    assert op.is_completed and LifecycleKind.COMPLETED in seen


async def test_concurrent_register_from_tasks_and_threads(registry: OperationRegistry) -> None:
    async def task_op(i: int) -> None:
        async with Cancelable(name=f"t{i}", register_globally=True):
            await anyio.sleep(0.001)

    def thread_registers(n: int) -> None:
        async def go() -> None:
            for i in range(n):
                op = Cancelable(name=f"th{i}")
                await registry.register(op)
                await registry.unregister(op.id)

        anyio.run(go)

    registry.max_history = 10_000
    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for i in range(200):
                    tg.start_soon(task_op, i)
                threads = [threading.Thread(target=thread_registers, args=(200,)) for _ in range(4)]
                for t in threads:
                    t.start()
                for t in threads:
                    await anyio.to_thread.run_sync(t.join)
        stats = await registry.get_statistics()
        assert stats["active_operations"] == 0
        assert stats["history_size"] == 200 + 4 * 200
        assert stats["total_registered"] == 1000
    finally:
        registry.max_history = 1000


async def test_history_keeps_the_record_not_the_stream_buffer(registry: OperationRegistry) -> None:
    async def rows():  # noqa: ANN202 - a test source
        for i in range(200):
            yield {"row": i, "payload": "x" * 100}

    ops = []
    for _ in range(50):
        async with Cancelable(register_globally=True) as op:
            async for _row in op.stream(rows()):
                pass
        ops.append(op)
    history = await registry.get_history()
    assert len(history) == 50
    assert all(ctx.partial_result.count == 200 and ctx.partial_result.completed for ctx in history)
    assert all(ctx.partial_result.buffer is None for ctx in history)  # released in history
    assert len(ops[0].partial_result.buffer) == 200  # the caller's operation keeps its own result


async def test_history_can_keep_partial_buffers() -> None:
    keeping = OperationRegistry(keep_partial_buffers=True)
    op = Cancelable(name="kept")
    await keeping.register(op)
    async with op:
        async for _ in op.stream([1, 2, 3]):
            pass
    await keeping.unregister(op.id)
    (ctx,) = await keeping.get_history()
    assert ctx.partial_result.buffer == [1, 2, 3] and ctx.name == "kept"


async def test_history_holds_nothing_of_the_operation(registry: OperationRegistry) -> None:
    import gc
    import weakref

    async with Cancelable(register_globally=True) as op:
        pass
    ref = weakref.ref(op)
    del op
    gc.collect()
    assert ref() is None  # the history entry is a copy of the record
    assert (await registry.get_history())[-1].status is OperationStatus.COMPLETED


async def test_history_records_are_built_once_then_read_as_edited(registry: OperationRegistry) -> None:
    # Exits leave flat entries, made into records when the history is first read; a record
    # whose operation's context was read is copied at once.  Every reading sees the same
    # records, in the order the operations ended, with a reader's edits kept.
    async with Cancelable(name="plain", register_globally=True):
        await anyio.sleep(0.01)
    async with Cancelable(name="read", register_globally=True) as read:
        assert read.context.name == "read"  # a record is built while it runs
    with pytest.raises(CancelationError):
        async with Cancelable.with_timeout(0.01, name="timed", register_globally=True):
            await anyio.sleep_forever()
    first = await registry.get_history()
    assert [c.name for c in first] == ["plain", "read", "timed"]
    assert [c.status for c in first] == [OperationStatus.COMPLETED, OperationStatus.COMPLETED, OperationStatus.CANCELLED]
    assert first[2].cancel_reason is CancelationReason.TIMEOUT
    assert first[0].duration_seconds is not None and first[0].duration_seconds >= 0.009
    first[0].metadata["note"] = "seen"
    async with Cancelable(name="later", register_globally=True):
        pass
    again = await registry.get_history()
    assert again[:3] == first and all(a is b for a, b in zip(again, first, strict=False))
    assert again[0].metadata == {"note": "seen"} and again[3].name == "later"
    stats = await registry.get_statistics()
    assert stats["history_size"] == 4 and stats["history_by_status"] == {"completed": 3, "cancelled": 1}
    assert stats["total_completed"] == 3 and stats["average_duration_seconds"] >= 0.009 / 3
    registry.max_history = 2  # shrinking keeps the newest, flat or built
    try:
        async with Cancelable(name="last", register_globally=True):
            pass
        assert [c.name for c in await registry.get_history()] == ["later", "last"]
    finally:
        registry.max_history = 1000


async def test_two_threads_reading_the_history_first_get_the_same_records(
    registry: OperationRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both threads build the first record at the same moment (forced: each waits for the
    # other inside the build); both must then hold the one record the history keeps, so
    # an edit made through either is the one every later reading sees.
    from cancelable_rx import _models

    async with Cancelable(name="ended", register_globally=True):
        pass
    build = _models.build_context
    both_building = threading.Barrier(2, timeout=5)

    def build_together(*args: object, **kwargs: object) -> object:
        both_building.wait()
        return build(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_models, "build_context", build_together)
    seen: list[object] = []
    readers = [threading.Thread(target=lambda: seen.append(registry.get_history_sync()[0])) for _ in range(2)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(10)
    monkeypatch.setattr(_models, "build_context", build)
    assert len(seen) == 2 and seen[0] is seen[1]
    seen[0].metadata["edited"] = True  # type: ignore[attr-defined]
    assert (await registry.get_history())[0].metadata == {"edited": True}


async def test_an_operation_given_a_listed_id_never_removes_the_listed_one(registry: OperationRegistry) -> None:
    async with Cancelable(operation_id="same", name="first", register_globally=True):
        async with Cancelable(operation_id="same", name="second", register_globally=True):
            assert [c.name for c in await registry.list_operations()] == ["first"]
        assert [c.name for c in await registry.list_operations()] == ["first"]  # still listed
        assert await registry.get_history() == []  # the second was never listed
    assert await registry.list_operations() == []
    assert [c.name for c in await registry.get_history()] == ["first"]


async def test_history_copies_records_whose_metadata_cannot_be_deep_copied(registry: OperationRegistry) -> None:
    lock = threading.Lock()  # cannot be deep-copied
    async with Cancelable(register_globally=True, metadata={"lock": lock}) as op:
        assert op.context.metadata["lock"] is lock  # a record was built
    assert op.is_completed
    (ctx,) = await registry.get_history(limit=1)
    assert ctx.metadata["lock"] is lock and ctx is not op.context


async def test_an_operation_registered_before_it_enters_is_listed_and_announced_once(registry: OperationRegistry) -> None:
    events: list[LifecycleKind] = []
    sub = registry.events.subscribe(lambda e: events.append(e.kind))
    try:
        op = Cancelable(register_globally=True)
        await registry.register(op)
        async with op:
            assert [ctx.id for ctx in await registry.list_operations()] == [op.id]
    finally:
        sub.dispose()
    assert events == [LifecycleKind.REGISTERED, LifecycleKind.STARTED, LifecycleKind.COMPLETED, LifecycleKind.UNREGISTERED]
    stats = await registry.get_statistics()
    assert stats["total_registered"] == 1 and stats["lifetime_completed"] == 1 and stats["active_operations"] == 0


async def test_operations_entering_on_many_threads_are_each_counted_once(registry: OperationRegistry) -> None:
    # Entering with register_globally=True adds to the live set without the lock: four
    # threads, each running its own event loop, enter and leave operations while this task
    # reads the registry; nothing is lost or counted twice, and no read fails.
    per_thread, threads_n = 300, 4
    started = threading.Barrier(threads_n + 1)

    def worker() -> None:
        async def go() -> None:
            started.wait()
            for _ in range(per_thread):
                async with Cancelable(register_globally=True) as op:
                    assert registry.get_operation_sync(op.id) is op
                    await anyio.lowlevel.checkpoint()

        anyio.run(go)

    registry.max_history = 10_000
    try:
        threads = [threading.Thread(target=worker) for _ in range(threads_n)]
        for t in threads:
            t.start()
        started.wait()
        reads = 0
        while any(t.is_alive() for t in threads):
            stats = registry.get_statistics_sync()
            live = len(registry.list_operations_sync())
            assert 0 <= live <= threads_n and stats["lifetime_completed"] <= stats["total_registered"]
            reads += 1
            await anyio.sleep(0.001)  # (a busy reader would starve the threads of the GIL)
        for t in threads:
            t.join()
        stats = await registry.get_statistics()
        total = per_thread * threads_n
        assert reads > 0
        assert stats["total_registered"] == total and stats["lifetime_completed"] == total
        assert stats["active_operations"] == 0 and stats["history_size"] == total
    finally:
        registry.max_history = 1000


async def test_an_operation_registered_by_another_thread_as_it_enters_is_announced_once(registry: OperationRegistry) -> None:
    # Forced interleaving: when the entering operation first looks at the live set, another
    # thread calls register(op) right then (waited for up to 0.5 s: it may have to wait for
    # the registry's lock, and then get it only after the operation ended).  Whoever adds
    # the operation announces it; the other does not.
    events: list[LifecycleKind] = []
    sub = registry.events.subscribe(lambda e: events.append(e.kind))
    op = Cancelable(register_globally=True)
    loop_thread = threading.get_ident()
    other: list[threading.Thread] = []

    class Interleaving(dict):  # type: ignore[type-arg]
        def _interleave(self) -> None:
            if not other and threading.get_ident() == loop_thread:
                t = threading.Thread(target=anyio.run, args=(registry.register, op))
                other.append(t)
                t.start()
                t.join(0.5)

        def __contains__(self, key: object) -> bool:
            found = super().__contains__(key)
            self._interleave()
            return found

        def get(self, key: object, default: object = None) -> object:
            found = super().get(key, default)
            self._interleave()
            return found

    original = registry._operations
    registry._operations = Interleaving(original)
    try:
        async with op:
            pass
        await anyio.to_thread.run_sync(other[0].join)
    finally:
        registry._operations = original
        sub.dispose()
    assert events == [LifecycleKind.REGISTERED, LifecycleKind.STARTED, LifecycleKind.COMPLETED, LifecycleKind.UNREGISTERED]
    # (the other thread's register() may only get the lock after the operation ended: it
    # must not list the ended operation again)
    assert registry.get_operation_sync(op.id) is None and registry.get_statistics_sync()["active_operations"] == 0


@pytest.mark.parametrize("subscribed", [False, True])
async def test_an_operation_given_an_id_already_listed_leaves_the_listed_one_alone(
    registry: OperationRegistry, subscribed: bool
) -> None:
    sub = registry.events.subscribe(lambda e: None) if subscribed else None
    try:
        async with Cancelable(operation_id="job", register_globally=True) as outer:
            async with Cancelable(operation_id="job", register_globally=True):
                assert registry.get_operation_sync("job") is outer  # the first one stays listed
            assert registry.get_operation_sync("job") is outer  # the second's exit removed nothing
        assert registry.get_operation_sync("job") is None
        assert [h.id for h in await registry.get_history()] == ["job"]
    finally:
        if sub is not None:
            sub.dispose()


@pytest.mark.parametrize("subscribed", [False, True])
async def test_an_operation_cancelled_before_it_entered_is_listed_and_moves_to_history(
    registry: OperationRegistry, subscribed: bool
) -> None:
    # Its status is CANCELLED from the start of the block: it is still a running operation
    # of the registry (listed, then in history), whether or not anyone watches the events.
    events: list[LifecycleKind] = []
    sub = registry.events.subscribe(lambda e: events.append(e.kind)) if subscribed else None
    token = CancelationToken()
    await token.cancel(CancelationReason.MANUAL, "before")
    try:
        with pytest.raises(CancelationError):
            async with Cancelable.with_token(token, register_globally=True) as op:
                assert op.status is OperationStatus.CANCELLED
                assert registry.get_operation_sync(op.id) is op
                await anyio.sleep(1)
    finally:
        if sub is not None:
            sub.dispose()
    assert registry.get_operation_sync(op.id) is None
    [entry] = await registry.get_history()
    assert entry.id == op.id and entry.status is OperationStatus.CANCELLED
    if subscribed:
        assert events == [LifecycleKind.REGISTERED, LifecycleKind.STARTED, LifecycleKind.CANCELLED, LifecycleKind.UNREGISTERED]
