"""No cancel is lost to a restart of the broker: the record is the truth, read again after
every reconnect (each test runs its own redis-server, stopped and started on one port)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import anyio
import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis_support import Worker, eventually, fresh_namespace

from cancelable_rx import CancelationReason
from cancelable_rx.integrations.redis import CancelPayload, DistributedToken, Origin
from cancelable_rx.integrations.redis.testing import RedisServer

pytestmark = pytest.mark.anyio
INTERVAL = 0.2  # the listeners' re-read interval (their reconnect back-off is capped by it)
RETRY = 0.5  # the longest pause between two attempts of a cancel while Redis is down
SLACK = 1.5  # a loaded CI machine


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as srv:
        yield srv


async def test_a_cancel_issued_during_an_outage_is_seen_after_the_broker_returns(server: RedisServer) -> None:
    ns = fresh_namespace()
    listener = await DistributedToken("outage", server.url, namespace=ns, reread_interval=INTERVAL).start()
    canceller = DistributedToken("outage", server.url, namespace=ns, write_timeout=30)
    server.stop()
    result: list[bool] = []

    async def cancel() -> None:
        result.append(await canceller.cancel(CancelationReason.MANUAL, "issued while Redis was down"))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel)
            await anyio.sleep(0.5)  # the broker stays down while the cancel is pending
            assert not result and not listener.is_cancelled
            await anyio.to_thread.run_sync(server.start)
            up = time.monotonic()
            await eventually(lambda: listener.is_cancelled, 20)
            seen = time.monotonic() - up
    assert result == [True]
    assert listener.message == "issued while Redis was down"
    assert seen <= RETRY + INTERVAL + SLACK, seen


@pytest.mark.parametrize("worker_backend", ["asyncio", "trio"])
async def test_a_record_written_before_the_listener_reconnects_is_read_when_it_does(
    server: RedisServer, worker_backend: str
) -> None:
    """A record written (never announced) while the listener is still reconnecting: the read
    after its reconnect finds it.  The listener is another process."""
    ns = fresh_namespace()
    worker = await Worker.start(mode="wait", url=server.url, ns=ns, names=["r"], backend=worker_backend,
                                interval=INTERVAL, each=True, limit=40)
    try:
        await worker.expect("ready")
        await anyio.to_thread.run_sync(server.restart, 0.3)
        client = redis.Redis.from_url(server.url)
        payload = CancelPayload(name="r", reason=CancelationReason.SIGNAL, message="written after the restart",
                                origin=Origin.here())
        client.set(f"{ns}:token:r", payload.model_dump_json())
        client.close()
        up = time.monotonic()
        stopped = await worker.expect("stopped", timeout=20)
        assert (stopped["reason"], stopped["message"]) == ("signal", "written after the restart")
        assert stopped["at"] - up <= INTERVAL + SLACK
        assert await worker.finish() == 0
    finally:
        await worker.aclose()


async def test_a_persistent_broker_keeps_a_cancel_across_its_restart() -> None:
    ns = fresh_namespace()
    with RedisServer(persistent=True) as srv:
        await DistributedToken("kept", srv.url, namespace=ns).cancel(message="before the restart")
        await anyio.to_thread.run_sync(srv.restart)
        with anyio.fail_after(20):
            late = await DistributedToken("kept", srv.url, namespace=ns, write_timeout=10).start()
        assert late.is_cancelled and late.message == "before the restart"
        await late.aclose()


async def test_a_cancel_fails_clearly_when_redis_stays_down(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    ns = fresh_namespace()
    url = server.url
    server.stop()
    token = DistributedToken("down", url, namespace=ns, write_timeout=0.3)
    with anyio.fail_after(20), pytest.raises(ConnectionError, match="could not connect to Redis"):
        await token.cancel()
    assert not token.is_cancelled  # the flag follows the record: nothing was written
    caplog.set_level(logging.ERROR, "cancelable_rx.redis")
    assert token.cancel_sync(message="local fallback") is True
    await eventually(lambda: token.is_cancelled, 10)
    assert token.message == "local fallback"
    assert "cancelled in this process only" in caplog.text


async def test_a_cancel_retries_while_redis_is_briefly_unreachable(server: RedisServer) -> None:
    """An established link retries the write while the broker restarts (no error)."""
    ns = fresh_namespace()
    async with DistributedToken("keep", server.url, namespace=ns, reread_interval=INTERVAL):
        server.stop()
        token = DistributedToken("brief", server.url, namespace=ns, write_timeout=0.3)
        with anyio.fail_after(20), pytest.raises(RedisConnectionError):
            await token.cancel()  # the link exists: the write itself fails after its budget
        await anyio.to_thread.run_sync(server.start)
        assert await DistributedToken("brief", server.url, namespace=ns, write_timeout=20).cancel() is True
