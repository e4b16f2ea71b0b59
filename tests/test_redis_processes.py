"""Cancellation across real processes through a real redis-server: a cancel in this process
stops work in others (each worker runs on asyncio or trio, this process on both)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import anyio
import pytest
from redis_support import Worker, fresh_namespace

from cancelable_rx import CancelationReason
from cancelable_rx.integrations.redis import DistributedToken
from cancelable_rx.integrations.redis.testing import RedisServer

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer() as srv:
        yield srv


@pytest.mark.parametrize("worker_backend", ["asyncio", "trio"])
async def test_a_cancel_here_stops_the_work_in_another_process(server: RedisServer, worker_backend: str) -> None:
    ns = fresh_namespace()
    worker = await Worker.start(mode="wait", url=server.url, ns=ns, names=["job-42"], backend=worker_backend,
                                each=True, limit=30)
    try:
        assert (await worker.expect("ready"))["listening"] == 1
        won = await DistributedToken("job-42", server.url, namespace=ns).cancel(
            CancelationReason.MANUAL, "stop job 42"
        )
        assert won is True
        stopped = await worker.expect("stopped", timeout=10)
        assert (stopped["name"], stopped["reason"], stopped["message"]) == ("job-42", "manual", "stop job 42")
        assert stopped["origin_pid"] == os.getpid()  # who cancelled travels with the cancel
        assert await worker.finish() == 0
    finally:
        await worker.aclose()


async def test_one_cancel_reaches_every_process_listening(server: RedisServer) -> None:
    ns = fresh_namespace()
    workers = [
        await Worker.start(mode="wait", url=server.url, ns=ns, names=["shared"], backend=b, each=True, limit=30)
        for b in ("asyncio", "trio", "asyncio")
    ]
    try:
        for w in workers:
            await w.expect("ready")
        await DistributedToken("shared", server.url, namespace=ns).cancel(CancelationReason.CONDITION, "quota spent")
        for w in workers:
            stopped = await w.expect("stopped", timeout=10)
            assert (stopped["reason"], stopped["message"]) == ("condition", "quota spent")
            assert await w.finish() == 0
    finally:
        for w in workers:
            await w.aclose()


async def test_a_worker_that_starts_after_the_cancel_stops_at_once(server: RedisServer) -> None:
    ns = fresh_namespace()
    await DistributedToken("early", server.url, namespace=ns).cancel(message="cancelled before the worker ran")
    worker = await Worker.start(mode="wait", url=server.url, ns=ns, names=["early"], each=True, limit=30)
    try:
        stopped = await worker.expect("stopped", timeout=20)
        assert stopped["reason"] == "manual"
        assert stopped["message"] == "cancelled before the worker ran"
        assert await worker.finish() == 0
    finally:
        await worker.aclose()


@pytest.mark.parametrize("worker_backend", ["asyncio", "trio"])
async def test_a_thousand_tokens_in_another_process_cancelled_at_once(server: RedisServer, worker_backend: str) -> None:
    ns = fresh_namespace()
    names = [f"t{i}" for i in range(1000)]
    worker = await Worker.start(mode="wait", url=server.url, ns=ns, names=names, backend=worker_backend, limit=60)
    try:
        assert (await worker.expect("ready", timeout=40))["listening"] == 1000
        cancellers = [DistributedToken(n, server.url, namespace=ns) for n in names]
        won: list[bool] = []

        async def cancel(token: DistributedToken) -> None:
            won.append(await token.cancel(CancelationReason.MANUAL, f"stop {token.name}"))

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for token in cancellers:
                    tg.start_soon(cancel, token)
        assert won.count(True) == 1000
        done = await worker.expect("done", timeout=20)
        stopped = done["stopped"]
        assert len(stopped) == 1000
        assert all(stopped[n][:2] == ["manual", f"stop {n}"] for n in names)
        assert await worker.finish() == 0
    finally:
        await worker.aclose()
