"""500 concurrent requests on each real server, half of which disconnect: every operation
ends with the right reason, and nothing is left behind (registry, tasks, error logs)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from functools import partial

import anyio
import httpx
import pytest
from web_apps import PROBE, make_app, release_all
from web_servers import KINDS, LogCapture, Server, ended

from cancelable_rx import CancelationReason, OperationRegistry, OperationStatus

pytestmark = pytest.mark.anyio

N = 500


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    srv = Server(make_app(register_globally=True), request.param).start()
    yield srv
    srv.stop()


async def test_500_concurrent_requests_half_of_which_disconnect(server: Server) -> None:
    tag = uuid.uuid4().hex[:8]
    keys = [f"{tag}-{i}" for i in range(N)]
    leaving = set(keys[::2])
    statuses: dict[str, int] = {}
    scopes: dict[str, anyio.CancelScope] = {}
    async with httpx.AsyncClient(base_url=server.url) as warm:  # the server's idle task count
        assert (await warm.get("/fast")).status_code == 200
    with anyio.fail_after(10):
        while await server.tasks() > baseline_tasks(server):
            await anyio.sleep(0.01)
    baseline = await server.tasks()
    registry = OperationRegistry.get_instance()

    async def one(client: httpx.AsyncClient, key: str) -> None:
        with anyio.CancelScope() as scope:
            scopes[key] = scope
            response = await client.get("/hold", headers={"x-test": key})
            statuses[key] = response.status_code

    limits = httpx.Limits(max_connections=N, max_keepalive_connections=0)
    with LogCapture() as logs:
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as client:
            async with anyio.create_task_group() as tg:
                for key in keys:
                    tg.start_soon(partial(one, client, key))
                with anyio.fail_after(30):
                    while not all(PROBE.get(k).get("started") for k in keys):
                        await anyio.sleep(0.01)
                assert len(registry.list_operations_sync(name_pattern="GET /hold")) >= N
                for key in leaving:
                    scopes[key].cancel()
                with anyio.fail_after(10):
                    while not all(ended(PROBE.get(k)) for k in leaving):
                        await anyio.sleep(0.01)
                await server.acall(release_all)
        with anyio.fail_after(10):
            while not all(ended(PROBE.get(k)) for k in keys):
                await anyio.sleep(0.01)
            while await server.tasks() > baseline:
                await anyio.sleep(0.01)

    assert len(statuses) == N - len(leaving) and set(statuses.values()) == {200}
    for key in keys:
        op = PROBE.get(key)["op"]
        if key in leaving:
            assert op.status is OperationStatus.CANCELLED, (key, op.status, op.cancel_message)
            assert op.cancel_reason is CancelationReason.DISCONNECT
        else:
            assert op.status is OperationStatus.COMPLETED, (key, op.status, op.cancel_message)
    assert registry.list_operations_sync(name_pattern="GET /hold") == []
    assert await server.tasks() <= baseline
    problems = logs.texts()
    assert not [t for t in problems if "corrupted" in t.lower()]
    assert problems == []


def baseline_tasks(server: Server) -> int:
    """A generous bound while warming up (tasks of the warm-up connection may linger)."""
    return 64
