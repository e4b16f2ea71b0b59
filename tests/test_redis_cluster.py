"""ClusterRegistry against a real redis-server: operations of other processes are listed,
cancelled where they run, vanish when their process dies, and end in a bounded history."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator

import anyio
import pytest
import redis
from redis_support import Worker, eventually, fresh_namespace

from cancelable_rx import Cancelable, CancelationReason, ManualCancelation, OperationStatus
from cancelable_rx.integrations.redis import ClusterRegistry
from cancelable_rx.integrations.redis.testing import RedisServer

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer() as srv:
        yield srv


@pytest.mark.parametrize("worker_backend", ["asyncio", "trio"])
async def test_an_operation_of_another_process_is_listed_and_cancelled_there(
    server: RedisServer, worker_backend: str
) -> None:
    ns = fresh_namespace()
    worker = await Worker.start(mode="track", url=server.url, ns=ns, name="resize images", backend=worker_backend,
                                beat=0.1, limit=30)
    try:
        ready = await worker.expect("ready")
        op_id = ready["id"]
        async with ClusterRegistry(server.url, namespace=ns) as cluster:

            async def progressed() -> bool:
                found = await cluster.list_operations(name_pattern="resize")
                return bool(found) and found[0].progress not in (None, "started")

            await eventually(progressed, 10)
            (record,) = await cluster.list_operations(status=OperationStatus.RUNNING)
            assert (record.id, record.name, record.pid) == (op_id, "resize images", ready["pid"])
            assert record.status is OperationStatus.RUNNING and record.host
            assert record.progress is not None and record.progress.startswith("step ")
            assert record.progress_metadata["step"] >= 1
            got = await cluster.get_operation(op_id)
            assert got is not None and (got.id, got.pid) == (op_id, ready["pid"])

            assert await cluster.cancel_operation(op_id, CancelationReason.MANUAL, "stop the resize") is True
            stopped = await worker.expect("stopped", timeout=10)
            assert (stopped["reason"], stopped["message"]) == ("manual", "stop the resize")
            assert await worker.finish() == 0

            assert await cluster.list_operations() == []
            (final,) = await cluster.get_history()
            assert final.id == op_id and final.status is OperationStatus.CANCELLED
            assert (final.cancel_reason, final.cancel_message) == (CancelationReason.MANUAL, "stop the resize")
            assert final.end_time is not None
            assert await cluster.cancel_operation(op_id) is False  # it ended
    finally:
        await worker.aclose()


async def test_the_operation_of_a_dead_process_disappears_after_its_ttl(server: RedisServer) -> None:
    ns = fresh_namespace()
    worker = await Worker.start(mode="track", url=server.url, ns=ns, beat=0.1, limit=30)  # ttl: 0.3 s
    try:
        op_id = (await worker.expect("ready"))["id"]
        async with ClusterRegistry(server.url, namespace=ns) as cluster:
            assert [r.id for r in await cluster.list_operations()] == [op_id]
            os.kill(worker.process.pid, signal.SIGKILL)
            await worker.finish()
            died = time.monotonic()

            async def gone() -> bool:
                return await cluster.list_operations() == []

            await eventually(gone, 10)
            assert time.monotonic() - died <= 0.3 + 1.5
            assert await cluster.get_history() == []  # it never ended: no final record
            client = redis.Redis.from_url(server.url)
            assert client.zcard(f"{ns}:ops") == 0  # the index dropped it too
            client.close()
    finally:
        await worker.aclose()


async def test_tracked_operations_end_in_a_bounded_history(server: RedisServer) -> None:
    ns = fresh_namespace()
    async with ClusterRegistry(server.url, namespace=ns, heartbeat_interval=0.05, max_history=3) as cluster:
        for i in range(4):
            async with cluster.track(Cancelable(name=f"done {i}")):
                await anyio.sleep(0)
        with pytest.raises(ValueError, match="boom"):
            async with cluster.track(Cancelable(name="failed")):
                raise ValueError("boom")
        with pytest.raises(ManualCancelation):
            async with cluster.track(Cancelable(name="cancelled")) as op:
                await op.cancel(message="by itself")
        history = await cluster.get_history()
        assert [r.name for r in history] == ["done 3", "failed", "cancelled"]  # oldest first, newest 3
        assert [r.status for r in history] == [OperationStatus.COMPLETED, OperationStatus.FAILED,
                                               OperationStatus.CANCELLED]
        assert history[1].error is not None and "boom" in history[1].error
        assert [r.name for r in await cluster.get_history(limit=1)] == ["cancelled"]
        assert await cluster.get_history(status=OperationStatus.FAILED) == [history[1]]
        assert await cluster.list_operations() == []


async def test_a_record_carries_the_deadline_and_is_renewed(server: RedisServer) -> None:
    ns = fresh_namespace()
    async with ClusterRegistry(server.url, namespace=ns, heartbeat_interval=0.05) as cluster:
        async with cluster.track(Cancelable.with_timeout(30, name="timed")) as op:
            await op.report_progress("half way", {"done": 50, "item": object()})
            first = await cluster.get_operation(op.id)
            assert first is not None and 29 < first.remaining() <= 30

            async def renewed() -> bool:
                rec = await cluster.get_operation(op.id)
                return rec is not None and rec.heartbeat_at > first.heartbeat_at and rec.progress == "half way"

            await eventually(renewed, 5)
            rec = await cluster.get_operation(op.id)
            assert rec is not None and rec.progress_metadata["done"] == 50
            assert isinstance(rec.progress_metadata["item"], str)  # JSON-safe (repr)
        assert await cluster.get_operation(op.id) is None


async def test_a_malformed_record_is_logged_and_ignored(server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "cancelable_rx.redis")
    ns = fresh_namespace()
    client = redis.Redis.from_url(server.url)
    client.set(f"{ns}:op:junk", b"{not json")
    client.zadd(f"{ns}:ops", {"junk": 1})
    client.lpush(f"{ns}:history", b"[]")
    client.close()
    async with ClusterRegistry(server.url, namespace=ns) as cluster:
        async with cluster.track(Cancelable(name="good")) as op:
            assert [r.id for r in await cluster.list_operations()] == [op.id]
            assert await cluster.get_operation("junk") is None
        assert [r.name for r in await cluster.get_history()] == ["good"]
    assert "malformed record of operation 'junk'" in caplog.text
    assert "malformed history record" in caplog.text


async def test_an_unknown_operation_is_not_cancelled(server: RedisServer) -> None:
    async with ClusterRegistry(server.url, namespace=fresh_namespace()) as cluster:
        assert await cluster.cancel_operation("no-such-operation") is False


async def test_bad_arguments_are_clear_errors(server: RedisServer) -> None:
    with pytest.raises(ValueError, match="`ttl` must be longer than heartbeat_interval"):
        ClusterRegistry(server.url, heartbeat_interval=1, ttl=1)
    with pytest.raises(TypeError, match="`max_history` must be an int > 0"):
        ClusterRegistry(server.url, max_history="10")  # type: ignore[arg-type]
    cluster = ClusterRegistry(server.url, namespace=fresh_namespace())
    with pytest.raises(TypeError, match="`operation` must be a Cancelable"):
        cluster.track(object())  # type: ignore[arg-type]
    async with Cancelable() as op:
        with pytest.raises(ValueError, match="`operation` must be an operation that was not entered yet"):
            cluster.track(op)
    with pytest.raises(TypeError, match="`operation_id` must be a str"):
        await cluster.cancel_operation(42)  # type: ignore[arg-type]
    await cluster.aclose()
    with pytest.raises(RuntimeError, match="was closed"):
        await cluster.list_operations()
